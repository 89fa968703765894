package limit

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// GuardConfig tunes the abuse guard. A zero count or duration turns its
// check off.
type GuardConfig struct {
	MaxRequests   int           // requests per RequestWindow before a ban (16)
	RequestWindow time.Duration // (2 s)
	MaxAuthFails  int           // failed authentications per AuthWindow that ban (10, at most MaxAuthFails)
	AuthWindow    time.Duration // (1 min)
	Ban           time.Duration // how long a source or prefix is ignored (5 min)
	OptionsEvery  time.Duration // a source may send OPTIONS this often (10 s)
	Scanners      []string      // User-Agent substrings (any case) that get no answer at all
	// MaxSources bounds the sources whose rates are tracked (65536): UDP
	// sources can be spoofed, and the guard must not be the thing that
	// runs out of memory. When it is full, a new source pushes out the
	// one seen least recently; a new source is never let through
	// unchecked.
	MaxSources int
	// MaxBans bounds the sources under a ban (65536); a quarter of it
	// bounds the prefixes tracked and banned. Full, the oldest ban goes.
	MaxBans int
	// PrefixBans distinct sources of one /24 (IPv4) or /64 (IPv6) banned
	// within PrefixWindow ban the whole prefix for Ban (3 in 10 min; 0:
	// never, at most MaxPrefixBans).
	PrefixBans   int
	PrefixWindow time.Duration
	// OnBan is called when a source is banned, and OnPrefixBan when a
	// prefix is, outside the guard's locks (say, to close the source's
	// TCP/TLS connections). They must not call back into a ban.
	OnBan       func(netip.Addr)
	OnPrefixBan func(netip.Prefix)
}

// MaxAuthFails is the largest MaxAuthFails: a source's recent failures
// are a fixed array, exact where a sliding-window estimate would let a
// careful brute-forcer straddle window edges.
const MaxAuthFails = 16

// MaxPrefixBans is the largest PrefixBans: the sources remembered per
// prefix are a fixed array, so a prefix costs the same whatever happens
// in it.
const MaxPrefixBans = 8

// Prefix lengths banned after repeated bans inside them: an IPv4
// customer's /24, an IPv6 site's /64 (RFC 6177).
const (
	PrefixBitsV4 = 24
	PrefixBitsV6 = 64
)

// DefaultScanners are the User-Agents of SIP scanners and toll-fraud
// tools: Kamailio's classic list plus a few seen in the wild. Monitoring
// tools (sipsak, SIPp) are not on it.
var DefaultScanners = []string{"friendly-scanner", "sipcli", "sipvicious", "VaxSIPUserAgent", "pplsip", "sip-scan", "iWar", "sundayddr"}

// DefaultGuard is the guard's default configuration.
func DefaultGuard() GuardConfig {
	return GuardConfig{
		MaxRequests: 16, RequestWindow: 2 * time.Second,
		MaxAuthFails: 10, AuthWindow: time.Minute,
		Ban: 5 * time.Minute, OptionsEvery: 10 * time.Second,
		Scanners:   append([]string(nil), DefaultScanners...),
		MaxSources: 1 << 16, MaxBans: 1 << 16,
		PrefixBans: 3, PrefixWindow: 10 * time.Minute,
	}
}

// Verdict is what to do with a request.
type Verdict int

// Verdicts.
const (
	Accept    Verdict = iota
	Ignore            // banned source or scanner: send nothing
	Throttled         // too frequent OPTIONS: send nothing
)

// Reasons a request is ignored, for metrics and logs.
const (
	ReasonFlood    = "flood"         // this request started a ban: too many requests
	ReasonAuth     = "auth_failures" // a failed authentication started a ban
	ReasonScanner  = "scanner"       // a scanner's User-Agent
	ReasonBanned   = "banned"        // from a source or prefix under a ban
	ReasonOptions  = "options_rate"  // OPTIONS more often than OptionsEvery
	ReasonPrefix   = "prefix"        // a ban of a /24 or /64 after repeated bans in it
	ReasonAccepted = ""
)

