package ng

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// replyCache remembers the reply to each (source, cookie) so that a
// retransmitted request is answered with the same bytes instead of running
// the command twice; Kamailio retransmits offers it has not had an answer
// to, and running an offer twice would allocate a second set of ports.
//
// An entry is pending while its handler runs (retransmits of it are
// dropped: the reply, when it comes, answers them too) and done afterwards.
// Done entries sit in a FIFO in completion order, which with a fixed TTL is
// also expiry order, so expiring and evicting the oldest are both pops from
// its front. Pending entries are not in the FIFO; there are never more of
// them than requests in flight.
//
// Nothing the cache holds per entry contains a pointer, so the garbage
// collector never scans it: the map is keyed by a seeded hash of (source,
// cookie), and a done entry's source, cookie and reply are a record in an
// arena of byte chunks, appended in completion order and never written
// again. A chunk is dropped once none of its records is cached. At 1,200
// calls a second the cache held ~145,000 of the relay's ~183,000 live
// objects as pointers (entries, cookie strings, replies), and every
// collection's mark phase walked them (issue 13).
//
// A lookup checks the record's source and cookie, so a hash collision
// between done entries is a miss (the newer request replaces the older
// entry). Two pending requests whose keys collide (2^-64 for a pair) share
// the pending state: the second is dropped as a retransmit, and its client
// retransmits it later.
type replyCache struct {
	mu         sync.Mutex
	ttl        time.Duration
	maxEntries int
	maxBytes   int
	seed       maphash.Seed
	// epoch is when the cache was made: times are kept as durations
	// since (monotonic, unlike a wall-clock UnixNano, so a clock step
	// neither expires every reply nor keeps them for hours).
	epoch time.Time

	m     map[uint64]cacheSlot
	fifo  []fifoItem
	head  int
	seq   uint64
	done  int // entries holding a reply
	bytes int // their records' bytes (source, cookie and reply)

	// chunks is the arena, oldest first; live counts the cached records
	// in each; base is chunks[0]'s number (chunks are numbered as made).
	chunks [][]byte
	live   []int
	base   uint64
}

// cacheKey is a request's identity as the server sees it.
type cacheKey struct {
	from   netip.AddrPort
	cookie string
}

// cacheSlot is an entry; seq 0 while pending. A done entry's record is
// chunk's bytes [off, off+n): the key (keyRecord) then the reply.
type cacheSlot struct {
	seq     uint64
	expires time.Duration // since the cache's epoch
	chunk   uint64
	off, n  uint32
	keyLen  uint32
}

type fifoItem struct {
	hash uint64
	seq  uint64 // stale if it no longer matches the entry's
}

type lookup int

const (
	lookupNew lookup = iota
	lookupPending
	lookupCached
)

// arenaChunk is the size of the arena's chunks (a larger reply gets a
// chunk of its own size).
const arenaChunk = 256 << 10

func newReplyCache(ttl time.Duration, maxEntries, maxBytes int) *replyCache {
	return &replyCache{ttl: ttl, maxEntries: maxEntries, maxBytes: maxBytes, seed: maphash.MakeSeed(), epoch: time.Now(), m: make(map[uint64]cacheSlot)}
}

// since is now as a duration since the cache's epoch.
func (c *replyCache) since(now time.Time) time.Duration { return now.Sub(c.epoch) }

// keyRecordLen is the length of a key's record: the source's address
// (16 bytes, IPv4 mapped), its port and the cookie.
func keyRecordLen(cookie int) int { return 16 + 2 + cookie }

func appendKeyRecord(b []byte, from netip.AddrPort, cookie string) []byte {
	a := from.Addr().As16()
	b = append(b, a[:]...)
	b = binary.BigEndian.AppendUint16(b, from.Port())
	return append(b, cookie...)
}

func (c *replyCache) hash(from netip.AddrPort, cookie string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	a := from.Addr().As16()
	h.Write(a[:])
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], from.Port())
	h.Write(p[:])
	h.WriteString(cookie)
	return h.Sum64()
}

