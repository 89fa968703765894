package signalling

import (
	"context"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
)

// scrape reads s's /metrics.
func scrape(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// metricValue finds series (name and labels, as exposed) in a scrape; -1
// when it is absent.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// metricWith sums the series of name whose labels include every one of
// labels (k="v" each): -1 when none matches.
func metricWith(text, name string, labels ...string) float64 {
	sum, found := 0.0, false
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		set, v, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(","+set+",", ","+l+",") {
				match = false
			}
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); match && err == nil {
			sum, found = sum+f, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// TestMetricsRefusal: a refused INVITE moves the refusal and request
// counters; the guard's series start at zero.
func TestMetricsRefusal(t *testing.T) {
	p := provision(t)
	s := serve(t, testConfig(t), p.st)
	before := scrape(t, s)
	for _, series := range []string{`xtrunk_sip_guard_ignored_total{reason="scanner"}`, `xtrunk_sip_requests_total{method="INVITE"}`, `xtrunk_sip_draining`} {
		if v := metricValue(before, series); v != 0 {
			t.Errorf("%s = %v before any traffic, want 0", series, v)
		}
	}
	got := exchange(t, "127.0.0.1:0", s.Addr("UDP").String(), rawRequest{ruri: "sip:+14155550123@" + deniedHost}, 2*time.Second)
	if !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Fatalf("want 403, got %q", statusLine(got))
	}
	after := scrape(t, s)
	if v := metricWith(after, "xtrunk_sip_refusals_total", `code="403"`, `reason="Forbidden"`); v != 1 {
		t.Errorf("403 Forbidden refusals: %v, want 1", v)
	}
	for series, want := range map[string]float64{
		`xtrunk_sip_requests_total{method="INVITE"}`: 1,
	} {
		if v := metricValue(after, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

func TestMetricsLabelsAreBounded(t *testing.T) {
	p := provision(t)
	s := serve(t, testConfig(t), p.st)
	s.metrics.request("XYZZY")
	s.metrics.request("INVITE")
	s.metrics.callStarted("trunking-originating", "TK1")
	s.metrics.callAnswered("trunking-originating", "TK1", 3*time.Second)
	s.metrics.callEnded("trunking-originating", "TK1", 200, 90*time.Second)
	s.metrics.callStarted("trunking-terminating", "TK1")
	s.metrics.callEnded("trunking-terminating", "TK1", 486, 0)
	text := scrape(t, s)
	for series, want := range map[string]float64{
		`xtrunk_sip_requests_total{method="other"}`:                                     1,
		`xtrunk_sip_call_attempts_total{direction="origination",trunk="TK1"}`:           1,
		`xtrunk_sip_calls_answered_total{direction="origination",trunk="TK1"}`:          1,
		`xtrunk_sip_calls_active{direction="origination",trunk="TK1"}`:                  0,
		`xtrunk_sip_call_duration_seconds_sum{direction="origination",trunk="TK1"}`:     90,
		`xtrunk_sip_call_setup_seconds_count{direction="origination",trunk="TK1"}`:      1,
		`xtrunk_sip_calls_failed_total{code="486",direction="termination",trunk="TK1"}`: 1,
		`xtrunk_sip_calls_active{direction="termination",trunk="TK1"}`:                  0,
		`xtrunk_sip_call_duration_seconds_count{direction="termination",trunk="TK1"}`:   0, // unanswered: no duration (the series exists from the call's start)
	} {
		if v := metricValue(text, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if strings.Contains(text, "XYZZY") {
		t.Error("a peer's method name became a label")
	}
}

// TestMetricsRelayErrors: NG commands the relay refuses or never answers
// are counted by command and kind; a call that ends mid-command is not.
func TestMetricsRelayErrors(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // a relay that refuses offers and ignores everything else
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			cookie, d, err := ng.ParseMessage(buf[:n])
			if err != nil || d.Str("command") != "offer" {
				continue
			}
			reply, _ := ng.AppendMessage(nil, cookie, ng.Dict{"result": "error", "error-reason": "no"})
			_, _ = pc.WriteTo(reply, from)
		}
	}()
	p := provision(t)
	s := serve(t, testConfig(t), p.st)
	// The refused offer's answer must beat the timeout on a loaded
	// machine too (at 200 ms it could count as a timeout); the two
	// unanswered requests each wait it out.
	nc, err := ng.Dial(pc.LocalAddr().String(), ng.WithTimeout(2*time.Second), ng.WithRetransmit(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &ngClient{Client: nc, m: s.metrics}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Do(ctx, ng.Dict{"command": "offer"}); err == nil {
		t.Fatal("refused offer: no error")
	}
	if _, err := c.Do(ctx, ng.Dict{"command": "delete"}); err == nil {
		t.Fatal("unanswered delete: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = c.Do(cctx, ng.Dict{"command": "answer"})
	_, _ = c.Do(ctx, ng.Dict{"command": "rm -rf"})
	m := scrape(t, s)
	for series, want := range map[string]float64{
		`xtrunk_sip_relay_ng_errors_total{command="offer",kind="refused"}`:  1,
		`xtrunk_sip_relay_ng_errors_total{command="delete",kind="timeout"}`: 1,
		`xtrunk_sip_relay_ng_errors_total{command="answer",kind="other"}`:   -1,
		`xtrunk_sip_relay_ng_errors_total{command="other",kind="timeout"}`:  1,
	} {
		if v := metricValue(m, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// TestMetricsDeletedTrunk: a deleted trunk's series leave the scrape
// (the store's change feed), another trunk's stay.
func TestMetricsDeletedTrunk(t *testing.T) {
	p := provision(t)
	s := serve(t, testConfig(t), p.st)
	s.metrics.callStarted("trunking-terminating", p.acme.Sid)
	s.metrics.callEnded("trunking-terminating", p.acme.Sid, 486, 0)
	s.metrics.refused(p.acme.Sid, 403, "Forbidden")
	s.metrics.callStarted("trunking-terminating", "TKother")
	series := `xtrunk_sip_call_attempts_total{direction="termination",trunk="` + p.acme.Sid + `"}`
	if v := metricValue(scrape(t, s), series); v != 1 {
		t.Fatalf("%s = %v before the delete", series, v)
	}
	if err := p.st.DeleteTrunk(context.Background(), p.account, p.acme.Sid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		text := scrape(t, s)
		if !strings.Contains(text, p.acme.Sid) {
			if v := metricValue(text, `xtrunk_sip_call_attempts_total{direction="termination",trunk="TKother"}`); v != 1 {
				t.Errorf("another trunk's series went too (%v)", v)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted trunk's series are still scraped:\n%s", grepLines(text, p.acme.Sid))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
