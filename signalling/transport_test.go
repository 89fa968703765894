package signalling

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds or wait passes.
func waitFor(t *testing.T, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(src, addr string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// closedByPeer reports whether the server closed c: a read ends in EOF or
// a reset (not a timeout) within wait.
func closedByPeer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// TestResponseNeverDialsVia: a TCP OPTIONS whose Via names a local TCP
// listener (by address, or by a name that would need DNS), then a reset
// before the response. sipgo upstream, finding the connection gone,
// resolves the Via host and connects to it; the edge must neither look a
// name up nor connect anywhere, and counts the dropped requests.
func TestResponseNeverDialsVia(t *testing.T) {
	p := provision(t)
	decoy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	var dialed atomic.Int64
	go func() {
		for {
			c, err := decoy.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	var lookups atomic.Int64
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		lookups.Add(1)
		return nil, errors.New("no DNS in this test")
	}}
	cfg := testConfig(t)
	cfg.OptionsInterval, cfg.GuardMaxRequests = 0, 0
	s := serve(t, cfg, p.st, withResolver(resolver))
	_, decoyPort, _ := splitHostPort(decoy.Addr().String())

	const rounds = 40
	for i := 0; i < rounds; i++ {
		host := "127.0.0.1"
		if i%2 == 1 {
			host = "via-dial.xtrunk.test" // not in /etc/hosts: only DNS could answer
		}
		c, err := dialFrom("127.0.0.1", s.Addr("TCP").String())
		if err != nil {
			t.Fatal(err)
		}
		req := streamRequest(rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}, "TCP", fmt.Sprintf("%s:%d", host, decoyPort))
		req = bytes.Replace(req, []byte(";rport"), nil, 1) // the Via port, not the source's, is where a response would go
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		_ = c.SetLinger(0) // close with a reset
		c.Close()
	}
	// Every request was either answered into the dead socket or dropped;
	// wait for sipgo to be done with them all.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if series(t, s, `xtrunk_sip_requests_total{method="OPTIONS"}`)+
			series(t, s, `xtrunk_sip_responses_dropped_total{transport="TCP"}`) >= rounds {
			break
		}
	}
	time.Sleep(500 * time.Millisecond) // a dial would be under way by now
	if n := dialed.Load(); n != 0 {
		t.Errorf("the Via host's listener got %d connections", n)
	}
	if n := lookups.Load(); n != 0 {
		t.Errorf("%d DNS lookups for a response", n)
	}
	t.Logf("requests answered into a reset connection: %v, dropped (connection gone): %v",
		series(t, s, `xtrunk_sip_requests_total{method="OPTIONS"}`), series(t, s, `xtrunk_sip_responses_dropped_total{transport="TCP"}`))
}

// TestTCPConnectionCaps: 40 connections from one address get 32
// through; then 5,000 idle connections from 200 addresses against a cap
// of 4,000 in all: 1,000 are closed at accept and counted. When the
// clients go, the edge's connections, descriptors and goroutines go too.
func TestTCPConnectionCaps(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.TCPMax, cfg.TCPMaxPerSource = 4000, 32
	cfg.TCPIdleTimeout = 10 * time.Minute // not this test's subject
	s := serve(t, cfg, p.st)
	addr := s.Addr("TCP").String()
	open := func() int { return s.conns.count() }
	closed := func(reason string) int { return closedFor(t, s, reason) }
	fds0, g0 := openFDs(t), settledGoroutines()

	var one []*net.TCPConn
	for i := 0; i < 40; i++ {
		c, err := dialFrom("127.0.5.1", addr)
		if err != nil {
			t.Fatal(err)
		}
		one = append(one, c)
	}
	waitFor(t, 10*time.Second, "per-source cap", func() bool { return closed(closedSourceCap) == 8 && open() == 32 })
	refused := 0
	for _, c := range one {
		if closedByPeer(c, 200*time.Millisecond) {
			refused++
		}
		c.Close()
	}
	if refused != 8 {
		t.Errorf("from one address: %d of 40 connections closed by the edge, want 8", refused)
	}
	waitFor(t, 10*time.Second, "connections released", func() bool { return open() == 0 })

	conns := dialMany(t, addr, 200, 25)
	defer closeAll(conns)
	waitFor(t, 30*time.Second, "total cap", func() bool { return closed(closedTotalCap) == 1000 && open() == 4000 })
	if n := closed(closedSourceCap); n != 8 {
		t.Errorf("source_cap %d, want 8", n)
	}
	if got := metricValue(scrape(t, s), "xtrunk_sip_tcp_connections"); got != 4000 {
		t.Errorf("xtrunk_sip_tcp_connections %v, want 4000", got)
	}
	closeAll(conns)
	waitFor(t, 30*time.Second, "connections closed", func() bool { return open() == 0 })
	var fds, gs int
	defer func() {
		if t.Failed() {
			t.Logf("descriptors %d (before %d), goroutines %d (before %d)", fds, fds0, gs, g0)
		}
	}()
	// 4,000 closes take a while on a loaded 2-CPU machine
	waitFor(t, 60*time.Second, "descriptors and goroutines back", func() bool {
		fds, gs = openFDs(t), runtime.NumGoroutine()
		return fds <= fds0+5 && gs <= g0+10
	})
}

