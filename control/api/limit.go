package api

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Login limiting: a source (an IPv4 address, an IPv6 /64) that failed to
// authenticate MaxLoginFailures times within LoginWindow gets 429 for
// every request, right or wrong, until its oldest failure leaves the
// window: guessing an auth token or probing account sids costs a minute
// per ten tries, and the attacker cannot tell a right guess from a wrong
// one while limited.
const (
	MaxLoginFailures = 10
	LoginWindow      = time.Minute
	// maxLoginSources bounds the table: past it, sources whose failures
	// have all expired go first, then the oldest.
	maxLoginSources = 65536
)

type loginLimiter struct {
	now func() time.Time

	mu      sync.Mutex
	sources map[netip.Prefix]*failures
}

// failures is a source's failure times, oldest first (at most
// MaxLoginFailures kept).
type failures struct {
	at []time.Time
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, sources: map[netip.Prefix]*failures{}}
}

// sourceKey is the limited unit for a request's RemoteAddr: the address,
// or its /64 for IPv6 (one host holds a whole /64). Unix-socket clients
// (no address) share one key.
func sourceKey(remote string) netip.Prefix {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, 32)
}

// blocked reports whether src is limited now and, if so, how long until
// it may try again.
func (l *loginLimiter) blocked(src netip.Prefix) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.sources[src]
	if f == nil {
		return 0, false
	}
	now := l.now()
	f.expire(now)
	if len(f.at) < MaxLoginFailures {
		if len(f.at) == 0 {
			delete(l.sources, src)
		}
		return 0, false
	}
	return f.at[0].Add(LoginWindow).Sub(now), true
}

// failed counts a failed authentication of src.
func (l *loginLimiter) failed(src netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.sources[src]
	if f == nil {
		if len(l.sources) >= maxLoginSources {
			l.evict(now)
		}
		f = &failures{}
		l.sources[src] = f
	}
	f.expire(now)
	if len(f.at) == MaxLoginFailures {
		f.at = append(f.at[:0], f.at[1:]...)
	}
	f.at = append(f.at, now)
}

// evict makes room: sources with no live failures go, else the one
// whose last failure is oldest (evictSampled).
func (l *loginLimiter) evict(now time.Time) {
	evictSampled(l.sources, func(f *failures) (time.Time, bool) {
		var last time.Time
		if len(f.at) > 0 {
			last = f.at[len(f.at)-1]
		}
		f.expire(now)
		return last, len(f.at) == 0
	})
}

// evictSampled makes room in m with O(1) work: among a sample of 64
// entries (map order is random), those use calls idle go; if none is,
// the one used longest ago. use reports when an entry was last used
// (read before it decides idleness) and whether it is idle.
func evictSampled[K comparable, V any](m map[K]V, use func(V) (last time.Time, idle bool)) {
	var oldest K
	var at time.Time
	n, freed := 0, false
	for k, v := range m {
		if last, idle := use(v); idle {
			delete(m, k)
			freed = true
		} else if n == 0 || last.Before(at) {
			oldest, at = k, last
		}
		if n++; n == 64 {
			break
		}
	}
	if !freed {
		delete(m, oldest)
	}
}

func (f *failures) expire(now time.Time) {
	i := 0
	for i < len(f.at) && now.Sub(f.at[i]) >= LoginWindow {
		i++
	}
	if i > 0 {
		f.at = append(f.at[:0], f.at[i:]...)
	}
}

// Tenant write limiting: each write (POST, DELETE) by a subaccount takes
// a token from its account's bucket, refilled at TenantWriteRate a second
// up to TenantWriteBurst; an empty bucket is 429 (Twilio's 20429) with
// Retry-After. Every write changes the store's revision, and every edge
// then drops its whole trunk cache (and, with PostgreSQL, at once), and
// every write is a store transaction the CDR writers queue behind: one
// tenant's script renaming a trunk in a loop must not do that to every
// tenant's calls. The main (operator) account is not limited: it
// provisions in bulk, and it is the operator.
const (
	DefaultTenantWriteRate  = 10  // writes a second per subaccount
	DefaultTenantWriteBurst = 100 // writes at once
	// maxWriteWait caps the Retry-After a very low rate would give.
	maxWriteWait = time.Hour
	// maxWriteBuckets bounds the table; full, buckets that have filled
	// up again (idle accounts) go first.
	maxWriteBuckets = 65536
)

type writeLimiter struct {
	now   func() time.Time
	rate  float64 // tokens a second; <= 0: no limit
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens  float64
	at      time.Time
	limited bool // the last write was refused
}

func newWriteLimiter(now func() time.Time, rate float64, burst int) *writeLimiter {
	return &writeLimiter{now: now, rate: rate, burst: float64(max(burst, 1)), buckets: map[string]*bucket{}}
}

// take spends a write of account; when the bucket is empty it reports
// how long until the next token, and first whether this refusal starts a
// run of them (for one log line per run).
func (l *writeLimiter) take(account string) (wait time.Duration, first, ok bool) {
	if l == nil || l.rate <= 0 {
		return 0, false, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[account]
	if b == nil {
		if len(l.buckets) >= maxWriteBuckets {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[account] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens < 1 {
		first = !b.limited
		b.limited = true
		return time.Duration(min((1-b.tokens)/l.rate, maxWriteWait.Seconds()) * float64(time.Second)), first, false
	}
	b.tokens--
	b.limited = false
	return 0, false, true
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
	}
	b.at = now
}

// evict drops buckets full again (as good as absent), else the one
// used longest ago (evictSampled).
func (l *writeLimiter) evict(now time.Time) {
	evictSampled(l.buckets, func(b *bucket) (time.Time, bool) {
		used := b.at // refill moves it to now
		b.refill(now, l.rate, l.burst)
		return used, b.tokens >= l.burst
	})
}
