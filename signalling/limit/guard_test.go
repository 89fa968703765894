package limit

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nthAddr is a distinct IPv4 source for each i, spread over 10.0.0.0/8
// so that few share a /24 with the test's own sources in 198.18.0.0/15.
func nthAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// TestGuardBoundedUnder100kSources: 100k+ distinct sources keep the table
// at its size, every one of them is checked (none passes unchecked
// because the table is full), and a flood from a source first seen after
// the table filled is still banned.
func TestGuardBoundedUnder100kSources(t *testing.T) {
	c := newClock()
	cfg := DefaultGuard()
	g := NewGuard(cfg, c.now)
	const n = 120_000
	for i := 0; i < n; i++ {
		if v, _ := g.Check(nthAddr(i), "INVITE", ""); v != Accept {
			t.Fatalf("source %d refused", i)
		}
		if i%1000 == 999 {
			c.add(time.Millisecond)
		}
	}
	st := g.Stats()
	if st.Sources > cfg.MaxSources || st.Sources < cfg.MaxSources*9/10 {
		t.Fatalf("%d sources tracked, limit %d", st.Sources, cfg.MaxSources)
	}
	if st.Evictions < uint64(n-cfg.MaxSources) {
		t.Fatalf("%d evictions for %d sources over a table of %d", st.Evictions, n, cfg.MaxSources)
	}
	late := netip.MustParseAddr("198.18.7.7")
	var v Verdict
	var reason string
	for i := 0; i < 17; i++ {
		v, reason = g.Check(late, "INVITE", "")
	}
	if v != Ignore || reason != ReasonFlood || !g.IsBanned(late) {
		t.Fatalf("a flood from a new source with the table full: %v %q", v, reason)
	}
	t.Logf("after %d sources: %+v", n, g.Stats())
}

// TestGuardBruteForceAmong100kSources: with 100k other sources seen (and
// still arriving between its attempts, some failing too) a brute-forcer
// is banned at its 10th failure and stays banned while the table churns.
func TestGuardBruteForceAmong100kSources(t *testing.T) {
	c := newClock()
	g := NewGuard(DefaultGuard(), c.now)
	for i := 0; i < 100_000; i++ {
		g.Check(nthAddr(i), "INVITE", "")
	}
	brute := netip.MustParseAddr("198.18.8.8")
	next := 100_000
	for i := 1; i <= 10; i++ {
		if v, _ := g.Check(brute, "INVITE", ""); v != Accept {
			t.Fatalf("attempt %d not heard", i)
		}
		banned := g.AuthFailed(brute)
		if banned != (i == 10) {
			t.Fatalf("failure %d: banned %v", i, banned)
		}
		for j := 0; j < 10_000; j++ { // others between its attempts
			a := nthAddr(next)
			next++
			g.Check(a, "INVITE", "")
			if j%10 == 0 {
				g.AuthFailed(a)
			}
		}
		c.add(time.Second)
	}
	for j := 0; j < 100_000; j++ {
		g.Check(nthAddr(next), "INVITE", "")
		next++
	}
	if v, r := g.Check(brute, "INVITE", ""); v != Ignore || r != ReasonBanned || g.BanOf(brute) != BanAuth {
		t.Fatalf("brute-forcer after 100k more sources: %v %q", v, r)
	}
}