// Reasons lists every reason a request is ignored, for metrics that
// start at zero.
var Reasons = []string{ReasonFlood, ReasonAuth, ReasonScanner, ReasonBanned, ReasonOptions}

// BanKind says why a source is banned.
type BanKind uint8

// Ban kinds. An auth ban is the source's own doing and holds whatever
// the request; a flood or prefix ban is lifted, for requests to a trunk
// that exempts the source (its IP ACL), by the caller.
const (
	NotBanned BanKind = iota
	BanFlood          // the source sent too many requests
	BanAuth           // the source failed authentication too often
	BanPrefix         // the source's /24 or /64 is banned
)

// Guard tracks sources: per source a request rate, an authentication
// failure rate and the last OPTIONS, in a bounded table; bans in
// tables of their own, so that a flood of new sources pushes out rate
// counters but not the bans already made. Every call is O(1).
type Guard struct {
	// tun is the configuration and the scanners (lower case) it
	// implies, swapped whole by SetLimits: requests read it without a
	// lock.
	tun atomic.Pointer[tunables]
	now Clock

	src      *lru[netip.Addr, source]
	fails    *lru[netip.Addr, failures]
	bans     *lru[netip.Addr, ban]
	prefixes *lru[netip.Prefix, int64]      // prefix -> banned until (ns)
	hits     *lru[netip.Prefix, prefixHits] // recent bans inside a prefix

	sourceBans, prefixBans atomic.Uint64
}

// source is one source's rate state: a sliding-window counter of its
// requests (constant size, unlike a list of times), when it last had
// an OPTIONS answered, and until when (ns) its flood ban holds. The ban
// is kept here too, under the same lock as the counter: requests of one
// source are checked concurrently (sipgo handles each datagram in a
// goroutine), and a request checked between the counter's reset and the
// ban's entry in the bans table would otherwise start a fresh count and
// be answered (19 answers to a flood of 40 at a limit of 16, seen in CI).
type source struct {
	reqs        window
	lastOptions int64
	banned      int64
}

// failures are a source's last authentication failures (ns), newest at
// next-1, in a table of their own: few sources fail, and a flood of new
// sources that never authenticate does not push them out.
type failures struct {
	at   [MaxAuthFails]int64
	next uint8
}

// add records a failure at now and returns how many of the remembered
// ones, this one included, are within win.
func (f *failures) add(now, win int64) int {
	f.at[f.next] = now
	f.next = (f.next + 1) % MaxAuthFails
	n := 0
	for _, t := range f.at {
		if t != 0 && now-t < win {
			n++
		}
	}
	return n
}

// window is a sliding-window counter: the events of the current fixed
// window plus the previous window's, weighted by how much of it the
// sliding window still covers (the approximation Cloudflare and nginx
// use; exact for bursts, within one event for steady rates).
type window struct {
	start     int64 // ns; windows are aligned to multiples of their length
	cur, prev uint32
}

// add counts one event at now in a window of win ns and returns the
// events within the last win.
func (w *window) add(now, win int64) float64 {
	if d := now - w.start; d >= win || d < 0 {
		if d >= win && d < 2*win {
			w.prev = w.cur
		} else {
			w.prev = 0
		}
		w.cur = 0
		w.start = now - now%win
	}
	if w.cur < 1<<31 {
		w.cur++
	}
	covered := float64(win-(now-w.start)) / float64(win)
	return float64(w.prev)*covered + float64(w.cur)
}

type ban struct {
	until int64
	auth  bool
}

type prefixHits struct {
	n    uint8
	addr [MaxPrefixBans]netip.Addr
	at   [MaxPrefixBans]int64
}

