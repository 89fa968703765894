// Package limit holds the signalling's counters: calls per second and
// concurrent calls per trunk, and the abuse guard that stops listening to a
// source that floods, fails authentication too often or identifies as a
// known scanner.
package limit

import (
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Clock is time.Now, replaceable in tests.
type Clock func() time.Time

// CPS allows at most N call attempts per trunk in any one-second window.
type CPS struct {
	mu  sync.Mutex
	now Clock
	win map[string][]time.Time // recent attempts per trunk
}

// NewCPS makes a limiter.
func NewCPS(now Clock) *CPS {
	if now == nil {
		now = time.Now
	}
	return &CPS{now: now, win: map[string][]time.Time{}}
}

// Allow records an attempt on trunk if fewer than limit happened in the
// last second; limit <= 0 means no limit.
func (c *CPS) Allow(trunk string, limit int) bool {
	if limit <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	w := c.win[trunk]
	i := 0
	for i < len(w) && now.Sub(w[i]) >= time.Second {
		i++
	}
	w = w[i:]
	if len(w) >= limit {
		c.win[trunk] = w
		return false
	}
	c.win[trunk] = append(w, now)
	return true
}

// Concurrent counts calls in progress per trunk.
type Concurrent struct {
	mu sync.Mutex
	n  map[string]int
}

// NewConcurrent makes a counter.
func NewConcurrent() *Concurrent { return &Concurrent{n: map[string]int{}} }

// Acquire takes a slot on trunk if fewer than limit are taken (limit <= 0:
// no limit). The caller must Release what it acquired.
func (c *Concurrent) Acquire(trunk string, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n[trunk] >= limit {
		return false
	}
	c.n[trunk]++
	return true
}

// Release gives a slot back.
func (c *Concurrent) Release(trunk string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[trunk] <= 1 {
		delete(c.n, trunk)
		return
	}
	c.n[trunk]--
}

// InUse is the number of calls in progress on trunk.
func (c *Concurrent) InUse(trunk string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[trunk]
}

// GuardConfig tunes the abuse guard. A zero count or duration turns its
// check off.
type GuardConfig struct {
	MaxRequests   int           // requests per RequestWindow before a ban (16)
	RequestWindow time.Duration // (2 s)
	MaxAuthFails  int           // failed authentications per AuthWindow before a ban (10)
	AuthWindow    time.Duration // (1 min)
	Ban           time.Duration // how long a source is ignored (5 min)
	OptionsEvery  time.Duration // a source may send OPTIONS this often (10 s)
	Scanners      []string      // User-Agent substrings (any case) that get no answer at all
	// MaxSources bounds the sources tracked at once (65536): UDP sources
	// can be spoofed, and the guard must not be the thing that runs out
	// of memory. Past it, untracked sources are let through unchecked.
	MaxSources int
}

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
		MaxSources: 1 << 16,
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
	ReasonBanned   = "banned"        // from a source under a ban
	ReasonOptions  = "options_rate"  // OPTIONS more often than OptionsEvery
	ReasonAccepted = ""
)

// Reasons lists every reason, for metrics that start at zero.
var Reasons = []string{ReasonFlood, ReasonAuth, ReasonScanner, ReasonBanned, ReasonOptions}

// Guard tracks sources.
type Guard struct {
	cfg GuardConfig
	now Clock
	mu  sync.Mutex
	src map[netip.Addr]*source
	gc  time.Time
}

type source struct {
	reqs        []time.Time
	fails       []time.Time
	bannedUntil time.Time
	lastOptions time.Time
}

// NewGuard makes a guard.
func NewGuard(cfg GuardConfig, now Clock) *Guard {
	if now == nil {
		now = time.Now
	}
	scanners := make([]string, 0, len(cfg.Scanners))
	for _, s := range cfg.Scanners {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			scanners = append(scanners, s)
		}
	}
	cfg.Scanners = scanners
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = 1 << 16
	}
	return &Guard{cfg: cfg, now: now, src: map[netip.Addr]*source{}}
}

// Scanner reports whether userAgent is a known scanner's.
func (g *Guard) Scanner(userAgent string) bool {
	if userAgent == "" || len(g.cfg.Scanners) == 0 {
		return false
	}
	ua := strings.ToLower(userAgent)
	for _, s := range g.cfg.Scanners {
		if strings.Contains(ua, s) {
			return true
		}
	}
	return false
}

