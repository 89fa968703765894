package signalling

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// isOwnAddr runs on every SDP (sdpSelfAddr: the sender and each c= and
// a=rtcp address, three or four times a call) and asked the kernel for
// the host's addresses each time: a netlink dump of every interface's
// addresses, 9–13 % of xtrunk sip's CPU at 300 CPS (BENCHMARKS.md, "sip
// CPU per call, third round"). The host's addresses are read at most
// once per hostAddrsFresh instead; an address added to the host is known
// as the edge's own at most that much later (the relay refuses its own
// ports on a local address in any case: relay/spoof.go).

// hostAddrsFresh is how old the cached host addresses may be.
const hostAddrsFresh = time.Second

// hostAddrCache is the host's interface addresses as last read; the
// zero value is ready (the first use reads them).
type hostAddrCache struct {
	mu  sync.Mutex // one reader of the kernel at a time
	cur atomic.Pointer[hostAddrSet]
	// list reads the addresses: net.InterfaceAddrs unless a test sets it.
	list func() ([]net.Addr, error)
	now  func() time.Time // time.Now unless a test sets it
}

// hostAddrSet is one reading of the host's addresses.
type hostAddrSet struct {
	at    time.Time
	addrs []netip.Addr // unmapped
}

// has reports whether a is one of the host's interface addresses, read
// at most hostAddrsFresh ago. Only the first caller waits for the
// kernel; while one caller refreshes a stale set, the others use it.
func (h *hostAddrCache) has(a netip.Addr) bool {
	set := h.cur.Load()
	if set == nil || h.clock().Sub(set.at) >= hostAddrsFresh {
		if set == nil {
			h.mu.Lock()
			set = h.refreshLocked()
			h.mu.Unlock()
		} else if h.mu.TryLock() {
			set = h.refreshLocked()
			h.mu.Unlock()
		}
	}
	for _, x := range set.addrs {
		if x == a {
			return true
		}
	}
	return false
}

// refreshLocked reads the addresses unless another caller just did;
// h.mu is held. A failed reading keeps the previous set (with a fresh
// time, so a failing kernel is not asked on every call).
func (h *hostAddrCache) refreshLocked() *hostAddrSet {
	now := h.clock()
	if set := h.cur.Load(); set != nil && now.Sub(set.at) < hostAddrsFresh {
		return set
	}
	list := h.list
	if list == nil {
		list = net.InterfaceAddrs
	}
	next := &hostAddrSet{at: now}
	ifaddrs, err := list()
	if err != nil {
		if prev := h.cur.Load(); prev != nil {
			next.addrs = prev.addrs
		}
	}
	for _, ia := range ifaddrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil {
			next.addrs = append(next.addrs, p.Addr().Unmap())
		}
	}
	h.cur.Store(next)
	return next
}

func (h *hostAddrCache) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}
