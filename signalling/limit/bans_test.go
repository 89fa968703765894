package limit

import (
	"net/netip"
	"testing"
	"time"
)

// TestBansAndUnban: Bans lists a source and a prefix ban with their kind
// and end; Unban lifts each, forgets the source's failures (one more
// failure does not ban it again), and reports a source under no ban.
func TestBansAndUnban(t *testing.T) {
	c := newClock()
	cfg := DefaultGuard()
	cfg.PrefixBans = 2
	g := NewGuard(cfg, c.now)
	a, b := netip.MustParseAddr("198.18.9.1"), netip.MustParseAddr("198.18.9.2")
	for _, src := range []netip.Addr{a, b} {
		for i := 0; i < cfg.MaxAuthFails; i++ {
			g.AuthFailed(src)
		}
	}
	bans := g.Bans()
	if len(bans) != 3 || bans[0].Source != a.String() || bans[0].Kind != "auth" || bans[1].Source != b.String() ||
		bans[2].Source != "198.18.9.0/24" || bans[2].Kind != "prefix" {
		t.Fatalf("bans %+v", bans)
	}
	if want := time.Unix(0, c.now().UnixNano()).Add(cfg.Ban).UTC(); !bans[0].Until.Equal(want) {
		t.Errorf("until %v, want %v", bans[0].Until, want)
	}
	if !g.Unban("198.18.9.0/24") || !g.Unban(a.String()) {
		t.Fatal("unban reported no ban")
	}
	if g.IsBanned(a) || !g.IsBanned(b) {
		t.Fatalf("after unban: a banned %v, b banned %v", g.IsBanned(a), g.IsBanned(b))
	}
	if g.AuthFailed(a) {
		t.Error("one failure after the unban banned again: the failures were not forgotten")
	}
	if g.Unban(a.String()) || g.Unban("not an address") {
		t.Error("unban of no ban reported one")
	}
	if got := g.Bans(); len(got) != 1 || got[0].Source != b.String() {
		t.Errorf("bans left %+v", got)
	}
}

// FuzzUnban: any text is an address, a prefix or nothing; no panic, and
// nothing is lifted from a guard without bans.
func FuzzUnban(f *testing.F) {
	for _, s := range []string{"198.18.9.1", "198.18.9.0/24", "2001:db8::/64", "::ffff:1.2.3.4", "", "1.2.3.4/33", "zz"} {
		f.Add(s)
	}
	g := NewGuard(DefaultGuard(), nil)
	f.Fuzz(func(t *testing.T, s string) {
		if g.Unban(s) {
			t.Fatalf("Unban(%q) lifted a ban that was never made", s)
		}
	})
}

// TestUnbanPushedOutFloodBan: with the bans table full, a new ban pushes
// out the oldest, but its source's flood ban still holds in Check (it is
// kept with the source's counter); Unban lifts it and says so.
func TestUnbanPushedOutFloodBan(t *testing.T) {
	cfg := DefaultGuard()
	cfg.MaxBans, cfg.PrefixBans = 1, 0
	g := NewGuard(cfg, nil)
	a, b := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.2.1")
	for range cfg.MaxRequests + 1 {
		g.Check(a, "INVITE", "")
	}
	for range cfg.MaxRequests + 1 {
		g.Check(b, "INVITE", "")
	}
	if v, _ := g.Check(a, "INVITE", ""); v != Ignore {
		t.Fatal("a's flood ban ended when the bans table pushed it out")
	}
	if !g.Unban(a.String()) {
		t.Error("Unban of a source Check still ignores: reported not banned")
	}
	if v, r := g.Check(a, "INVITE", ""); v != Accept {
		t.Errorf("after Unban: %v %s", v, r)
	}
}
