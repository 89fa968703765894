package signalling

import (
	"context"
	"errors"
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

// TestCloseRefusesLateCalls: once Close has begun, a call that passed
// admission (its INVITE was handled before the drain) is refused with
// ErrShuttingDown rather than filed where Close would never hang it up.
func TestCloseRefusesLateCalls(t *testing.T) {
	p := provision(t)
	s := serve(t, testConfig(t), p.st)
	if err := s.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	if err := s.addCall(&call{id: "late", aCallID: "late", done: make(chan struct{})}); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("a call after Close began: %v, want ErrShuttingDown", err)
	}
	if n := s.Calls(); n != 0 {
		t.Errorf("%d calls live after Close", n)
	}
}

// TestHurryCutsHangupWaits: a BYE's wait begun before Hurry is cut short
// (canceled, not run out to byeTimeout), and one begun after Hurry is
// bounded by hurriedByeWait.
func TestHurryCutsHangupWaits(t *testing.T) {
	p := provision(t)
	s := serve(t, testConfig(t), p.st)
	before, cancel := s.hangupWithin()
	defer cancel()
	if d, ok := before.Deadline(); !ok || time.Until(d) <= hurriedByeWait {
		t.Fatalf("before Hurry: deadline %v, want byeTimeout", d)
	}
	s.Hurry()
	<-before.Done()
	if !errors.Is(before.Err(), context.Canceled) {
		t.Errorf("a wait begun before Hurry ended with %v, want canceled by Hurry", before.Err())
	}
	after, cancel2 := s.hangupWithin()
	defer cancel2()
	if d, ok := after.Deadline(); !ok || time.Until(d) > hurriedByeWait {
		t.Errorf("after Hurry: deadline in %v, want at most %v", time.Until(d), hurriedByeWait)
	}
}