// NewGuard makes a guard.
func NewGuard(cfg GuardConfig, now Clock) *Guard {
	if now == nil {
		now = time.Now
	}
	g := &Guard{now: now}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 1 << 16
	}
	if cfg.MaxBans <= 0 {
		cfg.MaxBans = 1 << 16
	}
	g.tun.Store(newTunables(cfg))
	g.src = newLRU[netip.Addr, source](cfg.MaxSources)
	g.fails = newLRU[netip.Addr, failures](max(cfg.MaxSources/4, 1))
	g.bans = newLRU[netip.Addr, ban](cfg.MaxBans)
	g.prefixes = newLRU[netip.Prefix, int64](max(cfg.MaxBans/4, 1))
	g.hits = newLRU[netip.Prefix, prefixHits](max(cfg.MaxBans/4, 1))
	return g
}

// tunables is the guard's configuration as requests read it.
type tunables struct {
	GuardConfig
	scanners [][]byte // lower case
}

func newTunables(cfg GuardConfig) *tunables {
	cfg.PrefixBans = min(max(cfg.PrefixBans, 0), MaxPrefixBans)
	cfg.MaxAuthFails = min(cfg.MaxAuthFails, MaxAuthFails)
	t := &tunables{GuardConfig: cfg}
	for _, s := range cfg.Scanners {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			t.scanners = append(t.scanners, []byte(s))
		}
	}
	return t
}

// SetLimits changes the guard's limits while it runs (a config reload):
// the rates, windows, ban length, prefix rule, OPTIONS interval and
// scanners of cfg take effect for the next request. Table sizes
// (MaxSources, MaxBans) and the hooks stay as NewGuard set them: the
// tables are not rebuilt, and what they track (rates, bans in force)
// is kept.
func (g *Guard) SetLimits(cfg GuardConfig) {
	old := g.cfg()
	cfg.MaxSources, cfg.MaxBans = old.MaxSources, old.MaxBans
	cfg.OnBan, cfg.OnPrefixBan = old.OnBan, old.OnPrefixBan
	g.tun.Store(newTunables(cfg))
}

// Limits is the configuration in force.
func (g *Guard) Limits() GuardConfig { return g.cfg().GuardConfig }

func (g *Guard) cfg() *tunables { return g.tun.Load() }

// Scanner reports whether userAgent is a known scanner's.
func (g *Guard) Scanner(userAgent string) bool {
	for _, s := range g.cfg().scanners {
		if containsFold(userAgent, s) {
			return true
		}
	}
	return false
}

// containsFold is strings.Contains(strings.ToLower(s), sub) for a lower
// case ASCII sub, without making the lower-case copy.
func containsFold(s string, sub []byte) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// Check is called for every request from addr that no trunk exempts,
// before anything else: a scanner's User-Agent, a source or prefix under
// a ban, a source going over MaxRequests per RequestWindow (which bans
// it) and OPTIONS more often than OptionsEvery are not to be answered.
func (g *Guard) Check(addr netip.Addr, method, userAgent string) (Verdict, string) {
	if g.Scanner(userAgent) {
		return Ignore, ReasonScanner
	}
	addr = addr.Unmap()
	now := g.now().UnixNano()
	if g.banOf(addr, now) != NotBanned {
		return Ignore, ReasonBanned
	}
	sh := g.src.shard(addr)
	sh.mu.Lock()
	s, _, evicted := sh.put(addr)
	if now < s.banned {
		sh.mu.Unlock()
		g.countEviction(evicted)
		return Ignore, ReasonBanned
	}
	if c := g.cfg(); c.MaxRequests > 0 && c.RequestWindow > 0 &&
		s.reqs.add(now, int64(c.RequestWindow)) > float64(c.MaxRequests) {
		s.reqs, s.banned = window{}, now+int64(c.Ban)
		sh.mu.Unlock()
		g.countEviction(evicted)
		g.ban(addr, false, now)
		return Ignore, ReasonFlood
	}
	v, reason := g.options(s, method, now)
	sh.mu.Unlock()
	g.countEviction(evicted)
	return v, reason
}