// record returns a done slot's key record and reply.
func (c *replyCache) record(s cacheSlot) (key, reply []byte) {
	ch := c.chunks[s.chunk-c.base]
	r := ch[s.off : s.off+s.n : s.off+s.n]
	return r[:s.keyLen], r[s.keyLen:]
}

// begin looks up the request with cookie from from. For lookupNew it has
// recorded the request as pending under the returned key, and the caller
// must call finish(key, ...) once the request is answered. A cached reply
// is the arena's bytes: the caller must not modify it.
func (c *replyCache) begin(from netip.AddrPort, cookie []byte, now time.Time) ([]byte, lookup, cacheKey) {
	k := cacheKey{from, string(cookie)}
	h := c.hash(from, k.cookie)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[h]; ok {
		if s.seq == 0 {
			return nil, lookupPending, k
		}
		if c.since(now) < s.expires {
			var kb [64]byte
			if key, reply := c.record(s); bytes.Equal(key, appendKeyRecord(kb[:0], from, k.cookie)) {
				return reply, lookupCached, k
			}
		}
		c.remove(h, s) // expired, or another key with the same hash
	}
	c.m[h] = cacheSlot{}
	return nil, lookupNew, k
}

// finish stores a copy of the reply to the pending k, or forgets k if
// reply is nil or caching is off.
func (c *replyCache) finish(k cacheKey, reply []byte, now time.Time) {
	h := c.hash(k.from, k.cookie)
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[h]
	if !ok || s.seq != 0 {
		return
	}
	if reply == nil || c.ttl <= 0 {
		delete(c.m, h)
		return
	}
	c.seq++
	s = c.store(k.from, k.cookie, reply)
	s.seq, s.expires = c.seq, c.since(now)+c.ttl
	c.m[h] = s
	c.done++
	c.bytes += int(s.n)
	c.fifo = append(c.fifo, fifoItem{hash: h, seq: s.seq})
	c.evict(now)
}

// store appends the record of (from, cookie, reply) to the arena.
func (c *replyCache) store(from netip.AddrPort, cookie string, reply []byte) cacheSlot {
	kl := keyRecordLen(len(cookie))
	need := kl + len(reply)
	last := len(c.chunks) - 1
	if last < 0 || cap(c.chunks[last])-len(c.chunks[last]) < need {
		c.chunks = append(c.chunks, make([]byte, 0, max(arenaChunk, need)))
		c.live = append(c.live, 0)
		last++
	}
	b := c.chunks[last]
	off := len(b)
	b = appendKeyRecord(b, from, cookie)
	b = append(b, reply...)
	c.chunks[last] = b
	c.live[last]++
	return cacheSlot{chunk: c.base + uint64(last), off: uint32(off), n: uint32(need), keyLen: uint32(kl)}
}

func (c *replyCache) remove(h uint64, s cacheSlot) {
	delete(c.m, h)
	if s.seq == 0 {
		return
	}
	c.done--
	c.bytes -= int(s.n)
	c.live[s.chunk-c.base]--
	// Drop the oldest chunks once empty; the newest stays to append to.
	for len(c.chunks) > 1 && c.live[0] == 0 {
		c.chunks[0] = nil
		c.chunks, c.live = c.chunks[1:], c.live[1:]
		c.base++
	}
}

// evict drops expired entries, then the oldest until within bounds.
func (c *replyCache) evict(now time.Time) {
	t := c.since(now)
	for c.head < len(c.fifo) {
		it := c.fifo[c.head]
		if s, ok := c.m[it.hash]; ok && s.seq == it.seq {
			if c.done <= c.maxEntries && c.bytes <= c.maxBytes && t < s.expires {
				break
			}
			c.remove(it.hash, s)
		}
		c.fifo[c.head] = fifoItem{}
		c.head++
	}
	if c.head > 0 && c.head*2 >= len(c.fifo) {
		n := copy(c.fifo, c.fifo[c.head:])
		c.fifo, c.head = c.fifo[:n], 0
	}
}

// len reports the number of entries, pending ones included.
func (c *replyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
