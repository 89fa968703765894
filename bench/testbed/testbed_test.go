package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sendRecv sends one datagram from `from` to the listener at `to` and checks it
// arrives, from the expected source address when src is valid.
func sendRecv(t *testing.T, from, to *NS, dst netip.AddrPort, src netip.Addr) {
	t.Helper()
	if err := trySendRecv(from, to, dst, src); err != nil {
		t.Fatal(err)
	}
}

func trySendRecv(from, to *NS, dst netip.AddrPort, src netip.Addr) error {
	return trySendRecvN(from, to, dst, src, 20)
}

// trySendRecvN sends up to tries datagrams, 100ms apart, until one arrives.
func trySendRecvN(from, to *NS, dst netip.AddrPort, src netip.Addr, tries int) error {
	ln, err := to.ListenUDP(dst.String())
	if err != nil {
		return err
	}
	defer ln.Close()
	c, err := from.DialUDP(dst.String())
	if err != nil {
		return err
	}
	defer c.Close()
	msg := []byte(fmt.Sprintf("hello %s -> %s", from.Name, dst))
	buf := make([]byte, 1500)
	// Resend until one arrives: the first datagram may wait on (or be dropped
	// by) ARP or neighbour discovery.
	for i := 0; i < tries; i++ {
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("send %s -> %s: %w", from.Name, dst, err)
		}
		ln.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, raddr, err := ln.ReadFromUDPAddrPort(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive at %s %s: %w", to.Name, dst, err)
		}
		if !bytes.Equal(buf[:n], msg) {
			return fmt.Errorf("received %q at %s, want %q", buf[:n], dst, msg)
		}
		if src.IsValid() && raddr.Addr().Unmap() != src {
			return fmt.Errorf("datagram from %v, want %v", raddr.Addr(), src)
		}
		return nil
	}
	return fmt.Errorf("no datagram %s -> %s %s after %d tries", from.Name, to.Name, dst, tries)
}