// Check is called for every request from addr that is not exempt, before
// anything else: a scanner's User-Agent, a source under a ban, a source
// going over MaxRequests per RequestWindow (which bans it) and OPTIONS
// more often than OptionsEvery are not to be answered.
func (g *Guard) Check(addr netip.Addr, method, userAgent string) (Verdict, string) {
	if g.Scanner(userAgent) {
		return Ignore, ReasonScanner
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	s := g.source(addr, now)
	if s == nil {
		return Accept, ReasonAccepted
	}
	if now.Before(s.bannedUntil) {
		return Ignore, ReasonBanned
	}
	if g.cfg.MaxRequests > 0 && g.cfg.RequestWindow > 0 {
		s.reqs = trim(append(s.reqs, now), now, g.cfg.RequestWindow)
		if len(s.reqs) > g.cfg.MaxRequests {
			s.bannedUntil = now.Add(g.cfg.Ban)
			s.reqs = nil
			return Ignore, ReasonFlood
		}
	}
	return g.options(s, method, now)
}

// CheckOptions applies only the OPTIONS rate to addr: for sources that
// are exempt from bans (a trunk's IP ACL) but, like everyone, may ping
// only once per OptionsEvery.
func (g *Guard) CheckOptions(addr netip.Addr, method string) (Verdict, string) {
	if !strings.EqualFold(method, "OPTIONS") || g.cfg.OptionsEvery <= 0 {
		return Accept, ReasonAccepted
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	s := g.source(addr, now)
	if s == nil {
		return Accept, ReasonAccepted
	}
	return g.options(s, method, now)
}

func (g *Guard) options(s *source, method string, now time.Time) (Verdict, string) {
	if g.cfg.OptionsEvery > 0 && strings.EqualFold(method, "OPTIONS") {
		if !s.lastOptions.IsZero() && now.Sub(s.lastOptions) < g.cfg.OptionsEvery {
			return Throttled, ReasonOptions
		}
		s.lastOptions = now
	}
	return Accept, ReasonAccepted
}

// source returns addr's record, making one if there is room; nil when the
// table is full even after forgetting idle sources. g.mu is held.
func (g *Guard) source(addr netip.Addr, now time.Time) *source {
	addr = addr.Unmap()
	if s := g.src[addr]; s != nil {
		return s
	}
	if len(g.src) >= g.cfg.MaxSources {
		g.gc = time.Time{}
	}
	g.collect(now)
	if len(g.src) >= g.cfg.MaxSources {
		return nil
	}
	s := &source{}
	g.src[addr] = s
	return s
}

// AuthFailed records a failed authentication from addr; it reports whether
// the source is now banned.
func (g *Guard) AuthFailed(addr netip.Addr) bool {
	if g.cfg.MaxAuthFails <= 0 || g.cfg.AuthWindow <= 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	s := g.source(addr, now)
	if s == nil {
		return false
	}
	s.fails = trim(append(s.fails, now), now, g.cfg.AuthWindow)
	if len(s.fails) >= g.cfg.MaxAuthFails {
		s.bannedUntil = now.Add(g.cfg.Ban)
		s.fails = nil
		return true
	}
	return false
}

// IsBanned reports whether addr is under a ban. It is cheap enough to ask
// for every datagram before parsing it.
func (g *Guard) IsBanned(addr netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.src[addr.Unmap()]
	return s != nil && g.now().Before(s.bannedUntil)
}

// Banned lists the sources currently ignored (for an operator's view).
func (g *Guard) Banned() []netip.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var out []netip.Addr
	for a, s := range g.src {
		if now.Before(s.bannedUntil) {
			out = append(out, a)
		}
	}
	return out
}

// BannedCount is len(Banned()) without the list.
func (g *Guard) BannedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	n := 0
	for _, s := range g.src {
		if now.Before(s.bannedUntil) {
			n++
		}
	}
	return n
}

func trim(ts []time.Time, now time.Time, win time.Duration) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= win {
		i++
	}
	return ts[i:]
}

// collect forgets idle sources now and then so the map stays bounded by
// the sources of the last few minutes.
func (g *Guard) collect(now time.Time) {
	if now.Before(g.gc) {
		return
	}
	g.gc = now.Add(30 * time.Second)
	idle := max(g.cfg.Ban, g.cfg.AuthWindow, g.cfg.OptionsEvery, g.cfg.RequestWindow)
	for a, s := range g.src {
		last := s.bannedUntil
		for _, t := range []time.Time{s.lastOptions, lastOf(s.reqs), lastOf(s.fails)} {
			if t.After(last) {
				last = t
			}
		}
		if now.Sub(last) > idle {
			delete(g.src, a)
		}
	}
}

func lastOf(ts []time.Time) time.Time {
	if len(ts) == 0 {
		return time.Time{}
	}
	return ts[len(ts)-1]
}