// TestTCPIdleTimeout: 5,000 connections that say nothing are closed
// after --tcp-idle-timeout, taking their descriptors and goroutines
// with them, while connections sending CRLF keep-alives (TCP and TLS)
// stay up past it.
func TestTCPIdleTimeout(t *testing.T) {
	p := provision(t)
	pki := newTestPKI(t)
	cfg := testConfig(t)
	cfg.ListenTLS = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey = pki.cert, pki.key
	cfg.TCPIdleTimeout = 2 * time.Second
	s := serve(t, cfg, p.st)
	fds0, g0 := openFDs(t), settledGoroutines()

	alive := map[string]net.Conn{
		"TCP": dialTCP(t, s.Addr("TCP").String()),
		"TLS": dialTLS(t, s.Addr("TLS").String(), &tls.Config{RootCAs: pki.pool, ServerName: "localhost"}),
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pongs := map[string]*atomic.Int64{"TCP": {}, "TLS": {}}
	for tr, c := range alive {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16)
			for {
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
				if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, err := c.Read(buf); err != nil || string(buf[:n]) != "\r\n" {
					return
				}
				pongs[tr].Add(1)
			}
		}()
	}

	conns := dialMany(t, s.Addr("TCP").String(), 200, 25)
	defer closeAll(conns)
	waitFor(t, 60*time.Second, "idle connections closed", func() bool {
		return closedFor(t, s, closedIdle) >= 5000
	})
	for i, c := range conns {
		if !closedByPeer(c, 5*time.Second) {
			t.Fatalf("idle connection %d still open", i)
		}
	}
	// The keep-alive connections outlived the timeout several times over.
	start := pongs["TCP"].Load() + pongs["TLS"].Load()
	time.Sleep(3 * cfg.TCPIdleTimeout / 2)
	close(stop)
	wg.Wait()
	for tr, n := range pongs {
		if n.Load() < 4 {
			t.Errorf("%s keep-alive connection: %d pongs, closed early", tr, n.Load())
		}
	}
	if pongs["TCP"].Load()+pongs["TLS"].Load() <= start {
		t.Error("keep-alives stopped being answered")
	}
	if n := s.conns.count(); n != 2 {
		t.Errorf("%d connections open, want the 2 keep-alive ones", n)
	}
	closeAll(conns)
	for _, c := range alive {
		c.Close()
	}
	var fds, gs int
	defer func() {
		if t.Failed() {
			t.Logf("descriptors %d (before %d), goroutines %d (before %d), connections %d", fds, fds0, gs, g0, s.conns.count())
			buf := make([]byte, 1<<20)
			t.Logf("%s", buf[:runtime.Stack(buf, true)])
		}
	}()
	waitFor(t, 30*time.Second, "descriptors and goroutines back", func() bool {
		fds, gs = openFDs(t), runtime.NumGoroutine()
		return s.conns.count() == 0 && fds <= fds0+5 && gs <= g0+10
	})
}

