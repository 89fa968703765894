package relay

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// The janitor's decisions, at chosen instants: sweep is called with the
// time it would see, so nothing here waits on a clock.

func callByID(r *Relay, id string) *call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

// touch says the call had signalling (or media) at at.
func touch(t *testing.T, r *Relay, id string, at time.Time) {
	t.Helper()
	c := callByID(r, id)
	if c == nil {
		t.Fatalf("call %s is gone at %v", id, at)
	}
	c.mu.Lock()
	c.lastSignal = at
	c.mu.Unlock()
}

// An idle call is reported timed out first (query and list), then deleted
// with its ports a linger later; one whose media comes back in between is
// not.
func TestIdleCallDeletedAfterReport(t *testing.T) {
	r := loopbackRelay(t)
	lo := netip.MustParseAddr("127.0.0.1")
	for _, id := range []string{"idle", "back"} {
		if rep := serve(r, ng.Dict{"command": "offer", "call-id": id, "from-tag": "a", "sdp": g711SDP(lo, 20000)}); rep.Str("result") != "ok" {
			t.Fatal(rep)
		}
	}
	t0 := time.Now()
	timeout, linger := r.cfg.Timeout, r.cfg.TimeoutLinger

	r.sweep(t0.Add(timeout + time.Second))
	for _, id := range []string{"idle", "back"} {
		if q := serve(r, ng.Dict{"command": "query", "call-id": id}); !isTimedOut(q) {
			t.Errorf("%s: idle past the timeout but query says %v", id, q.Str("status"))
		}
	}
	to := serve(r, ng.Dict{"command": "list"}).Strings("timed out")
	if slices.Sort(to); !slices.Equal(to, []string{"back", "idle"}) {
		t.Errorf("list \"timed out\" = %v", to)
	}

	touch(t, r, "back", t0.Add(timeout+2*time.Second)) // media again
	r.sweep(t0.Add(timeout + 3*time.Second))
	if q := serve(r, ng.Dict{"command": "query", "call-id": "back"}); isTimedOut(q) {
		t.Error("a call whose media came back is still timed out")
	}
	if q := serve(r, ng.Dict{"command": "query", "call-id": "idle"}); !isTimedOut(q) {
		t.Errorf("idle call deleted before its linger (%v) was over: %v", linger, q)
	}

	r.sweep(t0.Add(timeout + time.Second + linger))
	if q := serve(r, ng.Dict{"command": "query", "call-id": "idle"}); q.Str("result") != "error" {
		t.Errorf("idle call still there a linger after its timeout: %v", q.Str("status"))
	}
	if q := serve(r, ng.Dict{"command": "query", "call-id": "back"}); q.Str("result") != "ok" {
		t.Errorf("the call with media was deleted: %v", q)
	}
	if held := r.ports.inUse(); held != 2 {
		t.Errorf("%d port pairs held, want the remaining call's 2", held)
	}
}

// A long call with media is not cut: there is no final timeout unless one
// is configured, and then it applies as configured.
func TestFinalTimeout(t *testing.T) {
	r := loopbackRelay(t)
	lo := netip.MustParseAddr("127.0.0.1")
	if rep := serve(r, ng.Dict{"command": "offer", "call-id": "long", "from-tag": "a", "sdp": g711SDP(lo, 20000)}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	t0 := time.Now()
	for h := 1; h <= 24; h++ {
		now := t0.Add(time.Duration(h) * time.Hour)
		touch(t, r, "long", now.Add(-time.Second)) // media all along
		r.sweep(now)
	}
	if q := serve(r, ng.Dict{"command": "query", "call-id": "long"}); q.Str("result") != "ok" || isTimedOut(q) {
		t.Fatalf("a 24 h call with media was cut or timed out: %v", q)
	}

	r.cfg.FinalTimeout = 25 * time.Hour
	now := t0.Add(26 * time.Hour)
	touch(t, r, "long", now.Add(-time.Second))
	r.sweep(now)
	if q := serve(r, ng.Dict{"command": "query", "call-id": "long"}); q.Str("result") != "error" {
		t.Errorf("call older than the configured final timeout not deleted: %v", q.Str("status"))
	}
	if held := r.ports.inUse(); held != 0 {
		t.Errorf("%d port pairs held after the final timeout", held)
	}
}

func TestTimeoutConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interfaces = []Interface{{Name: "x", Addr: netip.MustParseAddr("127.0.0.1")}}
	if cfg.FinalTimeout != 0 {
		t.Errorf("default final timeout %v: long calls would be cut", cfg.FinalTimeout)
	}
	cfg.FinalTimeout = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Error("negative final timeout accepted")
	}
}

// TestJitterSampleConfig: --jitter-sample is 1 or a power of two up to
// bpf.MaxJitterSample; anything else is refused before the program loads.
func TestJitterSampleConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interfaces = []Interface{{Name: "x", Addr: netip.MustParseAddr("127.0.0.1")}}
	if cfg.JitterSample != DefaultJitterSample {
		t.Errorf("default jitter sample %d, want %d", cfg.JitterSample, DefaultJitterSample)
	}
	for _, n := range []int{1, 2, 8, 16, bpf.MaxJitterSample} {
		cfg.JitterSample = n
		if err := cfg.Validate(); err != nil {
			t.Errorf("--jitter-sample %d refused: %v", n, err)
		}
	}
	for _, n := range []int{0, -8, 3, 12, 2 * bpf.MaxJitterSample} {
		cfg.JitterSample = n
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("--jitter-sample %d: %v, want ErrConfig", n, err)
		}
	}
}
