package signalling

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// sendFrom sends one datagram to addr from a fresh socket on src.
func sendFrom(t *testing.T, src, addr string, data []byte) {
	t.Helper()
	c, err := net.ListenPacket("udp", src+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(data, ua); err != nil {
		t.Fatal(err)
	}
}

// junk is a datagram sipgo cannot parse, of about size bytes.
func junk(i, size int) []byte {
	return []byte(fmt.Sprintf("NOT SIP %d\r\n%s\r\n\r\n", i, strings.Repeat("x", size)))
}

// TestMalformedDatagrams: junk datagrams are counted by transport, fed
// to the guard (a source sending more than --guard-max-requests of them
// in a window is banned, after which its datagrams are dropped unparsed)
// and logged at most 10 a second, each cut to 256 bytes.
func TestMalformedDatagrams(t *testing.T) {
	p := provision(t)
	logs := &syncBuffer{}
	cfg := testConfig(t)
	cfg.GuardRequestWindow = time.Minute // the ban must not depend on the box's speed
	s := serve(t, cfg, p.st, WithLogger(zerolog.New(logs).With().Timestamp().Logger()))
	addr := s.Addr("UDP").String()
	malformed := func() int { return int(series(t, s, `xtrunk_sip_malformed_total{transport="UDP"}`)) }

	// Five sources, 15 junk datagrams of 30 KB each: under the ban's
	// threshold, over the log budget.
	n := 0
	for src := 1; src <= 5; src++ {
		for i := 0; i < 15; i++ {
			sendFrom(t, fmt.Sprintf("127.0.10.%d", src), addr, junk(n, 30000))
			n++
			waitFor(t, 10*time.Second, "junk counted", func() bool { return malformed() == n })
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.take()), "\n")
	perSecond := map[string]int{}
	logged := 0
	for _, l := range lines {
		var e struct {
			Message, Time, Data, Error string
			Bytes                      int
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if e.Message != "malformed SIP message" {
			continue
		}
		logged++
		perSecond[e.Time]++
		if len(e.Data) > malformedLogBytes || len(e.Error) > malformedLogBytes {
			t.Errorf("log line not cut short: %d bytes of data, %d of error", len(e.Data), len(e.Error))
		}
		if e.Bytes < 30000 {
			t.Errorf("logged size %d, want the datagram's", e.Bytes)
		}
	}
	for sec, k := range perSecond {
		if k > malformedLogsPerSecond {
			t.Errorf("%d malformed lines logged in second %s", k, sec)
		}
	}
	if logged == 0 || logged >= n {
		t.Errorf("%d lines logged for %d malformed datagrams", logged, n)
	}
	for src := 1; src <= 5; src++ {
		if a := netip.MustParseAddr(fmt.Sprintf("127.0.10.%d", src)); s.abuse.IsBanned(a) {
			t.Errorf("%s banned after 15 datagrams", a)
		}
	}

	// One more source sends past the threshold: banned by the flood
	// rule, and what it sends next is not even parsed.
	banned := netip.MustParseAddr("127.0.11.1")
	for i := 0; i <= cfg.GuardMaxRequests; i++ {
		sendFrom(t, banned.String(), addr, junk(i, 100))
		n++
		waitFor(t, 10*time.Second, "junk counted", func() bool { return malformed() == n })
	}
	if !s.abuse.IsBanned(banned) {
		t.Fatalf("%s not banned after %d malformed datagrams", banned, cfg.GuardMaxRequests+1)
	}
	if got := series(t, s, `xtrunk_sip_guard_bans_total{reason="flood"}`); got != 1 {
		t.Errorf("flood bans %v, want 1", got)
	}
	before := series(t, s, `xtrunk_sip_guard_ignored_total{reason="banned"}`)
	for i := 0; i < 5; i++ {
		sendFrom(t, banned.String(), addr, junk(i, 100))
	}
	waitFor(t, 10*time.Second, "banned junk dropped", func() bool {
		return series(t, s, `xtrunk_sip_guard_ignored_total{reason="banned"}`) == before+5
	})
	if malformed() != n {
		t.Errorf("a banned source's junk was parsed: %d malformed, want %d", malformed(), n)
	}
}

// TestMalformedStream: a TCP stream that breaks SIP framing is counted
// and closed.
func TestMalformedStream(t *testing.T) {
	p := provision(t)
	s := serve(t, testConfig(t), p.st)
	c := dialTCP(t, s.Addr("TCP").String())
	if _, err := c.Write([]byte("INVITE sip:x SIP/2.0\r\nContent-Length: banana\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(c, 5*time.Second) {
		t.Fatal("connection with broken framing left open")
	}
	if got := series(t, s, `xtrunk_sip_malformed_total{transport="TCP"}`); got != 1 {
		t.Errorf("malformed TCP %v, want 1", got)
	}
}

// TestUnknownDomainsBounded: a scanner's endless trunk names are
// remembered as unknown up to maxUnknownDomains, least recently asked
// first out; real trunks still resolve, and a new trunk is found once the
// store says so.
func TestUnknownDomainsBounded(t *testing.T) {
	p := provision(t)
	c := NewCache(p.st, testDomain, nil)
	ctx := context.Background()
	for i := 0; i < maxUnknownDomains+500; i++ {
		if _, ok, err := c.Trunk(ctx, fmt.Sprintf("scan%d.pstn.%s", i, testDomain)); ok || err != nil {
			t.Fatalf("scan%d: ok %v, err %v", i, ok, err)
		}
	}
	if n := c.unknown.Len(); n != maxUnknownDomains {
		t.Errorf("%d unknown domains remembered, want %d", n, maxUnknownDomains)
	}
	if _, ok, err := c.Trunk(ctx, aclHost); !ok || err != nil {
		t.Errorf("%s: ok %v, err %v", aclHost, ok, err)
	}
	if _, miss := c.unknown.Peek("scan0.pstn." + testDomain); miss {
		t.Error("the oldest unknown domain was not the one forgotten")
	}
}

// TestUDPSourcesBounded: sipgo's UDP listener remembers at most its bound
// of sources however many write to it.
func TestUDPSourcesBounded(t *testing.T) {
	p := provision(t)
	const bound = 50
	s := serve(t, testConfig(t), p.st, withUDPMaxSources(bound))
	addr := s.Addr("UDP").String()
	pool := s.ua.TransportLayer().Pool("udp")
	for i := 0; i < 300; i++ {
		// A keep-alive from a new source port each time; the listener
		// reads them in order, so the last one is read last.
		sendFrom(t, "127.0.12.1", addr, []byte("\r\n\r\n"))
	}
	opts := rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}
	if got := exchange(t, "127.0.12.2:0", addr, opts, 5*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS after the flood of sources: %q", statusLine(got))
	}
	if n := pool.Size(); n > bound+1 { // + the listener's own address
		t.Errorf("UDP pool holds %d entries, bound %d", n, bound)
	}
}
