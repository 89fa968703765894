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

// GuardConfig tunes the abuse guard.
type GuardConfig struct {
	MaxRequests   int           // requests per RequestWindow before a ban (16)
	RequestWindow time.Duration // (2 s)
	MaxAuthFails  int           // failed authentications per AuthWindow before a ban (10)
	AuthWindow    time.Duration // (1 min)
	Ban           time.Duration // how long a source is ignored (5 min)
	OptionsEvery  time.Duration // a source may send OPTIONS this often (10 s)
	Scanners      []string      // User-Agent substrings that get no answer at all
}

// DefaultGuard is the guard's default configuration.
func DefaultGuard() GuardConfig {
	return GuardConfig{
		MaxRequests: 16, RequestWindow: 2 * time.Second,
		MaxAuthFails: 10, AuthWindow: time.Minute,
		Ban: 5 * time.Minute, OptionsEvery: 10 * time.Second,
		Scanners: []string{"friendly-scanner", "sipcli", "sipvicious", "vaxsipuseragent", "pplsip", "sip-scan", "sipsak", "iWar", "sundayddr"},
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

// Reasons a source is ignored, for metrics and logs.
const (
	ReasonFlood    = "flood"
	ReasonAuth     = "auth_failures"
	ReasonScanner  = "scanner"
	ReasonBanned   = "banned"
	ReasonOptions  = "options_rate"
	ReasonAccepted = ""
)

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
	for i, s := range cfg.Scanners {
		cfg.Scanners[i] = strings.ToLower(s)
	}
	return &Guard{cfg: cfg, now: now, src: map[netip.Addr]*source{}}
}

// Check is called for every request from addr before anything else.
func (g *Guard) Check(addr netip.Addr, method, userAgent string) (Verdict, string) {
	ua := strings.ToLower(userAgent)
	for _, s := range g.cfg.Scanners {
		if s != "" && strings.Contains(ua, s) {
			return Ignore, ReasonScanner
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.collect(now)
	s := g.src[addr]
	if s == nil {
		s = &source{}
		g.src[addr] = s
	}
	if now.Before(s.bannedUntil) {
		return Ignore, ReasonBanned
	}
	s.reqs = trim(append(s.reqs, now), now, g.cfg.RequestWindow)
	if g.cfg.MaxRequests > 0 && len(s.reqs) > g.cfg.MaxRequests {
		s.bannedUntil = now.Add(g.cfg.Ban)
		s.reqs = nil
		return Ignore, ReasonFlood
	}
	if strings.EqualFold(method, "OPTIONS") && g.cfg.OptionsEvery > 0 {
		if !s.lastOptions.IsZero() && now.Sub(s.lastOptions) < g.cfg.OptionsEvery {
			return Throttled, ReasonOptions
		}
		s.lastOptions = now
	}
	return Accept, ReasonAccepted
}

// AuthFailed records a failed authentication from addr; it reports whether
// the source is now banned.
func (g *Guard) AuthFailed(addr netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	s := g.src[addr]
	if s == nil {
		s = &source{}
		g.src[addr] = s
	}
	s.fails = trim(append(s.fails, now), now, g.cfg.AuthWindow)
	if g.cfg.MaxAuthFails > 0 && len(s.fails) >= g.cfg.MaxAuthFails {
		s.bannedUntil = now.Add(g.cfg.Ban)
		s.fails = nil
		return true
	}
	return false
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
