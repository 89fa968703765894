// Package limit holds the signalling's counters: calls per second and
// concurrent calls per trunk, and the abuse guard that stops listening to a
// source that floods, fails authentication too often or identifies as a
// known scanner.
package limit

import (
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
