package ng

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
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

func TestReplyCacheCopiesReply(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(time.Hour, 100, 1<<20)
	k := testKey(1)
	c.beginKey(k, now)
	buf := []byte("reply one")
	c.finish(k, buf, now)
	copy(buf, "REUSED!!!") // the server reuses its reply buffer
	if r, st := c.beginKey(k, now); st != lookupCached || string(r) != "reply one" {
		t.Fatalf("cached = %q, %v; want the reply as it was when finished", r, st)
	}
}

// A done entry found under a request's hash but recorded for another
// source or cookie (a hash collision) is not that request's reply.
func TestReplyCacheCollisionIsMiss(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(time.Hour, 100, 1<<20)
	a, b := testKey(1), testKey(2)
	c.beginKey(a, now)
	c.finish(a, []byte("reply to a"), now)
	// Make b's hash lead to a's record.
	hb := c.hash(b.from, b.cookie)
	c.m[hb] = c.m[c.hash(a.from, a.cookie)]
	c.done++
	c.bytes += int(c.m[hb].n)
	c.live[c.m[hb].chunk-c.base]++
	if r, st := c.beginKey(b, now); st != lookupNew {
		t.Fatalf("begin(b) = %q, %v; want new: the record is a's", r, st)
	}
	if r, st := c.beginKey(a, now); st != lookupCached || string(r) != "reply to a" {
		t.Fatalf("begin(a) = %q, %v; want a's reply", r, st)
	}
}

// The arena drops a chunk once none of its records is cached, and a reply
// larger than a chunk gets one of its own.
func TestReplyCacheArenaChunks(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newReplyCache(time.Second, 1<<20, 1<<30)
	reply := bytes.Repeat([]byte("r"), 1000)
	n := 3 * arenaChunk / 1000
	for i := range n {
		c.beginKey(testKey(i), now)
		c.finish(testKey(i), reply, now)
	}
	if len(c.chunks) < 3 {
		t.Fatalf("%d records of ~1 KB in %d chunks, want at least 3", n, len(c.chunks))
	}
	huge := bytes.Repeat([]byte("h"), 2*arenaChunk)
	later := now.Add(2 * time.Second) // every earlier record expired
	c.beginKey(testKey(-1), later)
	c.finish(testKey(-1), huge, later)
	if len(c.chunks) != 1 || c.done != 1 || c.bytes != keyRecordLen(len(testKey(-1).cookie))+len(huge) {
		t.Fatalf("after expiry: %d chunks, %d entries, %d bytes; want the huge reply's chunk alone", len(c.chunks), c.done, c.bytes)
	}
	if r, st := c.beginKey(testKey(-1), later); st != lookupCached || !bytes.Equal(r, huge) {
		t.Fatalf("huge reply: %v, %d bytes", st, len(r))
	}
	for i := range 3 {
		if _, st := c.beginKey(testKey(i), later); st != lookupNew {
			t.Errorf("expired entry %d: %v, want new", i, st)
		}
	}
}

// The cache's per-entry state holds no pointers: the collector never scans
// the map or the FIFO, however many replies are cached (issue 13).
func TestReplyCacheHoldsNoPointers(t *testing.T) {
	for _, v := range []any{cacheSlot{}, fifoItem{}, uint64(0)} {
		if p := pointerIn(reflect.TypeOf(v)); p != "" {
			t.Errorf("%T holds a pointer: %s", v, p)
		}
	}
}

// pointerIn names a field of t that is or holds a pointer, or "".
func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	case reflect.Array:
		return pointerIn(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if p := pointerIn(t.Field(i).Type); p != "" {
				return t.Field(i).Name + ": " + p
			}
		}
		return ""
	}
	return t.String()
}

// BenchmarkReplyCacheMark times a whole collection with the cache full
// (DefaultReplyCacheEntries replies of 600 bytes, each its own slice as
// the server hands them over): the work the cache adds to every
// collection of the relay's heap.
func BenchmarkReplyCacheMark(b *testing.B) {
	c := newReplyCache(time.Hour, DefaultReplyCacheEntries, DefaultReplyCacheBytes)
	now := time.Unix(1000, 0)
	reply := bytes.Repeat([]byte("r"), 600)
	for i := range DefaultReplyCacheEntries {
		k := testKey(i)
		c.beginKey(k, now)
		c.finish(k, bytes.Clone(reply), now)
	}
	runtime.GC()
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(c)
}
