package signalling

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/signalling/route"
)

// TestCarrierHealthHysteresis: a gateway is up until 3 probes in a row go
// unanswered, and comes back after 2 answered in a row; an answer between
// misses resets the count.
func TestCarrierHealthHysteresis(t *testing.T) {
	h := newCarrierHealth()
	const gw = "198.18.2.2:5060;transport=udp"
	if !h.isUp(gw) {
		t.Fatal("an unprobed gateway is down")
	}
	steps := []struct {
		answered    bool
		up, changed bool
	}{
		{false, true, false}, {false, true, false}, {true, true, false}, // reset by the answer
		{false, true, false}, {false, true, false}, {false, false, true}, // 3 misses: down
		{false, false, false}, {true, false, false}, {false, false, false}, // one answer is not enough
		{true, false, false}, {true, true, true}, // 2 answers: up
	}
	for i, s := range steps {
		up, changed := h.record(gw, s.answered)
		if up != s.up || changed != s.changed || h.isUp(gw) != s.up {
			t.Fatalf("step %d (answered %v): up %v changed %v, want %v %v", i, s.answered, up, changed, s.up, s.changed)
		}
	}
	if gone := h.keep(map[string]bool{}); len(gone) != 1 || gone[0] != gw {
		t.Errorf("keep(none) forgot %v, want [%s]", gone, gw)
	}
}

// TestHealthyTargets: down gateways are skipped while one is up; with all
// down, every target is kept (route order decides).
func TestHealthyTargets(t *testing.T) {
	s := &Server{carriers: newCarrierHealth()}
	a := dest{host: "198.18.2.2", port: 5060, transport: "UDP"}
	b := dest{host: "198.18.2.3", port: 5060, transport: "UDP"}
	targets := []route.Target[dest]{{Priority: 5, Weight: 1, Value: a}, {Priority: 10, Weight: 1, Value: b}}
	for range probeDownAfter {
		s.carriers.record(gatewayLabel(a), false)
	}
	if got := s.healthy(targets); len(got) != 1 || got[0].Value.host != b.host {
		t.Errorf("with a down: %v, want only b", got)
	}
	for range probeDownAfter {
		s.carriers.record(gatewayLabel(b), false)
	}
	if got := s.healthy(targets); len(got) != 2 {
		t.Errorf("with both down: %v, want both", got)
	}
	if l := gatewayLabel(dest{host: "2001:db8::1", transport: "TLS", user: "x"}); l != "[2001:db8::1];transport=tls" {
		t.Errorf("gateway label %q", l)
	}
}

// TestCarrierProbeFollowsReload: the prober probes the carriers in force —
// two loopback gateways, one answering OPTIONS, one silent: the silent one
// goes down, the other stays up — and after a reload that replaces the
// silent one, its state and series go and the new gateway is probed.
func TestCarrierProbeFollowsReload(t *testing.T) {
	answering, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer answering.Close()
	go answerOptions(answering)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	p := provision(t)
	cfg := testConfig(t)
	// A probe waits min(interval, probeTimeoutMax) for its answer: at
	// 100 ms the answering gateway's 200 missed it under load and that
	// gateway went down too. 1 s: the silent one is down after 3 rounds
	// (about 6 s), well inside the waits below.
	cfg.CarrierProbeInterval = time.Second
	cfg.Carriers = []string{"sip:" + answering.LocalAddr().String(), "sip:" + silent.LocalAddr().String()}
	s := serve(t, cfg, p.st)
	upSeries := func(a net.Addr) string {
		return `xtrunk_sip_carrier_up{gateway="` + a.String() + `;transport=udp"}`
	}
	waitFor := func(what string, ok func(text string) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok(scrape(t, s)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s; scrape:\n%s", what, grepLines(scrape(t, s), "xtrunk_sip_carrier_up"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the silent gateway is not probed down", func(text string) bool {
		return metricValue(text, upSeries(silent.LocalAddr())) == 0 && metricValue(text, upSeries(answering.LocalAddr())) == 1
	})

	fresh, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	go answerOptions(fresh)
	next := cfg
	next.Carriers = []string{"sip:" + answering.LocalAddr().String(), "sip:" + fresh.LocalAddr().String()}
	if _, _, err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	waitFor("the reload is not followed", func(text string) bool {
		return metricValue(text, upSeries(silent.LocalAddr())) == -1 && metricValue(text, upSeries(fresh.LocalAddr())) == 1
	})
}

// answerOptions answers each request read from pc with a 200 (enough SIP
// for sipgo's client transaction: Via, From, To, Call-ID and CSeq copied).
func answerOptions(pc net.PacketConn) {
	buf := make([]byte, 4096)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var hdrs []string
		for _, line := range strings.Split(string(buf[:n]), "\r\n") {
			name, _, _ := strings.Cut(line, ":")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "via", "from", "to", "call-id", "cseq":
				hdrs = append(hdrs, line)
			}
		}
		res := "SIP/2.0 200 OK\r\n" + strings.Join(hdrs, "\r\n") + "\r\nContent-Length: 0\r\n\r\n"
		_, _ = pc.WriteTo([]byte(res), from)
	}
}
