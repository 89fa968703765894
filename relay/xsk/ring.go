package xsk

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one of the four single-producer/single-consumer rings an XDP
// socket shares with the kernel: a producer index, a consumer index, a
// flags word and a power-of-two array of entries, all at the offsets
// XDP_MMAP_OFFSETS reports inside one mmap'd region. For the fill and TX
// rings this process is the producer; for the RX and completion rings it
// is the consumer.
//
// Indexes are free-running uint32s: the kernel and we only ever add to
// them, an entry lives at index&mask, and "how many entries are in the
// ring" is producer-consumer computed in uint32 arithmetic, which stays
// right across the wrap at 2^32 (the ring is never larger than 2^31).
//
// cachedProd and cachedCons are our private copies, as in libxdp's
// xsk_ring_prod/xsk_ring_cons: the shared index we own is published once
// per batch, and the one the kernel owns is read only when the cached
// value says the batch cannot be served, so a busy ring costs one atomic
// load and one atomic store per batch, not per entry.
//
// Memory ordering. The kernel side (net/xdp/xsk_queue.h) pairs
// smp_load_acquire/smp_store_release on these indexes (with an smp_mb
// where it reads the consumer before writing entries). We read the
// kernel's index with atomic.LoadUint32 and publish ours with
// atomic.StoreUint32. Go's atomics are sequentially consistent, which is
// at least acquire (load) and release (store): on arm64 they compile to
// LDARW/STLRW, on amd64 to a plain MOV for the load (x86-TSO already
// orders a load before later loads and stores) and XCHG for the store (a
// full barrier). So entries we wrote are visible before the index that
// publishes them, and entries the kernel wrote are read only after the
// index that published them — what libxdp gets from __atomic_*
// ACQUIRE/RELEASE. The full barrier of the store also orders it before
// the following load of the flags word, which the need-wakeup check
// relies on (a store followed by a load is the one reordering x86 does).
type ring struct {
	producer *uint32
	consumer *uint32
	flags    *uint32 // nil when the kernel has no need_wakeup (before 5.4)

	addrs []uint64       // fill and completion rings
	descs []unix.XDPDesc // RX and TX rings

	mask uint32
	size uint32

	cachedProd uint32
	cachedCons uint32
}

// xdpDescSize is sizeof(struct xdp_desc).
const xdpDescSize = uint64(unsafe.Sizeof(unix.XDPDesc{}))

// newRing lays a ring over mem (an mmap'd region, or a plain byte slice in
// tests) at the offsets off. descRing selects xdp_desc entries (RX, TX)
// instead of u64 addresses (fill, completion). hasFlags is false on
// kernels without need_wakeup. producerRing is true for the rings we
// produce to (fill, TX): their cached consumer starts a full ring ahead.
func newRing(mem []byte, off unix.XDPRingOffset, size uint32, descRing, hasFlags, producerRing bool) *ring {
	base := unsafe.Pointer(unsafe.SliceData(mem))
	r := &ring{
		producer: (*uint32)(unsafe.Add(base, off.Producer)),
		consumer: (*uint32)(unsafe.Add(base, off.Consumer)),
		mask:     size - 1,
		size:     size,
	}
	if hasFlags {
		r.flags = (*uint32)(unsafe.Add(base, off.Flags))
	}
	if descRing {
		r.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Add(base, off.Desc)), size)
	} else {
		r.addrs = unsafe.Slice((*uint64)(unsafe.Add(base, off.Desc)), size)
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	if producerRing {
		r.cachedCons += size
	}
	return r
}

// ringBytes is the length to map for a ring of size entries at off.
func ringBytes(off unix.XDPRingOffset, size uint32, descRing bool) uint64 {
	entry := uint64(8)
	if descRing {
		entry = xdpDescSize
	}
	return off.Desc + uint64(size)*entry
}

// free returns how many entries a producer can write, reading the
// kernel's consumer index only when the cached one does not show n free.
func (r *ring) free(n uint32) uint32 {
	f := r.cachedCons - r.cachedProd
	if f >= n {
		return f
	}
	r.cachedCons = atomic.LoadUint32(r.consumer) + r.size
	return r.cachedCons - r.cachedProd
}

// reserve claims n entries for writing (the caller checked free) and
// returns the index of the first.
func (r *ring) reserve(n uint32) uint32 {
	idx := r.cachedProd
	r.cachedProd += n
	return idx
}

// produce moves as many entries of q as r has room for into its slots
// (r's addrs or descs) and publishes them with one store. It returns what
// is left of q, moved to its front, and how many entries went in.
func produce[T any](r *ring, slots []T, q []T) ([]T, uint32) {
	n := uint32(len(q))
	if n == 0 {
		return q, 0
	}
	if n = min(n, r.free(n)); n == 0 {
		return q, 0
	}
	idx := r.reserve(n)
	for i := range n {
		slots[(idx+i)&r.mask] = q[i]
	}
	r.submit()
	return q[:copy(q, q[n:])], n
}

// submit publishes every reserved entry to the kernel with one store.
func (r *ring) submit() {
	atomic.StoreUint32(r.producer, r.cachedProd)
}

// unpublished is how many entries were reserved but not yet submitted.
func (r *ring) unpublished() uint32 {
	return r.cachedProd - atomic.LoadUint32(r.producer)
}

// pending is how many published entries the kernel has not consumed yet
// (for the TX ring: descriptors still waiting to be sent).
func (r *ring) pending() uint32 {
	return atomic.LoadUint32(r.producer) - atomic.LoadUint32(r.consumer)
}

// available returns how many entries (at most n) a consumer can read,
// reading the kernel's producer index only when the cached view holds
// fewer than n. A producer index more than a ring ahead (only a
// corrupted ring) is clamped to the ring's size.
func (r *ring) available(n uint32) uint32 {
	a := r.cachedProd - r.cachedCons
	if a < n {
		r.cachedProd = atomic.LoadUint32(r.producer)
		a = r.cachedProd - r.cachedCons
		if a > r.size {
			a = r.size
			r.cachedProd = r.cachedCons + a
		}
	}
	return min(a, n)
}

// peek claims n readable entries (the caller checked available) and
// returns the index of the first.
func (r *ring) peek(n uint32) uint32 {
	idx := r.cachedCons
	r.cachedCons += n
	return idx
}

// release hands every peeked entry back to the kernel with one store.
func (r *ring) release() {
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

// needWakeup reports whether the kernel asked to be woken (the ring's
// XDP_RING_NEED_WAKEUP flag). Without need_wakeup support it is always
// true: every kick is then required.
func (r *ring) needWakeup() bool {
	if r.flags == nil {
		return true
	}
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}