// netnsList returns the names from `ip netns list`.
func netnsList(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func pair(t *testing.T, l *Lab) (a, b *NS, k *Link) {
	t.Helper()
	var err error
	if a, err = l.AddNS("a"); err != nil {
		t.Fatal(err)
	}
	if b, err = l.AddNS("b"); err != nil {
		t.Fatal(err)
	}
	k, err = l.Link(a, b, LinkOptions{
		AAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30"), netip.MustParsePrefix("2001:2::1/64")},
		BAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/30"), netip.MustParsePrefix("2001:2::2/64")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, b, k
}

func TestLinkCarriesUDP(t *testing.T) {
	l := NewT(t)
	a, b, k := pair(t, l)

	if k.A.Name != "to-b" || k.B.Name != "to-a" {
		t.Errorf("interface names %q, %q; want to-b, to-a", k.A.Name, k.B.Name)
	}
	if k.A.Index == 0 || len(k.A.MAC) != 6 || len(k.B.MAC) != 6 {
		t.Errorf("end A = %+v, B = %+v: index or MAC missing", k.A, k.B)
	}
	sendRecv(t, a, b, netip.MustParseAddrPort("198.18.0.2:4000"), k.A.IPv4())
	sendRecv(t, b, a, netip.MustParseAddrPort("198.18.0.1:4000"), k.B.IPv4())
	sendRecv(t, a, b, netip.MustParseAddrPort("[2001:2::2]:4000"), k.A.IPv6())

	// The namespace is really separate: the host does not have the address.
	if _, err := net.ListenPacket("udp", "198.18.0.2:0"); err == nil {
		t.Error("198.18.0.2 is bindable in the host namespace")
	}
}

func TestInterfaceNames(t *testing.T) {
	l := NewT(t)
	a, err := l.AddNS("a")
	if err != nil {
		t.Fatal(err)
	}
	long, err := l.AddNS("a-rather-long-namespace-name")
	if err != nil {
		t.Fatal(err)
	}
	k1, err := l.Link(a, long, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := l.Link(a, long, LinkOptions{BName: "custom0"})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{k1.A.Name, k1.B.Name, k2.A.Name, k2.B.Name}
	want := []string{"to-a-rather-lon", "to-a", "to-a-rather-lo2", "custom0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("names = %q, want %q", got, want)
	}
	if _, err := l.Link(a, long, LinkOptions{BName: "custom0"}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate interface name: err = %v, want ErrDuplicate", err)
	}
	if _, err := l.AddNS("a"); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate namespace: err = %v, want ErrDuplicate", err)
	}
	if _, err := l.AddNS("../x"); !errors.Is(err, ErrBadName) {
		t.Errorf("bad namespace name: err = %v, want ErrBadName", err)
	}
}

func TestAddressesStayInBenchmarkRanges(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"198.18.0.0/15", true},
		{"198.19.255.1/24", true},
		{"198.18.1.1/32", true},
		{"198.16.0.0/13", false},
		{"0.0.0.0/0", false},
		{"10.0.0.1/24", false},
		{"198.20.0.1/24", false},
		{"2001:2::1/64", true},
		{"2001:2:0:ffff::1/128", true},
		{"2001::/32", false},
		{"2001:3::1/64", false},
		{"::/0", false},
		{"fe80::1/64", false},
	}
	for _, tt := range tests {
		err := checkPrefix(netip.MustParsePrefix(tt.prefix))
		if (err == nil) != tt.ok {
			t.Errorf("checkPrefix(%s) = %v, want ok=%v", tt.prefix, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrAddrNotAllowed) {
			t.Errorf("checkPrefix(%s) = %v, want ErrAddrNotAllowed", tt.prefix, err)
		}
	}
}

func TestRoutesAreExplicit(t *testing.T) {
	l := NewT(t)
	a, _, _ := pair(t, l)
	via := netip.MustParseAddr("198.18.0.2")
	for _, dst := range []string{"0.0.0.0/0", "::/0"} {
		if err := a.AddRoute(netip.MustParsePrefix(dst), via); !errors.Is(err, ErrDefaultRoute) {
			t.Errorf("AddRoute(%s) = %v, want ErrDefaultRoute", dst, err)
		}
	}
	if err := a.AddRoute(netip.MustParsePrefix("10.0.0.0/8"), via); !errors.Is(err, ErrAddrNotAllowed) {
		t.Errorf("AddRoute(10.0.0.0/8) = %v, want ErrAddrNotAllowed", err)
	}
	if err := a.AddRoute(netip.MustParsePrefix("198.18.8.0/24"), via); err != nil {
		t.Fatal(err)
	}
	out, err := a.IP("-4", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "198.18.8.0/24 via 198.18.0.2") || strings.Contains(out, "default") {
		t.Errorf("routes:\n%s", out)
	}
}

func TestSysctlIsPerNamespace(t *testing.T) {
	l := NewT(t)
	a, b, _ := pair(t, l)
	if err := a.SetSysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns   *NS
		want string
	}{{a, "1"}, {b, "0"}} {
		v, err := c.ns.Sysctl("net.ipv4.ip_forward")
		if err != nil {
			t.Fatal(err)
		}
		if v != c.want {
			t.Errorf("%s: ip_forward = %s, want %s", c.ns.Name, v, c.want)
		}
	}
	// Interface names with dots go through the slash form.
	if _, err := a.Sysctl("net/ipv4/conf/to-b/forwarding"); err != nil {
		t.Error(err)
	}
}

func TestDoRestoresThread(t *testing.T) {
	l := NewT(t)
	a, _, _ := pair(t, l)
	host, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := a.Do(func() error {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside == host {
		t.Fatalf("Do ran in the host namespace %s", host)
	}
	// Many calls, from many goroutines: no thread may come back in the lab's namespace.
	errc := make(chan error, 50)
	for i := 0; i < 50; i++ {
		go func() {
			errc <- a.Do(func() error { return nil })
		}()
	}
	for i := 0; i < 50; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ {
		got, err := os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		if got != host {
			t.Fatalf("thread left in %s after Do, want %s", got, host)
		}
	}
	wantErr := errors.New("from fn")
	if err := a.Do(func() error { return wantErr }); err != wantErr {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	RequirePrivileged(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a, _, _ := pair(t, l)
	if _, err := l.AddNS("c"); err != nil {
		t.Fatal(err)
	}
	p, err := a.Start(context.Background(), "sleep", "100")
	if err != nil {
		t.Fatal(err)
	}
	if got := withPrefix(netnsList(t), l.Prefix); len(got) != 3 {
		t.Fatalf("namespaces %v, want 3 with prefix %s", got, l.Prefix)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := withPrefix(netnsList(t), l.Prefix); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	select {
	case <-p.Done():
	default:
		t.Error("process still running after Close")
	}
	if _, err := l.AddNS("d"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddNS after Close: %v, want ErrClosed", err)
	}
	if err := a.Do(func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
}

// TestNewTCleansUpAfterFatal runs a test that fails half way in a child test
// binary and checks that its lab and process are gone afterwards.
func TestNewTCleansUpAfterFatal(t *testing.T) {
	RequirePrivileged(t)
	if testing.Short() {
		t.Skip("runs a child test binary")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFailingLab$", "-test.v")
	cmd.Env = append(os.Environ(), "TESTBED_HELPER=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper test should fail, got %v:\n%s", err, out)
	}
	m := regexp.MustCompile(`prefix=(\S+) pid=(\d+)`).FindSubmatch(out)
	if m == nil || !strings.Contains(string(out), "deliberate failure") {
		t.Fatalf("helper output:\n%s", out)
	}
	if got := withPrefix(netnsList(t), string(m[1])); len(got) != 0 {
		t.Errorf("namespaces left after failing test: %v", got)
	}
	if _, err := os.Stat("/proc/" + string(m[2])); err == nil {
		t.Errorf("process %s still running after failing test", m[2])
	}
}

func TestHelperFailingLab(t *testing.T) {
	if os.Getenv("TESTBED_HELPER") != "1" {
		t.Skip("helper for TestNewTCleansUpAfterFatal")
	}
	tr := NewTriangle(t)
	p, err := tr.Relay.Start(context.Background(), "sleep", "100")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prefix=%s pid=%d", tr.Lab.Prefix, p.PID())
	t.Fatal("deliberate failure")
}

// TestNewTCleansUpInSubtest checks the order of cleanups within a test that
// ends early: the lab is gone by the time cleanups registered before NewT run.
func TestNewTCleansUpInSubtest(t *testing.T) {
	RequirePrivileged(t)
	var prefix string
	t.Run("ends early", func(t *testing.T) {
		t.Cleanup(func() {
			if got := withPrefix(netnsList(t), prefix); len(got) != 0 {
				t.Errorf("namespaces left when earlier cleanups run: %v", got)
			}
		})
		l := NewT(t)
		prefix = l.Prefix
		pair(t, l)
		// SkipNow leaves the test through runtime.Goexit, exactly like FailNow.
		t.SkipNow()
	})
	if got := withPrefix(netnsList(t), prefix); len(got) != 0 {
		t.Errorf("namespaces left after subtest: %v", got)
	}
}

func TestParallelLabs(t *testing.T) {
	RequirePrivileged(t)
	prefixes := make(chan string, 3)
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				tr := NewTriangle(t)
				prefixes <- tr.Lab.Prefix
				// Same addresses in every lab, no interference.
				sendRecv(t, tr.Caller, tr.Relay, netip.AddrPortFrom(tr.RelayCallerIP, 5000), tr.CallerIP)
				sendRecv(t, tr.Callee, tr.Relay, netip.AddrPortFrom(tr.RelayCalleeIP6, 5000), tr.CalleeIP6)
			})
		}
	})
	close(prefixes)
	seen := map[string]bool{}
	for p := range prefixes {
		if seen[p] {
			t.Errorf("prefix %s used twice", p)
		}
		seen[p] = true
		if got := withPrefix(netnsList(t), p); len(got) != 0 {
			t.Errorf("namespaces left: %v", got)
		}
	}
}

func TestCleanupStale(t *testing.T) {
	l := NewT(t)
	if _, err := l.AddNS("x"); err != nil {
		t.Fatal(err)
	}
	if err := CleanupStale(time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := withPrefix(netnsList(t), l.Prefix); len(got) != 1 {
		t.Fatalf("CleanupStale removed a fresh namespace: %v", got)
	}
	// Two hours on, it is stale. (Only this lab's prefix: other test
	// binaries may be running labs right now.)
	own := regexp.MustCompile("^" + regexp.QuoteMeta(l.Prefix))
	if err := cleanupStale(own, time.Hour, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := withPrefix(netnsList(t), l.Prefix); len(got) != 0 {
		t.Fatalf("stale namespaces left: %v", got)
	}
}