// CheckExempt is Check for a request to a trunk that exempts addr (its
// IP ACL, or it authenticated there): no flood counting, and flood and
// prefix bans do not apply; a ban for failed authentication does, and,
// like everyone, addr may ping only once per OptionsEvery.
func (g *Guard) CheckExempt(addr netip.Addr, method string) (Verdict, string) {
	addr = addr.Unmap()
	now := g.now().UnixNano()
	if g.banOf(addr, now) == BanAuth {
		return Ignore, ReasonBanned
	}
	if !isOptions(method) || g.cfg().OptionsEvery <= 0 {
		return Accept, ReasonAccepted
	}
	sh := g.src.shard(addr)
	sh.mu.Lock()
	s, _, evicted := sh.put(addr)
	v, reason := g.options(s, method, now)
	sh.mu.Unlock()
	g.countEviction(evicted)
	return v, reason
}

func isOptions(method string) bool { return strings.EqualFold(method, "OPTIONS") }

// options applies the OPTIONS rate; the source's shard is locked.
func (g *Guard) options(s *source, method string, now int64) (Verdict, string) {
	if every := g.cfg().OptionsEvery; every > 0 && isOptions(method) {
		if s.lastOptions != 0 && now-s.lastOptions < int64(every) {
			return Throttled, ReasonOptions
		}
		s.lastOptions = now
	}
	return Accept, ReasonAccepted
}

func (g *Guard) countEviction(evicted bool) {
	if evicted {
		g.src.evictions.Add(1)
	}
}

// AuthFailed records a failed authentication from addr, exempt or not;
// it reports whether the source is now banned.
func (g *Guard) AuthFailed(addr netip.Addr) bool {
	c := g.cfg()
	if c.MaxAuthFails <= 0 || c.AuthWindow <= 0 {
		return false
	}
	addr = addr.Unmap()
	now := g.now().UnixNano()
	sh := g.fails.shard(addr)
	sh.mu.Lock()
	f, _, evicted := sh.put(addr)
	banned := f.add(now, int64(c.AuthWindow)) >= c.MaxAuthFails
	if banned {
		sh.remove(addr)
	}
	sh.mu.Unlock()
	if evicted {
		g.fails.evictions.Add(1)
	}
	if banned {
		g.ban(addr, true, now)
	}
	return banned
}

// ban bans addr and, when enough of its neighbours were banned lately,
// its prefix; then it calls the hooks.
func (g *Guard) ban(addr netip.Addr, auth bool, now int64) {
	until := now + int64(g.cfg().Ban)
	sh := g.bans.shard(addr)
	sh.mu.Lock()
	sweepBans(sh, now)
	b, _, evicted := sh.put(addr)
	b.until, b.auth = until, auth || (b.auth && now < b.until)
	sh.mu.Unlock()
	if evicted {
		g.bans.evictions.Add(1)
	}
	g.sourceBans.Add(1)
	p, prefixBanned := g.hit(addr, now)
	if prefixBanned {
		psh := g.prefixes.shard(p)
		psh.mu.Lock()
		sweepUntil(psh, now)
		v, _, _ := psh.put(p)
		*v = until
		psh.mu.Unlock()
		g.prefixBans.Add(1)
	}
	if c := g.cfg(); c.OnBan != nil {
		c.OnBan(addr)
	}
	if c := g.cfg(); prefixBanned && c.OnPrefixBan != nil {
		c.OnPrefixBan(p)
	}
}

// hit records a ban of addr in its prefix; it reports whether the prefix
// has now seen PrefixBans distinct sources banned within PrefixWindow.
func (g *Guard) hit(addr netip.Addr, now int64) (netip.Prefix, bool) {
	p := PrefixOf(addr)
	c := g.cfg()
	if c.PrefixBans <= 0 || !p.IsValid() {
		return p, false
	}
	sh := g.hits.shard(p)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h, _, _ := sh.put(p)
	// keep the recent bans of other sources, then add this one
	k := uint8(0)
	for i := uint8(0); i < h.n; i++ {
		if h.addr[i] != addr && now-h.at[i] < int64(c.PrefixWindow) {
			h.addr[k], h.at[k] = h.addr[i], h.at[i]
			k++
		}
	}
	if int(k) == MaxPrefixBans {
		copy(h.addr[:], h.addr[1:])
		copy(h.at[:], h.at[1:])
		k--
	}
	h.addr[k], h.at[k] = addr, now
	h.n = k + 1
	if int(h.n) < c.PrefixBans {
		return p, false
	}
	sh.remove(p)
	return p, true
}