// TestGuardPrefixBan: three sources of one /24 banned within the window
// ban the /24 (a fourth source, never seen, is ignored); one source
// banned twice does not count twice; another /24 is untouched; the hooks
// get every ban, outside the guard's locks.
func TestGuardPrefixBan(t *testing.T) {
	c := newClock()
	var mu sync.Mutex
	var srcs []netip.Addr
	var prefixes []netip.Prefix
	cfg := DefaultGuard()
	cfg.MaxRequests, cfg.RequestWindow = 2, time.Hour
	var g *Guard
	cfg.OnBan = func(a netip.Addr) {
		if !g.IsBanned(a) { // takes the guard's locks: would deadlock under them
			t.Error("OnBan before the ban holds")
		}
		mu.Lock()
		srcs = append(srcs, a)
		mu.Unlock()
	}
	cfg.OnPrefixBan = func(p netip.Prefix) {
		mu.Lock()
		prefixes = append(prefixes, p)
		mu.Unlock()
	}
	g = NewGuard(cfg, c.now)
	flood := func(a netip.Addr) {
		t.Helper()
		for i := 0; i < 3; i++ {
			g.Check(a, "INVITE", "")
		}
		if g.BanOf(a) != BanFlood {
			t.Fatalf("%s not banned for flooding: %v", a, g.BanOf(a))
		}
	}
	a1, a2, a3 := netip.MustParseAddr("198.18.5.1"), netip.MustParseAddr("198.18.5.2"), netip.MustParseAddr("198.18.5.3")
	flood(a1)
	c.add(cfg.Ban) // a1's ban ends, and a1 floods again: still one source
	flood(a1)
	flood(a2)
	if g.BanOf(netip.MustParseAddr("198.18.5.200")) != NotBanned {
		t.Fatal("prefix banned after two sources")
	}
	c.add(time.Minute)
	flood(a3)
	stranger := netip.MustParseAddr("198.18.5.200")
	if v, r := g.Check(stranger, "REGISTER", ""); v != Ignore || r != ReasonBanned || g.BanOf(stranger) != BanPrefix {
		t.Fatalf("a new source in the banned /24: %v %q %v", v, r, g.BanOf(stranger))
	}
	if v, _ := g.Check(netip.MustParseAddr("198.18.6.1"), "REGISTER", ""); v != Accept {
		t.Fatal("the next /24 is banned too")
	}
	if v, _ := g.CheckExempt(stranger, "INVITE"); v != Accept {
		t.Fatal("a prefix ban holds for a request its trunk exempts")
	}
	mu.Lock()
	if len(srcs) != 4 || len(prefixes) != 1 || prefixes[0] != netip.MustParsePrefix("198.18.5.0/24") {
		t.Fatalf("hooks: sources %v prefixes %v", srcs, prefixes)
	}
	mu.Unlock()
	st := g.Stats()
	if st.BannedPrefixes != 1 || st.PrefixBans != 1 || st.SourceBans != 4 {
		t.Fatalf("stats %+v", st)
	}
	c.add(cfg.Ban)
	if g.IsBanned(stranger) || g.Stats().BannedPrefixes != 0 {
		t.Fatal("prefix ban outlived --guard-ban")
	}
}

// TestGuardPrefixBanIPv6: the prefix of an IPv6 source is its /64; bans
// spread over the window's edge do not add up.
func TestGuardPrefixBanIPv6(t *testing.T) {
	c := newClock()
	cfg := DefaultGuard()
	cfg.MaxAuthFails = 1
	g := NewGuard(cfg, c.now)
	g.AuthFailed(netip.MustParseAddr("2001:db8:1:2::1"))
	c.add(cfg.PrefixWindow) // the first ban is out of the window
	g.AuthFailed(netip.MustParseAddr("2001:db8:1:2::2"))
	g.AuthFailed(netip.MustParseAddr("2001:db8:1:2:ffff::3"))
	if g.IsBanned(netip.MustParseAddr("2001:db8:1:2::99")) {
		t.Fatal("bans spread over more than the window banned the /64")
	}
	g.AuthFailed(netip.MustParseAddr("2001:db8:1:2::4"))
	if g.BanOf(netip.MustParseAddr("2001:db8:1:2::99")) != BanPrefix || g.IsBanned(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Fatal("want 2001:db8:1:2::/64 banned, and only it")
	}
	if p := PrefixOf(netip.MustParseAddr("::ffff:192.0.2.77")); p != netip.MustParsePrefix("192.0.2.0/24") {
		t.Fatalf("mapped IPv4 prefix %v", p)
	}
}

