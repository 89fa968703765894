package signalling

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"

	"github.com/xtrunk/xtrunk/control/store"
)

// Sources in the guard tests, all on loopback: a stranger, a customer in
// the open trunk's IP ACL, and a carrier (--carrier-source).
const (
	stranger = "127.0.0.1:0"
	customer = "127.0.0.2:0"
	carrier  = "127.0.0.3:0"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// guardServer provisions the test trunks with the open trunk's ACL
// narrowed to the customer (127.0.0.2) and serves them with 127.0.0.3 as
// a carrier source.
func guardServer(t *testing.T, mut func(*Config), opts ...Option) *Server {
	t.Helper()
	p := provision(t)
	ctx := context.Background()
	acls, _, err := p.st.ListIPAccessControlLists(ctx, p.account, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range acls {
		if l.FriendlyName != aclHost {
			continue
		}
		ips, _, err := p.st.ListIPAddresses(ctx, p.account, l.Sid, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range ips {
			if ip.IPAddress == "127.0.0.0" {
				if err := p.st.DeleteIPAddress(ctx, p.account, l.Sid, ip.Sid); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := p.st.CreateIPAddress(ctx, store.IPAddress{AccountSid: p.account, ListSid: l.Sid, FriendlyName: "pbx",
			IPAddress: "127.0.0.2", CIDRPrefixLength: 32}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t)
	cfg.CarrierSources = []string{"127.0.0.3/32"}
	if mut != nil {
		mut(&cfg)
	}
	return serve(t, cfg, p.st, opts...)
}

func expectStatus(t *testing.T, s *Server, from string, req rawRequest, want string) {
	t.Helper()
	wait := 2 * time.Second
	if want == "" {
		wait = 500 * time.Millisecond
	}
	got := exchange(t, from, s.Addr("UDP").String(), req, wait)
	if want == "" && got != "" {
		t.Fatalf("%s %s from %s: want silence, got %q", req.method, req.ruri, from, statusLine(got))
	}
	if !strings.HasPrefix(got, want) {
		t.Fatalf("%s %s from %s: want %q, got %q", req.method, req.ruri, from, want, statusLine(got))
	}
}

var register = rawRequest{method: "REGISTER", ruri: "sip:" + aclHost} // always 403 when heard

// TestGuardScanner: a scanner's User-Agent gets silence where anyone else
// gets an answer.
func TestGuardScanner(t *testing.T) {
	s := guardServer(t, nil)
	for _, ua := range []string{"friendly-scanner", "sipcli/v1.8", "SIPVicious 0.3.4", "VaxSIPUserAgent/3.1", "pplsip"} {
		req := register
		req.extra = "User-Agent: " + ua + "\r\n"
		expectStatus(t, s, stranger, req, "")
	}
	req := register
	req.extra = "User-Agent: Asterisk PBX 20.5\r\n"
	expectStatus(t, s, stranger, req, "SIP/2.0 403")
	if v := metricValue(scrape(t, s), `xtrunk_sip_guard_ignored_total{reason="scanner"}`); v != 5 {
		t.Errorf("scanner ignores counted %v, want 5", v)
	}
}

// TestGuardFloodBanAndRecovery: past the request limit a stranger gets
// nothing, even before parsing, until the ban ends; customers in an IP
// ACL and carriers are never banned.
func TestGuardFloodBanAndRecovery(t *testing.T) {
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	s := guardServer(t, func(c *Config) {
		c.GuardMaxRequests, c.GuardRequestWindow = 5, time.Hour // no race with the wall clock
		c.GuardBan = 5 * time.Minute
	}, withClock(clock.now))
	for i := 0; i < 5; i++ {
		expectStatus(t, s, stranger, register, "SIP/2.0 403")
	}
	expectStatus(t, s, stranger, register, "") // the 6th: banned
	expectStatus(t, s, stranger, rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}, "")
	for i := 0; i < 20; i++ {
		expectStatus(t, s, customer, register, "SIP/2.0 403")
		expectStatus(t, s, carrier, register, "SIP/2.0 403")
	}
	m := scrape(t, s)
	if v := metricValue(m, `xtrunk_sip_guard_ignored_total{reason="flood"}`); v != 1 {
		t.Errorf("flood ignores %v, want 1", v)
	}
	if v := metricValue(m, `xtrunk_sip_guard_ignored_total{reason="banned"}`); v != 1 {
		t.Errorf("banned ignores %v, want 1", v) // dropped before parsing
	}
	if v := metricValue(m, `xtrunk_sip_guard_banned_sources`); v != 1 {
		t.Errorf("banned sources %v, want 1", v)
	}
	clock.add(5 * time.Minute)
	expectStatus(t, s, stranger, register, "SIP/2.0 403")
}

// TestGuardAuthFailures: failed digests ban a stranger; the request that
// crosses the line is still challenged, the next gets nothing. An
// address in a trunk's IP ACL is banned for its failures just the same,
// on its own trunk too.
func TestGuardAuthFailures(t *testing.T) {
	s := guardServer(t, func(c *Config) { c.GuardMaxAuthFailures, c.GuardMaxRequests = 3, 0 })
	bad := rawRequest{ruri: "sip:+14155550123@" + acmeHost,
		extra: `Proxy-Authorization: Digest username="pbx1", realm="example.net", nonce="bogus", uri="sip:+14155550123@acme.pstn.example.net", response="00000000000000000000000000000000"` + "\r\n"}
	for _, src := range []string{stranger, customer} {
		for i := 0; i < 3; i++ {
			expectStatus(t, s, src, bad, "SIP/2.0 407")
		}
		expectStatus(t, s, src, bad, "")
		expectStatus(t, s, src, register, "") // the customer's own trunk
	}
	if v := metricValue(scrape(t, s), `xtrunk_sip_guard_bans_total{reason="auth_failures"}`); v != 2 {
		t.Errorf("auth bans %v, want 2", v)
	}
}

// TestGuardACLExemptOnlyOnOwnTrunk: an address in one trunk's IP ACL may
// send as much as it likes to that trunk, but floods another trunk like
// anyone and is banned there, and the ban-hook hears of it; its own
// trunk keeps answering it.
func TestGuardACLExemptOnlyOnOwnTrunk(t *testing.T) {
	banned := make(chan netip.Addr, 4)
	s := guardServer(t, func(c *Config) { c.GuardMaxRequests, c.GuardRequestWindow = 5, time.Hour },
		WithBanHooks(func(a netip.Addr) { banned <- a }, nil))
	for i := 0; i < 20; i++ {
		expectStatus(t, s, customer, register, "SIP/2.0 403") // own trunk: not counted
	}
	other := rawRequest{method: "REGISTER", ruri: "sip:" + acmeHost}
	for i := 0; i < 5; i++ {
		expectStatus(t, s, customer, other, "SIP/2.0 403")
	}
	expectStatus(t, s, customer, other, "") // the 6th to another tenant's trunk
	select {
	case a := <-banned:
		if a != netip.MustParseAddr("127.0.0.2") {
			t.Fatalf("ban hook got %s", a)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ban hook not called")
	}
	expectStatus(t, s, customer, other, "")
	expectStatus(t, s, customer, register, "SIP/2.0 403") // own trunk: still heard
	if v := metricValue(scrape(t, s), `xtrunk_sip_guard_bans_total{reason="flood"}`); v != 1 {
		t.Errorf("flood bans %v, want 1", v)
	}
}

// TestGuardOptions: one OPTIONS per source per interval is answered, the
// others get nothing; carriers' OPTIONS are always answered, whatever
// the domain.
func TestGuardOptions(t *testing.T) {
	s := guardServer(t, nil)
	opts := rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}
	expectStatus(t, s, customer, opts, "SIP/2.0 200")
	expectStatus(t, s, customer, opts, "")
	expectStatus(t, s, customer, register, "SIP/2.0 403") // only OPTIONS are throttled
	expectStatus(t, s, stranger, opts, "SIP/2.0 200")
	expectStatus(t, s, stranger, opts, "")
	expectStatus(t, s, stranger, rawRequest{method: "OPTIONS", ruri: "sip:198.51.100.7"}, "") // throttled (and not our domain)
	for i := 0; i < 3; i++ {
		got := exchange(t, carrier, s.Addr("UDP").String(), rawRequest{method: "OPTIONS", ruri: "sip:198.51.100.7"}, 2*time.Second)
		if !strings.HasPrefix(got, "SIP/2.0 200") || !strings.Contains(got, "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS") {
			t.Fatalf("carrier OPTIONS %d: %q", i+1, got)
		}
	}
	if v := metricValue(scrape(t, s), `xtrunk_sip_guard_ignored_total{reason="options_rate"}`); v != 3 {
		t.Errorf("throttled OPTIONS %v, want 3", v)
	}
}

// parseRequest makes a request as sipgo hands it over, from src.
func parseRequest(t *testing.T, raw []byte, src string) *sip.Request {
	t.Helper()
	msg, err := sip.NewParser().ParseSIP(raw)
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sip.Request)
	req.SetSource(src)
	req.SetTransport("UDP")
	return req
}

// TestGuardInDialogExempt: a banned source's requests within a call in
// progress get through, before parsing and after; the rest do not.
func TestGuardInDialogExempt(t *testing.T) {
	s := guardServer(t, func(c *Config) { c.GuardMaxRequests, c.GuardRequestWindow = 1, time.Hour })
	src := netipAddrPort(t, "127.0.0.9:5060")
	s.abuse.Check(src.Addr(), "INVITE", "")
	s.abuse.Check(src.Addr(), "INVITE", "")
	if !s.abuse.IsBanned(src.Addr()) {
		t.Fatal("not banned")
	}
	defer fakeCall(s, "up-1").end()
	bye := func(callID string, toTag bool) []byte {
		to := "<sip:+14155550123@" + aclHost + ">"
		if toTag {
			to += ";tag=b2bua"
		}
		return []byte(fmt.Sprintf("BYE sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK%s\r\n"+
			"From: <sip:+14155550100@pbx>;tag=pbx\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			callID, to, callID))
	}
	props := sip.TransportReadProps{Transport: "UDP", RemoteAddr: net.UDPAddrFromAddrPort(src)}
	for _, tc := range []struct {
		callID string
		toTag  bool
		pass   bool
	}{{"up-1", true, true}, {"up-1", false, false}, {"gone-1", true, false}} {
		raw := bye(tc.callID, tc.toTag)
		data, _ := s.preParse(props, raw)
		if wantPre := tc.callID == "up-1"; (data != nil) != wantPre {
			t.Errorf("%+v: preParse passed %v", tc, data != nil)
		}
		req := parseRequest(t, raw, src.String())
		tx := siptest.NewServerTxRecorder(req)
		if got := s.screen(req, tx); got != tc.pass {
			t.Errorf("%+v: screen %v", tc, got)
		}
		tx.Terminate()
	}
	if data, _ := s.preParse(props, []byte("SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n")); data == nil {
		t.Error("a response from a banned source dropped")
	}
}

func TestRawCallID(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"BYE sip:a SIP/2.0\r\nVia: x\r\nCall-ID: abc@h\r\n\r\n", "abc@h"},
		{"BYE sip:a SIP/2.0\r\ni:  compact \r\n\r\n", "compact"},
		{"BYE sip:a SIP/2.0\r\nCALL-ID :x\n\n", "x"},
		{"BYE sip:a SIP/2.0\r\nVia: x\r\n\r\nCall-ID: body\r\n", ""},
		{"BYE sip:a SIP/2.0\r\nX-Call-ID: no\r\n", ""},
		{"", ""},
	} {
		if got := rawCallID([]byte(tc.msg)); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func FuzzRawCallID(f *testing.F) {
	f.Add([]byte("BYE sip:a SIP/2.0\r\nCall-ID: abc\r\n\r\n"))
	f.Add([]byte("i:\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		id := rawCallID(msg)
		if strings.ContainsAny(id, "\r\n") || !strings.Contains(string(msg), id) {
			t.Fatalf("Call-ID %q from %q", id, msg)
		}
	})
}

func netipAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// TestGuardTrustsAuthenticated: a source that passed digest
// authentication on a trunk is that trunk's customer: it may send it
// more than the flood limit (a PBX on credentials alone placing several
// calls a second). Other trunks do not trust it for that.
func TestGuardTrustsAuthenticated(t *testing.T) {
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	s := guardServer(t, func(c *Config) {
		c.GuardMaxRequests, c.GuardRequestWindow = 5, time.Hour
		c.DefaultCPS = 0
	}, withClock(clock.now))
	const uri = "sip:+14155550123@" + acmeHost
	acmeRegister := rawRequest{method: "REGISTER", ruri: "sip:" + acmeHost}
	// Max-Forwards 10: refused (483) right after authentication, so no
	// call is placed. Both INVITEs count toward the flood rule.
	chal := challengeOf(t, exchange(t, stranger, s.Addr("UDP").String(), rawRequest{ruri: uri, maxForwards: 10}, 2*time.Second))
	auth := answerChallenge(t, chal, testUser, testPassword, uri, 1, true)
	expectStatus(t, s, stranger, rawRequest{ruri: uri, maxForwards: 10, extra: "Proxy-Authorization: " + auth + "\r\n"}, "SIP/2.0 483")
	for i := 0; i < 20; i++ {
		expectStatus(t, s, stranger, acmeRegister, "SIP/2.0 403")
	}
	// Another trunk: counted (2 so far), banned past 5.
	for i := 0; i < 3; i++ {
		expectStatus(t, s, stranger, register, "SIP/2.0 403")
	}
	expectStatus(t, s, stranger, register, "")
	expectStatus(t, s, stranger, acmeRegister, "SIP/2.0 403") // still trusted where it authenticated
	// Trust ends; the flood rule is back.
	clock.add(trustTTL + time.Second)
	for i := 0; i < 6; i++ {
		got := exchange(t, stranger, s.Addr("UDP").String(), acmeRegister, 500*time.Millisecond)
		if got == "" {
			return // banned again
		}
	}
	t.Fatal("a source whose trust expired is never banned")
}

// TestDigestURIMustMatchRequestURI: credentials made for one Request-URI
// on an INVITE whose Request-URI was rewritten (another number) get 403;
// the INVITE they were made for is admitted.
func TestDigestURIMustMatchRequestURI(t *testing.T) {
	s := guardServer(t, nil)
	const uri = "sip:+14155550123@" + acmeHost
	const rewritten = "sip:+19005550199@" + acmeHost
	chal := challengeOf(t, exchange(t, stranger, s.Addr("UDP").String(), rawRequest{ruri: uri, maxForwards: 10}, 2*time.Second))
	auth := answerChallenge(t, chal, testUser, testPassword, uri, 1, true)
	expectStatus(t, s, stranger, rawRequest{ruri: rewritten, maxForwards: 10, extra: "Proxy-Authorization: " + auth + "\r\n"}, "SIP/2.0 403")
	// the same credentials on the Request-URI they name: taken (483 is
	// the check right after authentication)
	expectStatus(t, s, stranger, rawRequest{ruri: uri, maxForwards: 10, extra: "Proxy-Authorization: " + auth + "\r\n"}, "SIP/2.0 483")
	text := scrape(t, s)
	if v := metricWith(text, "xtrunk_sip_refusals_total", `code="403"`, `reason="Digest URI does not match Request-URI"`); v != 1 {
		t.Errorf("403 refusals for a digest uri mismatch: %v, want 1", v)
	}
	if v := metricWith(text, "xtrunk_sip_refusals_total", `code="403"`, `trunk="unknown"`); v != -1 {
		t.Errorf("a refusal on a known trunk is labelled trunk=unknown (%v)", v)
	}
}

// TestBanClosesTCPConnections: a source banned for failing digest over
// UDP loses the TCP connection it holds open too, and so does every
// source of a banned prefix; another source's connection stays.
func TestBanClosesTCPConnections(t *testing.T) {
	s := guardServer(t, func(c *Config) {
		c.GuardMaxAuthFailures, c.GuardMaxRequests, c.GuardPrefixBans = 3, 0, 2
	})
	bad := rawRequest{ruri: "sip:+14155550123@" + acmeHost,
		extra: `Proxy-Authorization: Digest username="pbx1", realm="example.net", nonce="bogus", uri="sip:+14155550123@acme.pstn.example.net", response="00000000000000000000000000000000"` + "\r\n"}
	held, err := dialFrom("127.0.7.1", s.Addr("TCP").String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	neighbour, err := dialFrom("127.0.7.9", s.Addr("TCP").String()) // same /24, never fails
	if err != nil {
		t.Fatal(err)
	}
	defer neighbour.Close()
	bystander, err := dialFrom("127.0.8.1", s.Addr("TCP").String())
	if err != nil {
		t.Fatal(err)
	}
	defer bystander.Close()
	waitFor(t, 10*time.Second, "connections accepted", func() bool { return s.conns.count() == 3 })

	for i := 0; i < 3; i++ {
		expectStatus(t, s, "127.0.7.1:0", bad, "SIP/2.0 407")
	}
	if !closedByPeer(held, 5*time.Second) {
		t.Fatal("the banned source's TCP connection is still open")
	}
	if closedByPeer(neighbour, 200*time.Millisecond) {
		t.Fatal("a neighbour's connection was closed before its prefix was banned")
	}
	for i := 0; i < 3; i++ { // a second source of 127.0.7.0/24: the prefix goes
		expectStatus(t, s, "127.0.7.2:0", bad, "SIP/2.0 407")
	}
	if !closedByPeer(neighbour, 5*time.Second) {
		t.Error("a connection inside the banned prefix is still open")
	}
	if closedByPeer(bystander, 200*time.Millisecond) {
		t.Error("a bystander's connection was closed")
	}
}
