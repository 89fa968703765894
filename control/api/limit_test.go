package api

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// The limit lifts when the oldest failure leaves the window, and the
// table stays bounded however many sources fail.
func TestLoginLimiterWindowAndBound(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := newLoginLimiter(func() time.Time { return now })
	src := sourceKey("198.51.100.1:5000")
	for i := 0; i < MaxLoginFailures; i++ {
		if _, limited := l.blocked(src); limited {
			t.Fatalf("limited after %d failures", i)
		}
		l.failed(src)
		now = now.Add(time.Second)
	}
	wait, limited := l.blocked(src)
	if !limited || wait != LoginWindow-MaxLoginFailures*time.Second {
		t.Fatalf("after %d failures: %v %v", MaxLoginFailures, limited, wait)
	}
	now = now.Add(wait)
	if _, limited := l.blocked(src); limited {
		t.Fatal("still limited once the first failure left the window")
	}
	if sourceKey("[2001:db8::1]:1") != sourceKey("[2001:db8::ffff]:2") || sourceKey("[2001:db8::1]:1") == sourceKey("[2001:db8:0:1::1]:1") {
		t.Fatal("IPv6 sources are not keyed by /64")
	}
	if sourceKey("[::ffff:198.51.100.1]:5000") != src {
		t.Fatal("an IPv4-mapped address is another source")
	}
	for i := 0; i < maxLoginSources+1000; i++ {
		l.failed(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	if n := len(l.sources); n > maxLoginSources {
		t.Fatalf("%d sources held, bound %d", n, maxLoginSources)
	}
}

// A subaccount's bucket: the burst at once, then one write per 1/rate,
// the wait until the next token reported, one "first" per run of
// refusals; accounts apart; the table bounded.
func TestWriteLimiter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := newWriteLimiter(func() time.Time { return now }, 2, 5)
	for i := range 5 {
		if _, _, ok := l.take("ACa"); !ok {
			t.Fatalf("write %d of a burst of 5 refused", i+1)
		}
	}
	wait, first, ok := l.take("ACa")
	if ok || !first || wait != 500*time.Millisecond {
		t.Fatalf("6th write at once: ok %v first %v wait %v; want refused, first, 500ms", ok, first, wait)
	}
	if _, first, ok := l.take("ACa"); ok || first {
		t.Fatalf("7th: ok %v first %v; want refused, not first", ok, first)
	}
	if _, _, ok := l.take("ACb"); !ok {
		t.Fatal("another account shares the bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if _, _, ok := l.take("ACa"); !ok {
		t.Fatal("a token after 1/rate: refused")
	}
	if _, first, ok := l.take("ACa"); ok || !first {
		t.Fatalf("refused again after a write got through: ok %v first %v; want a new run", ok, first)
	}
	now = now.Add(time.Hour)
	for i := range 5 {
		if _, _, ok := l.take("ACa"); !ok {
			t.Fatalf("after an hour, write %d refused: the bucket did not refill to its burst", i+1)
		}
	}
	for i := range maxWriteBuckets + 100 {
		l.take(strconv.Itoa(i))
	}
	if n := len(l.buckets); n > maxWriteBuckets {
		t.Fatalf("%d buckets, want at most %d", n, maxWriteBuckets)
	}
	// eviction drops the bucket used longest ago, not the busy one
	l = newWriteLimiter(func() time.Time { return now }, 1e-4, 1)
	l.take("old")
	now = now.Add(time.Minute)
	l.take("busy")
	l.evict(now)
	if _, ok := l.buckets["busy"]; !ok || len(l.buckets) != 1 {
		t.Errorf("evict kept %v, want busy only", l.buckets)
	}
	// a very low rate: Retry-After stays sane
	if wait, _, _ := l.take("busy"); wait != maxWriteWait {
		t.Errorf("wait at 1e-4 writes a second: %v, want the cap %v", wait, maxWriteWait)
	}
	if _, _, ok := (*writeLimiter)(nil).take("x"); !ok {
		t.Fatal("no limiter refused")
	}
	if _, _, ok := newWriteLimiter(time.Now, 0, 1).take("x"); !ok {
		t.Fatal("rate 0 (no limit) refused")
	}
}
