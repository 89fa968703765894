package signalling

import (
	"testing"

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