// TestGuardExemptHonoursAuthBans: an exempt source is not counted or
// held by a flood ban, but failed authentication bans it all the same.
func TestGuardExemptHonoursAuthBans(t *testing.T) {
	c := newClock()
	g := NewGuard(DefaultGuard(), c.now)
	pbx := netip.MustParseAddr("198.18.1.50")
	for i := 0; i < 17; i++ {
		g.Check(pbx, "INVITE", "") // floods another trunk: banned
	}
	if g.BanOf(pbx) != BanFlood {
		t.Fatal("not banned for flooding")
	}
	if v, _ := g.CheckExempt(pbx, "INVITE"); v != Accept {
		t.Fatal("a flood ban holds on the source's own trunk")
	}
	for i := 1; i <= 10; i++ {
		if g.AuthFailed(pbx) != (i == 10) {
			t.Fatalf("failure %d", i)
		}
	}
	if v, r := g.CheckExempt(pbx, "INVITE"); v != Ignore || r != ReasonBanned || g.BanOf(pbx) != BanAuth {
		t.Fatalf("an exempt source that failed 10 digests: %v %q", v, r)
	}
}

// TestGuardBansBounded: more bans than MaxBans keep the table at its
// size (the oldest go), and a full table still takes the newest.
func TestGuardBansBounded(t *testing.T) {
	c := newClock()
	cfg := DefaultGuard()
	cfg.MaxAuthFails, cfg.MaxBans, cfg.PrefixBans = 1, 1024, 0
	g := NewGuard(cfg, c.now)
	for i := 0; i < 5000; i++ {
		g.AuthFailed(nthAddr(i))
	}
	if st := g.Stats(); st.BannedSources > 1024 || st.SourceBans != 5000 {
		t.Fatalf("stats %+v", st)
	}
	if !g.IsBanned(nthAddr(4999)) {
		t.Fatal("the newest ban was not kept")
	}
}

func TestTTLSet(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewTTLSet[string](64)
	s.Add("a", now.Add(time.Minute))
	if !s.Has("a", now) || s.Has("b", now) || s.Has("a", now.Add(time.Minute)) || s.Has("a", now) {
		t.Fatal("membership or expiry wrong")
	}
	for i := 0; i < 1000; i++ {
		s.Add(string(rune('A'+i%26))+string(rune(i)), now.Add(time.Hour))
	}
	if s.Len() > 64 {
		t.Fatalf("%d keys in a set of 64", s.Len())
	}
}

// TestLRUOrder: the least recently used entry goes first, a touched one
// stays, and removed slots are reused.
func TestLRUOrder(t *testing.T) {
	l := newLRU[int, int](3)
	sh := &l.shards[0]
	for _, k := range []int{1, 2, 3} {
		v, added, _ := sh.put(k)
		*v = k * 10
		if !added {
			t.Fatal("not added")
		}
	}
	sh.get(1)
	if _, _, ev := sh.put(4); !ev || sh.peek(2) != nil || sh.peek(1) == nil {
		t.Fatal("want 2 evicted, 1 kept")
	}
	sh.remove(3)
	if _, _, ev := sh.put(5); ev || len(sh.ents) != 3 {
		t.Fatalf("removed slot not reused: %d slots", len(sh.ents))
	}
	if k, v, _ := sh.oldest(); k != 1 || *v != 10 {
		t.Fatalf("oldest %d", k)
	}
}

// BenchmarkGuardCheck: one request's check against a full table (65536
// sources tracked, a new source every fourth request so the table keeps
// evicting), sequential and from every CPU.
func BenchmarkGuardCheck(b *testing.B) {
	g := NewGuard(DefaultGuard(), nil)
	for i := 0; i < 100_000; i++ {
		g.Check(nthAddr(i), "INVITE", "")
	}
	const ua = "Asterisk PBX 20.5.0"
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		next := 200_000
		for i := 0; b.Loop(); i++ {
			a := nthAddr(i % 50_000)
			if i%4 == 0 {
				a = nthAddr(next)
				next++
			}
			g.Check(a, "INVITE", ua)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seq sync.Mutex
		base := 1 << 22
		b.RunParallel(func(pb *testing.PB) {
			seq.Lock()
			start := base
			base += 1 << 20
			seq.Unlock()
			for i := 0; pb.Next(); i++ {
				a := nthAddr(i % 50_000)
				if i%4 == 0 {
					a = nthAddr(start + i)
				}
				g.Check(a, "INVITE", ua)
			}
		})
	})
	b.Run("banned", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.IsBanned(nthAddr(7))
		}
	})
}

