package limit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// lru is a bounded map with least-recently-used eviction, split into
// shards so that requests from different sources rarely wait for each
// other. Every operation is O(1): a map lookup and a few index moves on
// a doubly linked list kept in a slice (no pointer per entry for the
// collector to chase, and entries are reused once the shard is full, so
// a full table allocates nothing).
//
// Shards are picked by a per-table random seed: a sender cannot choose
// addresses that all land in one shard to flush a victim's entry out of
// it with fewer than the table's size of new sources.
type lru[K comparable, V any] struct {
	seed      maphash.Seed
	mask      uint64
	shards    []lruShard[K, V]
	evictions atomic.Uint64
}

type lruShard[K comparable, V any] struct {
	mu         sync.Mutex
	idx        map[K]int32
	ents       []lruEnt[K, V]
	head, tail int32 // most and least recently used; -1 when empty
	free       int32 // a removed entry to reuse; -1 when none
	cap        int
	_          [40]byte // keep neighbouring shards' locks off one cache line
}

type lruEnt[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

// newLRU makes a table holding at most size entries (at least 1), in up
// to 64 shards of at least 16 entries each.
func newLRU[K comparable, V any](size int) *lru[K, V] {
	size = max(size, 1)
	n := 1
	for n < 64 && size/(n*2) >= 16 {
		n *= 2
	}
	l := &lru[K, V]{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]lruShard[K, V], n)}
	for i := range l.shards {
		c := size / n
		if i < size%n {
			c++
		}
		// The index grows with use, not to the shard's cap at once: a
		// presized table is memory the collector scans on every cycle,
		// with keys (netip.Addr, strings) that hold pointers. Presized,
		// the signalling's seven tables were 29 MB of an idle xtrunk
		// sip's 37 MB heap, however few sources it had heard.
		l.shards[i] = lruShard[K, V]{idx: make(map[K]int32), head: -1, tail: -1, free: -1, cap: c}
	}
	return l
}

// shard is where k lives; the caller locks it.
func (l *lru[K, V]) shard(k K) *lruShard[K, V] {
	return &l.shards[maphash.Comparable(l.seed, k)&l.mask]
}

// get finds k and marks it most recently used; nil when absent.
func (s *lruShard[K, V]) get(k K) *V {
	i, ok := s.idx[k]
	if !ok {
		return nil
	}
	s.moveToFront(i)
	return &s.ents[i].val
}

// peek finds k without changing its place.
func (s *lruShard[K, V]) peek(k K) *V {
	if i, ok := s.idx[k]; ok {
		return &s.ents[i].val
	}
	return nil
}

// put finds k or adds it with a zero value, evicting the least recently
// used entry when the shard is full (never refusing the newcomer). It
// reports whether k is new and whether an entry was evicted for it.
func (s *lruShard[K, V]) put(k K) (v *V, added, evicted bool) {
	if i, ok := s.idx[k]; ok {
		s.moveToFront(i)
		return &s.ents[i].val, false, false
	}
	var i int32
	switch {
	case len(s.idx) >= s.cap:
		i = s.tail
		s.unlink(i)
		delete(s.idx, s.ents[i].key)
		evicted = true
	case s.free >= 0:
		i = s.free
		s.free = s.ents[i].next
	default:
		s.ents = append(s.ents, lruEnt[K, V]{})
		i = int32(len(s.ents) - 1)
	}
	var zero V
	s.ents[i].key, s.ents[i].val = k, zero
	s.idx[k] = i
	s.pushFront(i)
	return &s.ents[i].val, true, evicted
}

// remove forgets k.
func (s *lruShard[K, V]) remove(k K) {
	i, ok := s.idx[k]
	if !ok {
		return
	}
	s.unlink(i)
	delete(s.idx, k)
	var zeroK K
	var zeroV V
	s.ents[i].key, s.ents[i].val = zeroK, zeroV
	s.ents[i].next = s.free
	s.free = i
}

// oldest is the least recently used entry; ok is false when empty.
func (s *lruShard[K, V]) oldest() (k K, v *V, ok bool) {
	if s.tail < 0 {
		return k, nil, false
	}
	e := &s.ents[s.tail]
	return e.key, &e.val, true
}

func (s *lruShard[K, V]) moveToFront(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

func (s *lruShard[K, V]) pushFront(i int32) {
	e := &s.ents[i]
	e.prev, e.next = -1, s.head
	if s.head >= 0 {
		s.ents[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}

func (s *lruShard[K, V]) unlink(i int32) {
	e := &s.ents[i]
	if e.prev >= 0 {
		s.ents[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next >= 0 {
		s.ents[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

// len is the number of entries in all shards.
func (l *lru[K, V]) len() int {
	n := 0
	l.eachShard(func(s *lruShard[K, V]) { n += len(s.idx) })
	return n
}

// eachShard calls f with each shard in turn, locked: for walks of the whole
// table (metrics, an operator's listing), not for a request path.
func (l *lru[K, V]) eachShard(f func(*lruShard[K, V])) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		f(s)
		s.mu.Unlock()
	}
}

// TTLSet is a bounded set of keys, each good until a time: for the
// signalling's short-lived trust (sources that passed digest on a trunk).
// Adding to a full set forgets the least recently added or refreshed key;
// every operation is O(1).
type TTLSet[K comparable] struct {
	t *lru[K, int64]
}

// NewTTLSet makes a set of at most size keys.
func NewTTLSet[K comparable](size int) *TTLSet[K] {
	return &TTLSet[K]{t: newLRU[K, int64](size)}
}

// Add puts k in the set until until (or moves its end there).
func (s *TTLSet[K]) Add(k K, until time.Time) {
	sh := s.t.shard(k)
	sh.mu.Lock()
	v, _, evicted := sh.put(k)
	*v = until.UnixNano()
	sh.mu.Unlock()
	if evicted {
		s.t.evictions.Add(1)
	}
}

// Has reports whether k is in the set at now; an expired key is
// forgotten.
func (s *TTLSet[K]) Has(k K, now time.Time) bool {
	sh := s.t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v := sh.peek(k)
	if v == nil {
		return false
	}
	if now.UnixNano() >= *v {
		sh.remove(k)
		return false
	}
	return true
}

// Len is the number of keys held (expired ones included until they are
// asked for or pushed out).
func (s *TTLSet[K]) Len() int { return s.t.len() }
