package api

import (
	"net/netip"
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