// TestGuardSetLimits: new limits apply to the next request, under
// concurrent checks (go test -race); bans in force and the table sizes
// stay.
func TestGuardSetLimits(t *testing.T) {
	c := newClock()
	cfg := DefaultGuard()
	cfg.MaxRequests, cfg.PrefixBans = 2, 0
	var bans sync.Map
	cfg.OnBan = func(a netip.Addr) { bans.Store(a, true) }
	g := NewGuard(cfg, c.now)
	flooder := netip.MustParseAddr("198.18.9.1")
	for range 3 {
		g.Check(flooder, "INVITE", "")
	}
	if !g.IsBanned(flooder) {
		t.Fatal("3 requests over a limit of 2: not banned")
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 500 {
				g.Check(nthAddr(i*1000+j), "OPTIONS", "sipcli")
			}
		})
	}
	next := cfg
	next.MaxRequests, next.Scanners, next.MaxSources, next.OnBan = 10, []string{"EvilScanner"}, 1, nil
	g.SetLimits(next)
	wg.Wait()
	if !g.IsBanned(flooder) {
		t.Error("the ban in force was lost")
	}
	other := netip.MustParseAddr("198.18.9.2")
	for i := range 5 {
		if v, r := g.Check(other, "INVITE", "sipcli/1.0"); v != Accept {
			t.Fatalf("request %d: %v %s under a limit of 10 and sipcli off the scanner list", i, v, r)
		}
	}
	if v, _ := g.Check(other, "INVITE", "evilscanner 2"); v != Ignore {
		t.Error("the new scanner list is not in force")
	}
	if l := g.Limits(); l.MaxSources != DefaultGuard().MaxSources || l.OnBan == nil || l.MaxRequests != 10 {
		t.Errorf("limits after SetLimits: max sources %d (kept?), hook kept %v, max requests %d", l.MaxSources, l.OnBan != nil, l.MaxRequests)
	}
	for range 11 {
		g.Check(other, "INVITE", "")
	}
	if _, ok := bans.Load(other); !ok {
		t.Error("the ban hook is gone after SetLimits")
	}
}

// TestGuardEmptyIsSmall: an empty guard with the default tables (65,536
// sources and bans) holds almost no memory. Its tables grow with the
// sources it hears: presized, they were ~19 MB the collector scanned on
// every cycle of an xtrunk sip that heard two sources.
func TestGuardEmptyIsSmall(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := NewGuard(DefaultGuard(), newClock().now)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(g)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Fatalf("an empty guard holds %d KB", grew>>10)
	}
}

// TestGuardConcurrentFlood: one source's requests checked at once from
// many goroutines (as sipgo checks each datagram in its own) get at
// most MaxRequests accepted and exactly one ban. The counter used to be
// reset before the ban was entered, so requests checked in between
// started a fresh count: 19 of a flood of 40 were answered in CI.
func TestGuardConcurrentFlood(t *testing.T) {
	for round := range 200 {
		cfg := DefaultGuard()
		var bans atomic.Int64
		cfg.OnBan = func(netip.Addr) {
			runtime.Gosched() // widen the window a late ban left open
			bans.Add(1)
		}
		g := NewGuard(cfg, nil)
		flooder := netip.MustParseAddr("198.18.9.1")
		var accepted atomic.Int64
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				if v, _ := g.Check(flooder, "INVITE", ""); v == Accept {
					accepted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := accepted.Load(); n != int64(cfg.MaxRequests) {
			t.Fatalf("round %d: %d of 40 concurrent requests accepted, want %d", round, n, cfg.MaxRequests)
		}
		if n := bans.Load(); n != 1 {
			t.Fatalf("round %d: %d bans, want 1", round, n)
		}
	}
}