// PrefixOf is the prefix addr is banned with after repeated bans: its
// /24 (IPv4) or /64 (IPv6).
func PrefixOf(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := PrefixBitsV6
	if addr.Is4() {
		bits = PrefixBitsV4
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// sweepBans forgets expired bans at the old end of a shard: every ban
// lasts Ban, so the least recently made is the first to end, and the
// count of bans stays the count of live ones.
func sweepBans(sh *lruShard[netip.Addr, ban], now int64) {
	for {
		k, b, ok := sh.oldest()
		if !ok || now < b.until {
			return
		}
		sh.remove(k)
	}
}

func sweepUntil(sh *lruShard[netip.Prefix, int64], now int64) {
	for {
		k, until, ok := sh.oldest()
		if !ok || now < *until {
			return
		}
		sh.remove(k)
	}
}

// BanOf says whether, and why, addr is banned now. It is cheap enough to
// ask for every datagram before parsing it.
func (g *Guard) BanOf(addr netip.Addr) BanKind {
	return g.banOf(addr.Unmap(), g.now().UnixNano())
}

func (g *Guard) banOf(addr netip.Addr, now int64) BanKind {
	sh := g.bans.shard(addr)
	sh.mu.Lock()
	b := sh.peek(addr)
	kind := NotBanned
	switch {
	case b == nil:
	case now >= b.until:
		sh.remove(addr)
	case b.auth:
		kind = BanAuth
	default:
		kind = BanFlood
	}
	sh.mu.Unlock()
	if kind != NotBanned || g.cfg().PrefixBans <= 0 {
		return kind
	}
	p := PrefixOf(addr)
	psh := g.prefixes.shard(p)
	psh.mu.Lock()
	defer psh.mu.Unlock()
	if until := psh.peek(p); until != nil {
		if now < *until {
			return BanPrefix
		}
		psh.remove(p)
	}
	return NotBanned
}

// IsBanned reports whether addr is under a ban of any kind.
func (g *Guard) IsBanned(addr netip.Addr) bool { return g.BanOf(addr) != NotBanned }

// GuardStats are the guard's gauges and counters, for metrics.
type GuardStats struct {
	Sources        int    // sources whose rates are tracked now
	Evictions      uint64 // entries pushed out of a full table (rates, failures, bans)
	BannedSources  int    // sources under a ban now
	BannedPrefixes int    // prefixes under a ban now
	SourceBans     uint64 // bans of sources so far
	PrefixBans     uint64 // bans of prefixes so far
}

// Stats reads the guard's figures; it walks the shards (not the
// entries), for a metrics scrape rather than a request.
func (g *Guard) Stats() GuardStats {
	now := g.now().UnixNano()
	st := GuardStats{Sources: g.src.len(), Evictions: g.src.evictions.Load() + g.fails.evictions.Load() + g.bans.evictions.Load(),
		SourceBans: g.sourceBans.Load(), PrefixBans: g.prefixBans.Load()}
	g.bans.eachShard(func(sh *lruShard[netip.Addr, ban]) {
		sweepBans(sh, now)
		st.BannedSources += len(sh.idx)
	})
	g.prefixes.eachShard(func(sh *lruShard[netip.Prefix, int64]) {
		sweepUntil(sh, now)
		st.BannedPrefixes += len(sh.idx)
	})
	return st
}

// BannedCount is the number of sources under a ban now.
func (g *Guard) BannedCount() int { return g.Stats().BannedSources }
