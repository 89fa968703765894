package signalling

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestParseSessionExpires(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sessionExpires
		bad  bool
	}{
		{in: "1800", want: sessionExpires{delta: 1800}},
		{in: " 90 ", want: sessionExpires{delta: 90}},
		{in: "4000;refresher=uac", want: sessionExpires{delta: 4000, refresher: "uac"}},
		{in: "4000 ; Refresher = UAS", want: sessionExpires{delta: 4000, refresher: "uas"}},
		{in: "4000;foo=bar;refresher=uas;x", want: sessionExpires{delta: 4000, refresher: "uas"}},
		{in: "4294967295", want: sessionExpires{delta: 4294967295}},
		{in: "", bad: true},
		{in: "0", bad: true},
		{in: "-5", bad: true},
		{in: "1e3", bad: true},
		{in: "4294967296", bad: true},
		{in: "1800;refresher=proxy", bad: true},
		{in: "1800;refresher=uac;refresher=uas", bad: true},
		{in: ";refresher=uac", bad: true},
	} {
		got, err := parseSessionExpires(tc.in)
		if tc.bad {
			if !errors.Is(err, errTimerHeader) {
				t.Errorf("%q: err %v, want errTimerHeader", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMinSE(t *testing.T) {
	for in, want := range map[string]uint32{"90": 90, " 120;lr": 120, "x": 0, "": 0, "0": 0, "99999999999": 0} {
		got, err := parseMinSE(in)
		if want == 0 {
			if err == nil {
				t.Errorf("%q: no error", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
}

// FuzzSessionTimerHeaders: whatever the peer sends, parsing returns a
// value that prints back to itself or an error, never a panic, and never
// a zero interval.
func FuzzSessionTimerHeaders(f *testing.F) {
	for _, s := range []string{"1800", "90;refresher=uac", "4000;refresher=uas;x=y", "0", "", ";", "1;refresher=", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if se, err := parseSessionExpires(v); err == nil {
			if se.delta == 0 {
				t.Fatalf("%q: zero interval accepted", v)
			}
			back, err := parseSessionExpires(se.String())
			if err != nil || back != se {
				t.Fatalf("%q: %+v prints as %q which reads %+v, %v", v, se, se.String(), back, err)
			}
		} else if !errors.Is(err, errTimerHeader) {
			t.Fatalf("%q: error %v is not errTimerHeader", v, err)
		}
		if n, err := parseMinSE(v); err == nil && n == 0 {
			t.Fatalf("%q: zero Min-SE accepted", v)
		}
	})
}

// request is an INVITE carrying hdrs ("Name: value" lines).
func request(t *testing.T, hdrs ...string) *sip.Request {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "+14155550100", Host: "example.net"})
	for _, h := range hdrs {
		name, val, _ := strings.Cut(h, ":")
		req.AppendHeader(sip.NewHeader(name, strings.TrimSpace(val)))
	}
	return req
}

func TestReadTimerOffer(t *testing.T) {
	o, err := readTimerOffer(request(t, "k: 100rel, Timer", "x: 600;refresher=uas", "Min-SE: 120", "Allow: INVITE, ACK, UPDATE", "Require: timer"))
	if err != nil || !o.supported || !o.require || !o.update || o.se == nil || *o.se != (sessionExpires{600, "uas"}) || o.minSE != 120 {
		t.Fatalf("compact forms: %+v, %v", o, err)
	}
	o, err = readTimerOffer(request(t, "Supported: 100rel", "Allow: INVITE, BYE"))
	if err != nil || o.supported || o.update || o.se != nil || o.minSE != 0 {
		t.Fatalf("no timer: %+v, %v", o, err)
	}
	for _, bad := range []string{"Session-Expires: soon", "Min-SE: -1"} {
		if _, err := readTimerOffer(request(t, bad)); !errors.Is(err, errTimerHeader) {
			t.Errorf("%s: err %v", bad, err)
		}
	}
}

// TestUASTimer: the edge answering a request (RFC 4028 §9).
func TestUASTimer(t *testing.T) {
	const minSE, dflt = 90 * time.Second, 1800 * time.Second
	se := func(d uint32, r string) *sessionExpires { return &sessionExpires{d, r} }
	for _, tc := range []struct {
		name     string
		o        timerOffer
		cur      legTimer
		dflt     time.Duration
		interval time.Duration
		edge     bool // the edge refreshes
		require  bool
		small    bool
	}{
		{name: "below minimum", o: timerOffer{se: se(30, ""), supported: true}, dflt: dflt, small: true},
		{name: "refresher uac kept", o: timerOffer{se: se(600, "uac"), supported: true}, dflt: dflt, interval: 600 * time.Second, require: true},
		{name: "refresher uas kept", o: timerOffer{se: se(600, "uas"), supported: true}, dflt: dflt, interval: 600 * time.Second, edge: true, require: true},
		{name: "no refresher, timer supported: the requester", o: timerOffer{se: se(300, ""), supported: true}, dflt: dflt, interval: 300 * time.Second, require: true},
		{name: "no refresher, no support: the edge", o: timerOffer{se: se(300, "")}, dflt: dflt, interval: 300 * time.Second, edge: true},
		{name: "none asked: the edge's default, the edge refreshes", o: timerOffer{}, dflt: dflt, interval: dflt, edge: true},
		{name: "none asked, supported: Require", o: timerOffer{supported: true}, dflt: dflt, interval: dflt, edge: true, require: true},
		{name: "none asked, Min-SE above the default", o: timerOffer{minSE: 3600}, dflt: dflt, interval: 3600 * time.Second, edge: true},
		{name: "none asked, no default: off", o: timerOffer{supported: true}},
		{name: "refresh without SE keeps the peer refreshing", o: timerOffer{supported: true}, cur: legTimer{interval: 600 * time.Second}, interval: 600 * time.Second, require: true},
		{name: "refresh without SE from a peer without support: the edge", o: timerOffer{}, cur: legTimer{interval: 600 * time.Second}, interval: 600 * time.Second, edge: true},
	} {
		l, require, small := uasTimer(tc.o, minSE, tc.dflt, tc.cur)
		if small != tc.small {
			t.Errorf("%s: tooSmall %v", tc.name, small)
			continue
		}
		if small {
			continue
		}
		if l.interval != tc.interval || l.edgeRefreshes != tc.edge || require != tc.require {
			t.Errorf("%s: interval %v edge refreshes %v require %v; want %v %v %v", tc.name, l.interval, l.edgeRefreshes, require, tc.interval, tc.edge, tc.require)
		}
	}
}

// TestUACTimer: the edge reading the 2xx to its request (§7.2).
func TestUACTimer(t *testing.T) {
	if l := uacTimer(timerOffer{}, legTimer{}); l.interval != 0 {
		t.Errorf("a 2xx without Session-Expires is no timer, got %v", l.interval)
	}
	if l := uacTimer(timerOffer{supported: true}, legTimer{interval: time.Minute, edgeRefreshes: true}); l.interval != 0 {
		t.Errorf("a peer doing timers turns it off with a 2xx without Session-Expires, got %v", l.interval)
	}
	if l := uacTimer(timerOffer{}, legTimer{interval: time.Minute}); l.interval != 0 {
		t.Errorf("a leg the peer refreshed: off, got %v", l.interval)
	}
	if l := uacTimer(timerOffer{}, legTimer{interval: time.Minute, edgeRefreshes: true}); l.interval != time.Minute || !l.edgeRefreshes {
		t.Errorf("a peer without timers on a leg the edge refreshes alone: kept, got %+v", l)
	}
	if l := uacTimer(timerOffer{se: &sessionExpires{120, "uas"}}, legTimer{}); l.interval != 2*time.Minute || l.edgeRefreshes {
		t.Errorf("refresher=uas is the peer: %+v", l)
	}
	for _, r := range []string{"uac", ""} {
		if l := uacTimer(timerOffer{se: &sessionExpires{120, r}}, legTimer{}); !l.edgeRefreshes {
			t.Errorf("refresher=%q is the edge: %+v", r, l)
		}
	}
}

// TestTimerHeadersAndTimes: the refresher named from each side of a
// transaction, and when the edge refreshes or gives up (§10).
func TestTimerHeadersAndTimes(t *testing.T) {
	l := legTimer{interval: 8 * time.Second, edgeRefreshes: true}
	get := func(hdrs []sip.Header, name string) string {
		for _, h := range hdrs {
			if h.Name() == name {
				return h.Value()
			}
		}
		return ""
	}
	h := timerHeaders(l, true, false)
	if get(h, "Session-Expires") != "8;refresher=uac" || get(h, "Supported") != "timer" || get(h, "Require") != "" {
		t.Errorf("request headers: %v", h)
	}
	h = timerHeaders(l, false, true)
	if get(h, "Session-Expires") != "8;refresher=uas" || get(h, "Require") != "timer" {
		t.Errorf("response headers: %v", h)
	}
	if h := timerHeaders(legTimer{}, false, true); get(h, "Session-Expires") != "" {
		t.Errorf("off: %v", h)
	}
	now := time.Unix(1000, 0)
	l.restart(now)
	if l.refreshAt != now.Add(4*time.Second) || l.expireAt.Sub(now).Round(time.Millisecond) != 5333*time.Millisecond {
		t.Errorf("8 s: refresh %v expire %v", l.refreshAt.Sub(now), l.expireAt.Sub(now))
	}
	long := legTimer{interval: 1800 * time.Second}
	long.restart(now)
	if !long.refreshAt.IsZero() || long.expireAt != now.Add(1768*time.Second) {
		t.Errorf("1800 s, peer refreshes: refresh %v expire %v", long.refreshAt, long.expireAt.Sub(now))
	}
}

// TestSessionTimersInvite: 422 with Min-SE at admission, the interval
// asked of the B-leg, and a callee's 422 retried once.
func TestSessionTimersInvite(t *testing.T) {
	s := &Server{cfg: DefaultConfig()}
	if _, ref, hdrs := s.sessionTimersOf(request(t, "Session-Expires: 30", "Supported: timer")); ref == nil || ref.status != 422 || len(hdrs) != 1 || hdrs[0].Name() != "Min-SE" || hdrs[0].Value() != "90" {
		t.Fatalf("SE 30: %+v %v", ref, hdrs)
	}
	if _, ref, _ := s.sessionTimersOf(request(t, "Session-Expires: 1800;refresher=bob")); ref == nil || ref.status != 400 {
		t.Fatalf("bad refresher: %+v", ref)
	}
	st, ref, _ := s.sessionTimersOf(request(t, "Session-Expires: 600;refresher=uac", "Supported: timer", "Min-SE: 300"))
	if ref != nil {
		t.Fatal(ref)
	}
	want := map[string]string{"Supported": "timer", "Session-Expires": "600", "Min-SE": "90"}
	check := func() {
		t.Helper()
		got := map[string]string{}
		for _, h := range st.inviteHeaders() {
			got[h.Name()] = h.Value()
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %q, want %q", k, got[k], v)
			}
		}
	}
	check()
	res := sip.NewResponseFromRequest(request(t), 422, "Session Interval Too Small", nil)
	res.AppendHeader(sip.NewHeader("Min-SE", "900"))
	if !st.tooSmall(res) || st.tooSmall(res) {
		t.Fatal("a 422 is retried exactly once")
	}
	want["Session-Expires"], want["Min-SE"] = "900", "900"
	check()

	// The answer: the callee refreshes its leg, the caller (refresher=uac) its.
	ok := sip.NewResponseFromRequest(request(t), 200, "OK", nil)
	ok.AppendHeader(sip.NewHeader("Session-Expires", "900;refresher=uas"))
	hdrs := st.answered(ok)
	if a, b := st.snapshot(true), st.snapshot(false); a.edgeRefreshes || b.edgeRefreshes || a.interval != 600*time.Second || b.interval != 900*time.Second {
		t.Errorf("legs: %+v %+v", a, b)
	}
	got := map[string]string{}
	for _, h := range hdrs {
		got[h.Name()] = h.Value()
	}
	if got["Session-Expires"] != "600;refresher=uac" || got["Require"] != "timer" {
		t.Errorf("A-leg 2xx: %v", got)
	}
	if act, toA, at := st.next(); act != actExpire || !toA || time.Until(at) > 600*time.Second-32*time.Second {
		t.Errorf("next: %v %v %v", act, toA, time.Until(at))
	}
}

func TestSessionTimerConfig(t *testing.T) {
	for _, tc := range []struct{ minSE, se time.Duration }{{0, 0}, {1500 * time.Millisecond, 0}, {90 * time.Second, 60 * time.Second}, {90 * time.Second, -time.Second}, {90 * time.Second, 5000000000 * time.Second}} {
		c := DefaultConfig()
		c.SessionMinSE, c.SessionExpires = tc.minSE, tc.se
		if err := c.validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("min %v expires %v: %v", tc.minSE, tc.se, err)
		}
	}
	c := DefaultConfig()
	c.SessionMinSE, c.SessionExpires = 4*time.Second, 0
	if err := c.validate(); err != nil {
		t.Error(err)
	}
}

// TestSessionTimerWatch: the watcher is one timer, armed for the earliest
// thing to do once there is a watcher, re-armed by every change to a
// leg, and disarmed for good when the call ends: an ended call leaves no
// timer that would keep it in memory until its session would expire.
func TestSessionTimerWatch(t *testing.T) {
	st := &sessionTimers{}
	fired := make(chan time.Time, 4)
	st.set(true, legTimer{interval: 300 * time.Millisecond, edgeRefreshes: true})
	st.mu.Lock()
	if st.timer != nil {
		t.Error("armed before there is a watcher (the answer)")
	}
	st.fire = func() { fired <- time.Now() }
	st.armLocked()
	st.mu.Unlock()

	start := time.Now()
	select { // refreshAt: half the interval
	case at := <-fired:
		if d := at.Sub(start); d < 100*time.Millisecond {
			t.Errorf("fired after %v, want about 150 ms (the refresh)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher never fired")
	}

	// A change re-arms: a longer interval moves the next refresh.
	st.set(true, legTimer{interval: time.Hour, edgeRefreshes: true})
	st.mu.Lock()
	armed := st.timer != nil
	st.mu.Unlock()
	if !armed {
		t.Fatal("not re-armed by set")
	}
	select {
	case <-fired:
		t.Fatal("fired for the old interval after set")
	case <-time.After(300 * time.Millisecond):
	}

	st.stopWatch()
	st.set(false, legTimer{interval: 100 * time.Millisecond, edgeRefreshes: true})
	st.mu.Lock()
	left := st.timer
	st.mu.Unlock()
	if left != nil {
		t.Error("a timer armed after the call ended")
	}
	var nilST *sessionTimers
	nilST.stopWatch() // a call without session timers
}
