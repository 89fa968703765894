package ng

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func testKey(i int) cacheKey {
	return cacheKey{from: netip.MustParseAddrPort("192.0.2.1:5060"), cookie: fmt.Sprint("c", i)}
}

// beginKey is begin for a key.
func (c *replyCache) beginKey(k cacheKey, now time.Time) ([]byte, lookup) {
	r, st, _ := c.begin(k.from, []byte(k.cookie), now)
	return r, st
}

func TestReplyCacheLifecycle(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(time.Second, 100, 1<<20)
	k := testKey(1)
	if _, st := c.beginKey(k, now); st != lookupNew {
		t.Fatalf("first begin = %v, want new", st)
	}
	if _, st := c.beginKey(k, now); st != lookupPending {
		t.Fatalf("begin while pending = %v, want pending", st)
	}
	c.finish(k, []byte("reply"), now)
	if r, st := c.beginKey(k, now.Add(999*time.Millisecond)); st != lookupCached || string(r) != "reply" {
		t.Fatalf("begin within TTL = %q, %v; want cached reply", r, st)
	}
	// Same cookie from another source is another request.
	other := k
	other.from = netip.MustParseAddrPort("192.0.2.2:5060")
	if _, st := c.beginKey(other, now); st != lookupNew {
		t.Fatalf("begin from other source = %v, want new", st)
	}
	if _, st := c.beginKey(k, now.Add(time.Second)); st != lookupNew {
		t.Fatalf("begin after TTL = %v, want new", st)
	}
	// A nil reply (request abandoned) forgets the key.
	c.finish(k, nil, now)
	if _, st := c.beginKey(k, now); st != lookupNew {
		t.Fatalf("begin after abandon = %v, want new", st)
	}
}

func TestReplyCacheExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(time.Second, 100, 1<<20)
	for i := range 10 {
		c.beginKey(testKey(i), now)
		c.finish(testKey(i), []byte("r"), now)
	}
	// The next completion after the TTL sweeps the expired ones out.
	later := now.Add(2 * time.Second)
	c.beginKey(testKey(99), later)
	c.finish(testKey(99), []byte("r"), later)
	if n := c.len(); n != 1 {
		t.Errorf("cache holds %d entries after expiry, want 1", n)
	}
	if len(c.fifo)-c.head != 1 {
		t.Errorf("fifo holds %d items, want 1", len(c.fifo)-c.head)
	}
}

func TestReplyCacheBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(time.Hour, 3, 1<<20)
	pending := testKey(-1)
	c.beginKey(pending, now)
	for i := range 5 {
		c.beginKey(testKey(i), now)
		c.finish(testKey(i), []byte("r"), now)
	}
	for i := range 5 {
		_, st := c.beginKey(testKey(i), now)
		if want := i >= 2; (st == lookupCached) != want {
			t.Errorf("entry %d cached = %v, want %v (oldest evicted first)", i, st == lookupCached, want)
		}
	}
	if _, st := c.beginKey(pending, now); st != lookupPending {
		t.Errorf("pending entry was evicted: %v", st)
	}

	// The byte budget counts replies and cookies.
	c = newReplyCache(time.Hour, 100, 250)
	big := bytes.Repeat([]byte("x"), 100)
	for i := range 3 {
		c.beginKey(testKey(i), now)
		c.finish(testKey(i), big, now)
	}
	if c.bytes > 250 || c.done != 2 {
		t.Errorf("after 3x100 bytes with a 250 byte budget: %d bytes in %d entries", c.bytes, c.done)
	}
}

func TestReplyCacheTTLZero(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(0, 100, 1<<20)
	k := testKey(1)
	c.beginKey(k, now)
	if _, st := c.beginKey(k, now); st != lookupPending {
		t.Fatalf("begin while pending = %v, want pending even with caching off", st)
	}
	c.finish(k, []byte("r"), now)
	if _, st := c.beginKey(k, now); st != lookupNew {
		t.Fatalf("begin after finish = %v, want new with caching off", st)
	}
}

func TestReplyCacheKeyOwnsCookie(t *testing.T) {
	msg := []byte("cookie d7:command4:pinge")
	c := newReplyCache(time.Hour, 100, 1<<20)
	_, _, k := c.begin(netip.AddrPort{}, msg[:6], time.Unix(0, 0))
	copy(msg, "reused") // the read buffer is reused for the next datagram
	if k.cookie != "cookie" {
		t.Fatalf("key cookie changed with the read buffer: %q", k.cookie)
	}
	if _, st := c.beginKey(cacheKey{cookie: "cookie"}, time.Unix(0, 0)); st != lookupPending {
		t.Fatalf("lookup after buffer reuse = %v, want pending", st)
	}
}
