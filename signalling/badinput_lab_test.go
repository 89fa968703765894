package signalling

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/store"
)

// The bad-input lab (issue 6, "Done when" 7): while a call is up through
// `xtrunk sip` (SIPp PBX → edge → SIPp carrier, media through the relay),
// the RFC 4475 torture messages and 2,000 mutated SIP messages hit the
// edge's listeners from other addresses of the PBX's namespace. The edge
// must stay up, answer each message with silence or the right 4xx, and
// the call must end normally, its media intact; afterwards a valid
// OPTIONS still gets 200, the call's own Proxy-Authorization replayed on
// a new INVITE gets 407, and a new call goes through.
//
// Over TCP, sipgo closes a connection on a framing error (bytes after a
// message that do not start another, as in dblreq or a mutant with junk
// appended), and the answers to requests already read from it then go to
// a new connection to the top Via's sent-by, looked up in DNS when it is
// a name. Here the edge's namespace has no route there, so those answers
// are lost and nothing leaves the lab; on loopback in the host's
// namespace the torture messages' Via hosts would be looked up and
// dialled, which is why TCP is tested only here.

// Addresses in the caller namespace besides the PBX's (198.18.1.2), all
// in the IP-ACL trunk's list (198.18.0.0/15).
var (
	tortureSrc = netip.MustParseAddr("198.18.1.10")
	barrageSrc = netip.MustParseAddr("198.18.1.11")
	checkSrc   = netip.MustParseAddr("198.18.1.12")
)

// barrageSize is how many mutated messages go to the UDP listener (and a
// quarter of that to TCP).
const barrageSize = 2000

