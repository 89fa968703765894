package ng

import (
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
type replyCache struct {
	mu         sync.Mutex
	ttl        time.Duration
	maxEntries int
	maxBytes   int

	m     map[cacheKey]*cacheEntry
	fifo  []fifoItem
	head  int
	seq   uint64
	done  int // entries holding a reply
	bytes int // their reply and cookie bytes
}

type cacheKey struct {
	from   netip.AddrPort
	cookie string
}

type cacheEntry struct {
	key     cacheKey
	reply   []byte // nil while pending; never modified once set
	expires time.Time
	seq     uint64
}

type fifoItem struct {
	key cacheKey
	seq uint64 // stale if it no longer matches the entry's
}

type lookup int

const (
	lookupNew lookup = iota
	lookupPending
	lookupCached
)

func newReplyCache(ttl time.Duration, maxEntries, maxBytes int) *replyCache {
	return &replyCache{ttl: ttl, maxEntries: maxEntries, maxBytes: maxBytes, m: make(map[cacheKey]*cacheEntry)}
}

// begin looks up the request with cookie from from. For lookupNew it has
// recorded the request as pending under the returned key, and the caller
// must call finish(key, ...) once the request is answered. Taking the
// cookie as bytes lets a retransmit be answered without copying it.
func (c *replyCache) begin(from netip.AddrPort, cookie []byte, now time.Time) ([]byte, lookup, cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[cacheKey{from, string(cookie)}]; ok {
		if e.reply == nil {
			return nil, lookupPending, e.key
		}
		if now.Before(e.expires) {
			return e.reply, lookupCached, e.key
		}
		c.remove(e)
	}
	k := cacheKey{from, string(cookie)}
	c.m[k] = &cacheEntry{key: k}
	return nil, lookupNew, k
}

// finish stores the reply to the pending k, or forgets k if reply is nil
// or caching is off.
func (c *replyCache) finish(k cacheKey, reply []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || e.reply != nil {
		return
	}
	if reply == nil || c.ttl <= 0 {
		delete(c.m, k)
		return
	}
	c.seq++
	e.reply, e.expires, e.seq = reply, now.Add(c.ttl), c.seq
	c.done++
	c.bytes += entryCost(e)
	c.fifo = append(c.fifo, fifoItem{key: e.key, seq: e.seq})
	c.evict(now)
}

func entryCost(e *cacheEntry) int { return len(e.reply) + len(e.key.cookie) }

func (c *replyCache) remove(e *cacheEntry) {
	delete(c.m, e.key)
	if e.reply != nil {
		c.done--
		c.bytes -= entryCost(e)
	}
}

// evict drops expired entries, then the oldest until within bounds.
func (c *replyCache) evict(now time.Time) {
	for c.head < len(c.fifo) {
		it := c.fifo[c.head]
		if e, ok := c.m[it.key]; ok && e.seq == it.seq && e.reply != nil {
			if c.done <= c.maxEntries && c.bytes <= c.maxBytes && now.Before(e.expires) {
				break
			}
			c.remove(e)
		}
		c.fifo[c.head] = fifoItem{}
		c.head++
	}
	if c.head > 0 && c.head*2 >= len(c.fifo) {
		n := copy(c.fifo, c.fifo[c.head:])
		clear(c.fifo[n:])
		c.fifo, c.head = c.fifo[:n], 0
	}
}

// len reports the number of entries, pending ones included.
func (c *replyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
