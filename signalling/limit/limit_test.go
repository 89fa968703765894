package limit

import (
	"net/netip"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time      { return f.t }
func (f *fakeClock) add(d time.Duration) { f.t = f.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func TestCPS(t *testing.T) {
	c := newClock()
	l := NewCPS(c.now)
	if !l.Allow("TK1", 1) || l.Allow("TK1", 1) {
		t.Fatal("CPS 1: the second call in the same second must be refused")
	}
	if !l.Allow("TK2", 1) {
		t.Fatal("trunks share a limit")
	}
	c.add(999 * time.Millisecond)
	if l.Allow("TK1", 1) {
		t.Fatal("allowed before the second was over")
	}
	c.add(time.Millisecond)
	if !l.Allow("TK1", 1) {
		t.Fatal("refused after a second")
	}
	for i := 0; i < 5; i++ {
		if !l.Allow("TK3", 5) {
			t.Fatalf("CPS 5 refused call %d", i+1)
		}
	}
	if l.Allow("TK3", 5) || !l.Allow("TK3", 0) {
		t.Fatal("CPS 5: the sixth must be refused; limit 0 means none")
	}
}

func TestConcurrent(t *testing.T) {
	c := NewConcurrent()
	for i := 0; i < 4; i++ {
		if !c.Acquire("trial", 4) {
			t.Fatalf("call %d refused", i+1)
		}
	}
	if c.Acquire("trial", 4) {
		t.Fatal("fifth concurrent call on a trial trunk allowed")
	}
	c.Release("trial")
	if !c.Acquire("trial", 4) || c.InUse("trial") != 4 {
		t.Fatal("slot not given back")
	}
}

func TestGuardFloodAndBan(t *testing.T) {
	c := newClock()
	g := NewGuard(DefaultGuard(), c.now)
	src := netip.MustParseAddr("198.18.1.2")
	for i := 0; i < 16; i++ {
		if v, _ := g.Check(src, "INVITE", "PBX"); v != Accept {
			t.Fatalf("request %d refused", i+1)
		}
		c.add(100 * time.Millisecond)
	}
	if v, r := g.Check(src, "INVITE", "PBX"); v != Ignore || r != ReasonFlood {
		t.Fatalf("17th request in 2 s: %v %q", v, r)
	}
	c.add(4 * time.Minute)
	if v, r := g.Check(src, "INVITE", "PBX"); v != Ignore || r != ReasonBanned {
		t.Fatalf("still banned after 4 min: %v %q", v, r)
	}
	if v, _ := g.Check(netip.MustParseAddr("198.18.1.3"), "INVITE", "PBX"); v != Accept {
		t.Fatal("another source is banned too")
	}
	c.add(61 * time.Second)
	if v, _ := g.Check(src, "INVITE", "PBX"); v != Accept {
		t.Fatal("ban outlived 5 minutes")
	}
}

func TestGuardAuthFailures(t *testing.T) {
	c := newClock()
	g := NewGuard(DefaultGuard(), c.now)
	src := netip.MustParseAddr("198.18.1.9")
	for i := 0; i < 9; i++ {
		if g.AuthFailed(src) {
			t.Fatalf("banned after %d failures", i+1)
		}
		c.add(5 * time.Second)
	}
	if !g.AuthFailed(src) {
		t.Fatal("10 failures in a minute did not ban")
	}
	if v, _ := g.Check(src, "REGISTER", ""); v != Ignore {
		t.Fatal("banned source heard")
	}
	if st := g.Stats(); st.BannedSources != 1 || st.SourceBans != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGuardScannersAndOptions(t *testing.T) {
	c := newClock()
	g := NewGuard(DefaultGuard(), c.now)
	for _, ua := range []string{"friendly-scanner", "sipvicious 0.3", "VaxSIPUserAgent/3.1", "pplsip", "SIPCLI/v1.8"} {
		if v, r := g.Check(netip.MustParseAddr("198.18.9.9"), "OPTIONS", ua); v != Ignore || r != ReasonScanner {
			t.Errorf("%q: %v %q", ua, v, r)
		}
	}
	src := netip.MustParseAddr("198.18.1.2")
	if v, _ := g.Check(src, "OPTIONS", "PBX"); v != Accept {
		t.Fatal("first OPTIONS refused")
	}
	c.add(5 * time.Second)
	if v, r := g.Check(src, "OPTIONS", "PBX"); v != Throttled || r != ReasonOptions {
		t.Fatalf("OPTIONS after 5 s: %v %q", v, r)
	}
	if v, _ := g.Check(src, "INVITE", "PBX"); v != Accept {
		t.Fatal("OPTIONS throttling hit an INVITE")
	}
	c.add(10 * time.Second)
	if v, _ := g.Check(src, "OPTIONS", "PBX"); v != Accept {
		t.Fatal("OPTIONS after 15 s refused")
	}
}

func TestGuardOptionsOnlyForExemptSources(t *testing.T) {
	c := newClock()
	g := NewGuard(DefaultGuard(), c.now)
	src := netip.MustParseAddr("198.18.1.2")
	for i := 0; i < 100; i++ { // a busy PBX in an ACL: no flood ban
		if v, _ := g.CheckExempt(src, "INVITE"); v != Accept {
			t.Fatalf("INVITE %d refused", i+1)
		}
	}
	if v, _ := g.CheckExempt(src, "OPTIONS"); v != Accept {
		t.Fatal("first OPTIONS refused")
	}
	if v, r := g.CheckExempt(src, "OPTIONS"); v != Throttled || r != ReasonOptions {
		t.Fatalf("second OPTIONS at once: %v %q", v, r)
	}
	c.add(10 * time.Second)
	if v, _ := g.CheckExempt(src, "options"); v != Accept {
		t.Fatal("OPTIONS after 10 s refused")
	}
	if g.IsBanned(src) {
		t.Fatal("an exempt source was banned")
	}
}

func TestGuardIsBannedAndExpiry(t *testing.T) {
	c := newClock()
	cfg := DefaultGuard()
	cfg.Ban = time.Minute
	g := NewGuard(cfg, c.now)
	src := netip.MustParseAddr("::ffff:198.18.1.7") // the same source as 198.18.1.7
	for i := 0; i < 17; i++ {
		g.Check(src, "INVITE", "")
	}
	if !g.IsBanned(netip.MustParseAddr("198.18.1.7")) || g.BannedCount() != 1 {
		t.Fatal("flooding source not banned")
	}
	c.add(time.Minute)
	if g.IsBanned(src) || g.BannedCount() != 0 {
		t.Fatal("ban did not expire")
	}
	if v, _ := g.Check(src, "INVITE", ""); v != Accept {
		t.Fatal("source not heard after its ban")
	}
}

func TestGuardConfigZeroTurnsChecksOff(t *testing.T) {
	c := newClock()
	cfg := GuardConfig{Scanners: []string{"  "}}
	g := NewGuard(cfg, c.now)
	src := netip.MustParseAddr("198.18.1.2")
	for i := 0; i < 1000; i++ {
		if v, _ := g.Check(src, "OPTIONS", "friendly-scanner"); v != Accept {
			t.Fatalf("request %d refused with every check off", i+1)
		}
		if g.AuthFailed(src) {
			t.Fatal("banned for auth failures with the check off")
		}
	}
	def := DefaultGuard()
	def.Scanners[0] = "MiXeD"
	NewGuard(def, c.now)
	if def.Scanners[0] != "MiXeD" || DefaultScanners[0] != "friendly-scanner" {
		t.Fatal("NewGuard changed its caller's scanner list")
	}
}