// dialMany opens per connections from each of sources loopback addresses
// (127.0.6.1, …).
func dialMany(t *testing.T, addr string, sources, per int) []*net.TCPConn {
	t.Helper()
	out := make([]*net.TCPConn, sources*per)
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for i := 0; i < sources; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("127.0.%d.%d", 6+i/250, 1+i%250)
			for j := 0; j < per; j++ {
				c, err := dialFrom(src, addr)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
				out[i*per+j] = c
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		closeAll(out)
		t.Fatal(err)
	default:
	}
	return out
}

func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCloseConnectionsFrom: the ban hook closes every TCP and TLS
// connection of one source, a TLS handshake in progress included, and
// leaves another source's alone.
func TestCloseConnectionsFrom(t *testing.T) {
	p := provision(t)
	pki := newTestPKI(t)
	cfg := testConfig(t)
	cfg.ListenTLS = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey = pki.cert, pki.key
	s := serve(t, cfg, p.st)
	var banned, other []net.Conn
	for i := 0; i < 5; i++ {
		c, err := dialFrom("127.0.9.1", s.Addr("TCP").String())
		if err != nil {
			t.Fatal(err)
		}
		banned = append(banned, c)
		if c, err = dialFrom("127.0.9.2", s.Addr("TCP").String()); err != nil {
			t.Fatal(err)
		}
		other = append(other, c)
	}
	stalled, err := dialFrom("127.0.9.1", s.Addr("TLS").String()) // never says hello
	if err != nil {
		t.Fatal(err)
	}
	banned = append(banned, stalled)
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.9.1")}}
	tc, err := tls.DialWithDialer(d, "tcp", s.Addr("TLS").String(), &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	banned = append(banned, tc)
	defer func() {
		for _, c := range append(banned, other...) {
			c.Close()
		}
	}()
	waitFor(t, 10*time.Second, "connections accepted", func() bool { return s.conns.count() == 12 })

	s.closeConnectionsFrom(netip.MustParseAddr("127.0.9.1"))
	for i, c := range banned {
		if !closedByPeer(c, 5*time.Second) {
			t.Errorf("banned source's connection %d still open", i)
		}
	}
	if n := closedFor(t, s, closedBan); n != 7 {
		t.Errorf("closed for a ban: %v, want 7", n)
	}
	for i, c := range other {
		if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
			t.Fatalf("other source's connection %d: %v", i, err)
		}
		buf := make([]byte, 4)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := io.ReadFull(c, buf[:2]); err != nil || string(buf[:n]) != "\r\n" {
			t.Errorf("other source's connection %d: no pong (%v)", i, err)
		}
	}
	waitFor(t, 10*time.Second, "only the other source's left", func() bool { return s.conns.count() == 5 })
}

// series reads one series from the server's metrics (0 when absent).
func series(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	return max(metricValue(scrape(t, s), name), 0)
}

func closedFor(t *testing.T, s *Server, reason string) int {
	t.Helper()
	return int(series(t, s, `xtrunk_sip_tcp_closed_total{reason="`+reason+`"}`))
}

// TestConfigTCPLimits: the defaults the issue names, and nonsense refused.
func TestConfigTCPLimits(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.TCPIdleTimeout != 120*time.Second || cfg.TCPMaxPerSource != 32 || cfg.TCPMax != 10000 || cfg.TLSHandshakeTimeout != 10*time.Second {
		t.Errorf("defaults: %v %d %d %v", cfg.TCPIdleTimeout, cfg.TCPMaxPerSource, cfg.TCPMax, cfg.TLSHandshakeTimeout)
	}
	for name, mut := range map[string]func(*Config){
		"negative idle":      func(c *Config) { c.TCPIdleTimeout = -time.Second },
		"negative per src":   func(c *Config) { c.TCPMaxPerSource = -1 },
		"negative total":     func(c *Config) { c.TCPMax = -1 },
		"no handshake limit": func(c *Config) { c.TLSHandshakeTimeout = 0 },
	} {
		c := DefaultConfig()
		mut(&c)
		if err := c.validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: want ErrConfig, got %v", name, err)
		}
	}
}

// settledGoroutines is the goroutine count once the server's background
// goroutines (started by ListenAndServe after serve returns) are up: the
// same count three times in a row, 100 ms apart (at most 5 s).
func settledGoroutines() int {
	n, same := runtime.NumGoroutine(), 0
	for deadline := time.Now().Add(5 * time.Second); same < 3 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}