func TestBadInputLab(t *testing.T) {
	tri := labtest.NewTriangle(t, testbed.WithoutIPv6())
	sipp := sippPath(t)
	p := provision(t)
	ngAddr := startLabRelay(t, tri)
	bin := buildXtrunk(t)
	dir := t.TempDir()
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	for _, a := range []netip.Addr{tortureSrc, barrageSrc, checkSrc} {
		if _, err := tri.Caller.IP("addr", "add", netip.PrefixFrom(a, 24).String(), "dev", tri.CallerLink.A.Name); err != nil {
			t.Fatal(err)
		}
	}

	sipAddr := netip.AddrPortFrom(tri.RelayCallerIP, 5060).String()
	tcp := supportsTCP(t, bin)
	// The torture messages come two dozen unparseable ones a second from
	// one source, over TCP on 133 connections at once: the flood rule
	// would ban it (malformed messages count as requests) and the
	// per-source connection cap refuse most; this lab is about the
	// answers.
	edge := startEdge(t, ctx, tri, bin, p.dsn, ngAddr, sipAddr, tcp, []string{"--guard-max-requests", "0", "--tcp-max-per-source", "0"}, "sip:"+netip.AddrPortFrom(tri.CalleeIP, 5060).String())

	uas, err := tri.Callee.Start(ctx, sipp, "-sf", filepath.Join(testdata, "uas_carrier.xml"),
		"-i", tri.CalleeIP.String(), "-p", "5060", "-mi", tri.CalleeIP.String(), "-mp", "40000", "-rtp_echo",
		"-m", "2", "-nostdin", "-timeout", "60s", "-timeout_error")
	if err != nil {
		t.Fatal(err)
	}
	waitBoundUDP(t, tri.Callee, 5060, uas) // a fixed sleep raced SIPp's start under load

	// The call in progress: uac_auth.xml holding 8 s instead of 2.
	scen, err := os.ReadFile(filepath.Join(testdata, "uac_auth.xml"))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Replace(string(scen), `<pause milliseconds="2000"/>`, `<pause milliseconds="8000"/>`, 1)
	if long == string(scen) {
		t.Fatal("uac_auth.xml has no 2 s pause to lengthen")
	}
	longScen := filepath.Join(dir, "uac_long.xml")
	if err := os.WriteFile(longScen, []byte(long), 0o600); err != nil {
		t.Fatal(err)
	}
	uacMsgs := filepath.Join(dir, "uac_messages.log")
	uacArgs := func(scenario string) []string {
		return []string{"-sf", scenario,
			"-i", tri.CallerIP.String(), "-p", "5060", "-mi", tri.CallerIP.String(), "-mp", "20000",
			"-s", labCalled, "-key", "trunk", acmeHost, "-key", "caller", testDID,
			"-au", testUser, "-ap", testPassword, "-auth_uri", labCalled + "@" + acmeHost,
			"-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error"}
	}
	uac, err := tri.Caller.Start(ctx, sipp, append(uacArgs(longScen), "-trace_msg", "-message_file", uacMsgs, sipAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the call is set up (407, INVITE, 200, ACK) and media flows

	// The RFC 4475 messages, over UDP and TCP.
	torture := loadTorture(t)
	cases, msgs := tortureSet(torture, "udp")
	pc, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tortureSrc, 5060).String())
	if err != nil {
		t.Fatal(err)
	}
	got, stray, err := udpBarrage(pc, sipAddr, msgs, 2*time.Second)
	pc.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkTorture(t, cases, got, stray, "udp")
	dialFrom := func(src netip.Addr) dialFunc {
		return func(network, raddr string) (net.Conn, error) {
			var c net.Conn
			err := tri.Caller.Do(func() error {
				var err error
				d := net.Dialer{Timeout: 2 * time.Second}
				if network == "tcp" {
					d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
				} else {
					d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
				}
				c, err = d.Dial(network, raddr)
				return err
			})
			return c, err
		}
	}
	if tcp {
		cases, msgs := tortureSet(torture, "tcp")
		got, err := tcpBarrage(dialFrom(tortureSrc), sipAddr, msgs, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		checkTorture(t, cases, got, reply{}, "tcp")
	} else {
		t.Log("`xtrunk sip` has no --listen-tcp yet: the torture messages and the barrage went over UDP only")
	}

	// Mutated SIP.
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	bases := append(barrageBases(netip.AddrPortFrom(barrageSrc, 5060).String()), msgs...)
	mutants := make([][]byte, barrageSize)
	for i := range mutants {
		mutants[i] = mutate(rnd, bases[rnd.IntN(len(bases))])
	}
	pc, err = tri.Caller.ListenUDP(netip.AddrPortFrom(barrageSrc, 5060).String())
	if err != nil {
		t.Fatal(err)
	}
	codes := fuzzUDP(t, pc, sipAddr, mutants)
	pc.Close()
	t.Logf("udp barrage of %d: answers by status %v", len(mutants), codes)
	if tcp {
		codes := fuzzTCP(t, dialFrom(barrageSrc), sipAddr, mutants[:barrageSize/4])
		t.Logf("tcp barrage of %d: answers by status %v", barrageSize/4, codes)
	}

	// The call in progress ends normally (BYE answered 200 through the edge).
	if err := uac.Wait(); err != nil {
		t.Fatalf("the call in progress failed under the barrage: %v\n%s", err, uac.Output())
	}
	select {
	case <-edge.Done():
		t.Fatalf("xtrunk sip exited under the barrage:\n%s", edge.Output())
	default:
	}
	if strings.Contains(edge.Output(), "panicked") {
		t.Errorf("a request handler panicked (the guard kept the process up):\n%s", grepLines(edge.Output(), "panicked"))
	}
	mustAnswerOptions(t, dialFrom(checkSrc), "udp", sipAddr)

	// The call's Proxy-Authorization, replayed on a new INVITE.
	trace, err := os.ReadFile(uacMsgs)
	if err != nil {
		t.Fatal(err)
	}
	pa := regexp.MustCompile(`(?m)^\s*Proxy-Authorization:\s*(.*?)\s*$`).FindSubmatch(trace)
	if pa == nil {
		t.Fatalf("no Proxy-Authorization in the PBX's trace:\n%s", trace)
	}
	replay := rawRequest{ruri: "sip:" + labCalled + "@" + acmeHost, extra: "Proxy-Authorization: " + string(pa[1]) + "\r\n"}
	for _, src := range []netip.Addr{tri.CallerIP, checkSrc} { // from the PBX's address and from another
		c, err := dialFrom(src)("udp", sipAddr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := roundTrip(c, replay, 2*time.Second)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res, "SIP/2.0 407") {
			t.Fatalf("replayed Proxy-Authorization from %s: want 407, got %q", src, statusLine(res))
		}
	}

	// A new call goes through.
	uac2, err := tri.Caller.Start(ctx, sipp, append(uacArgs(filepath.Join(testdata, "uac_auth.xml")), sipAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := uac2.Wait(); err != nil {
		t.Fatalf("a call after the barrage failed: %v\n%s", err, uac2.Output())
	}
	if err := uas.Wait(); err != nil {
		t.Fatalf("SIPp carrier: %v\n%s", err, uas.Output())
	}

	// Both calls completed with media both ways through the relay.
	var calls []store.Call
	for deadline := time.Now().Add(cdrWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if calls, _, err = p.st.ListCalls(context.Background(), p.account, store.CallFilter{}, store.Page{}); err != nil {
			t.Fatal(err)
		}
		if calls = finished(calls); len(calls) >= 2 {
			break
		}
	}
	if len(calls) != 2 {
		t.Fatalf("want 2 CDRs (no call from the barrage), got %d: %+v", len(calls), calls)
	}
	for i, c := range calls {
		if c.SIPResponseCode != 200 || c.Status != "completed" || c.Answer.IsZero() || !strings.HasPrefix(c.HangupCause, string(hangupCaller)) {
			t.Errorf("CDR %d: %+v", i, c)
		}
		if len(c.Quality) != 2 || c.Quality[0].PacketsReceived < 50 || c.Quality[1].PacketsReceived < 50 {
			t.Errorf("CDR %d: media did not flow both ways: %+v", i, c.Quality)
		}
	}
}

// supportsTCP reports whether the built `xtrunk sip` has --listen-tcp.
func supportsTCP(t *testing.T, bin string) bool {
	t.Helper()
	out, _ := exec.Command(bin, "sip", "--help").CombinedOutput()
	return strings.Contains(string(out), "listen-tcp")
}

// startEdge runs `xtrunk sip` in the relay namespace (UDP, and TCP on the
// same address when tcp) and waits until it answers OPTIONS.
func startEdge(t *testing.T, ctx context.Context, tri *testbed.Triangle, bin, dsn, ngAddr, listen string, tcp bool, extra []string, carriers ...string) *testbed.Process {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(cfgFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"sip", "--config", cfgFile, "--listen-udp", listen, "--domain", testDomain, "--edge", "lab",
		"--relay-ng", ngAddr, "--relay-customer-iface", "customer", "--relay-carrier-iface", "carrier",
		"--db", dsn, "--default-cps", "0", "--log-level", "info",
		// one source sends the barrage to three trunks; the open trunk's
		// IP ACL exempts it on that trunk only, and this lab is about
		// parsing, not the flood rule (TestFloodIgnoredLoopback)
		// and svwar's digest-usernames probe (more wrong passwords than
		// the auth-failure limit) comes from that same ACL address
		"--guard-max-requests", "0", "--guard-max-auth-failures", "0"}
	if tcp {
		args = append(args, "--listen-tcp", listen)
	}
	args = append(args, extra...)
	for _, c := range carriers {
		args = append(args, "--carrier", c, "--carrier-probe-interval", "0")
	}
	proc, err := tri.Relay.Start(ctx, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = proc.Stop()
		if t.Failed() {
			out := proc.Output()
			if len(out) > 20000 {
				out = "…" + out[len(out)-20000:]
			}
			t.Logf("xtrunk sip on %s:\n%s", listen, out)
		}
	})
	waitUDP(t, tri.Caller, listen)
	return proc
}

// fuzzUDP sends msgs from pc in bursts and counts the answers by status;
// a 2xx to an INVITE fails the test (no call may come of the barrage).
func fuzzUDP(t *testing.T, pc net.PacketConn, server string, msgs [][]byte) map[int]int {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	codes := map[int]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			checkFuzzAnswer(t, buf[:n], &mu, codes)
		}
	}()
	for i, m := range msgs {
		if _, err := pc.WriteTo(m, ra); err != nil {
			t.Logf("write %d: %v", i, err) // e.g. a mutant over the datagram limit
		}
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // let the edge read, not the socket buffer drop
		}
	}
	_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	<-done
	mu.Lock()
	defer mu.Unlock()
	return codes
}

// fuzzTCP sends each message on its own connection, 50 at a time.
func fuzzTCP(t *testing.T, dial dialFunc, server string, msgs [][]byte) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for _, m := range msgs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dial("tcp", server)
			if err != nil {
				t.Errorf("tcp dial: %v", err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(m); err != nil {
				return
			}
			var got []byte
			buf := make([]byte, 65536)
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			for _, res := range splitMessages(got) {
				checkFuzzAnswer(t, []byte(res), &mu, codes)
			}
		}()
	}
	wg.Wait()
	return codes
}

var cseqRE = regexp.MustCompile(`(?mi)^CSeq:\s*\d+\s+(\S+)`)

func checkFuzzAnswer(t *testing.T, res []byte, mu *sync.Mutex, codes map[int]int) {
	for _, code := range statusCodes(res) {
		mu.Lock()
		codes[code]++
		mu.Unlock()
		if m := cseqRE.FindSubmatch(res); code >= 200 && code < 300 && m != nil && strings.EqualFold(string(m[1]), "INVITE") {
			t.Errorf("a mutated INVITE got %d:\n%s", code, res)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return fmt.Sprint(out)
}
