package signalling

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/siptest"
)

// TestDrain: while draining, a new INVITE gets 503 with Retry-After and
// OPTIONS get 503, requests within a call in progress still reach their
// handler, and Drain returns once the last call is gone.
func TestDrain(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.DrainTimeout = 90 * time.Second
	s := serve(t, cfg, p.st)
	up := fakeCall(s, "up-1")

	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	for !s.Draining() {
		time.Sleep(time.Millisecond)
	}
	invite := rawRequest{ruri: "sip:+14155550123@" + aclHost}
	got := exchange(t, "127.0.0.1:0", s.Addr("UDP").String(), invite, 2*time.Second)
	if statusLine(got) != "SIP/2.0 503 Service Unavailable" || !strings.Contains(got, "Retry-After: 90") {
		t.Fatalf("new INVITE while draining:\n%s", got)
	}
	got = exchange(t, "127.0.0.1:0", s.Addr("UDP").String(), rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}, 2*time.Second)
	if !strings.HasPrefix(got, "SIP/2.0 503") {
		t.Fatalf("OPTIONS while draining: %q", statusLine(got))
	}
	expectStatus(t, s, "127.0.0.1:0", rawRequest{method: "OPTIONS", ruri: "sip:nope.pstn.example.net"}, "")

	for _, method := range []string{"BYE", "INVITE", "ACK"} {
		raw := "" + method + " sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK" + method + "\r\n" +
			"From: <sip:+14155550100@pbx>;tag=pbx\r\nTo: <sip:+14155550123@" + aclHost + ">;tag=b2bua\r\nCall-ID: up-1\r\n" +
			"CSeq: 3 " + method + "\r\nContact: <sip:pbx@127.0.0.1:5099>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
		req := parseRequest(t, []byte(raw), "127.0.0.1:5099")
		tx := siptest.NewServerTxRecorder(req)
		if !s.screen(req, tx) {
			t.Errorf("in-dialog %s refused while draining", method)
		}
		tx.Terminate()
	}

	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with a call up", err)
	default:
	}
	up.end()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain with no calls: %v", err)
	}
	again := fakeCall(s, "up-2")
	if err := s.Drain(ctx); err == nil {
		t.Fatal("Drain with a call up and its context over returned nil")
	}
	again.end()

	m := scrape(t, s)
	if v := metricValue(m, `xtrunk_sip_refusals_total{code="503",reason="draining",trunk="unknown"}`); v != 1 {
		t.Errorf("draining refusals %v, want 1", v)
	}
	if v := metricValue(m, `xtrunk_sip_draining`); v != 1 {
		t.Errorf("draining gauge %v", v)
	}
}

// testCall is a call in progress as far as the Server's books go: known
// by its Call-ID, live until end.
type testCall struct {
	s *Server
	c *call
}

func fakeCall(s *Server, id string) testCall {
	c := &call{id: id, aCallID: id, done: make(chan struct{})}
	s.mu.Lock()
	s.calls[id] = c
	s.byA[id] = c
	s.mu.Unlock()
	s.track(c)
	return testCall{s, c}
}

func (tc testCall) end() {
	tc.s.removeCall(tc.c)
	close(tc.c.done)
	tc.s.untrack()
}
