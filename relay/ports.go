package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
)

// portAlloc hands out RTP/RTCP port pairs (even, even+1) by binding both
// sockets: a bound socket is the reservation, so ports another program
// holds are skipped naturally.
type portAlloc struct {
	min, max int // even min, max inclusive

	bind func(addr netip.Addr, port int) (*udpSock, *udpSock, error)

	mu   sync.Mutex
	next int
	used map[netip.AddrPort]bool // RTP ports we hold
}

func newPortAlloc(min, max int) *portAlloc {
	if min%2 == 1 {
		min++
	}
	p := &portAlloc{min: min, max: max, used: map[netip.AddrPort]bool{}, bind: bindPair}
	pairs := (max - min + 1) / 2
	p.next = min + 2*rand.IntN(pairs)
	return p
}

func (p *portAlloc) pairs() int { return (p.max - p.min + 1) / 2 }

// alloc binds an RTP/RTCP pair on addr.
func (p *portAlloc) alloc(addr netip.Addr) (rtp, rtcp *udpSock, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.pairs()
	for i := 0; i < n; i++ {
		port := p.next
		p.next += 2
		if p.next+1 > p.max {
			p.next = p.min
		}
		k := netip.AddrPortFrom(addr, uint16(port))
		if p.used[k] {
			continue
		}
		rtp, rtcp, err = p.bind(addr, port)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return nil, nil, err
		}
		p.used[k] = true
		return rtp, rtcp, nil
	}
	return nil, nil, fmt.Errorf("%w: %d-%d on %s", ErrNoPorts, p.min, p.max, addr)
}

// claim binds a specific pair (re-adopting a call after restart).
func (p *portAlloc) claim(addr netip.Addr, port int) (rtp, rtcp *udpSock, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := netip.AddrPortFrom(addr, uint16(port))
	if p.used[k] {
		return nil, nil, fmt.Errorf("port %v already held", k)
	}
	rtp, rtcp, err = p.bind(addr, port)
	if err != nil {
		return nil, nil, err
	}
	p.used[k] = true
	return rtp, rtcp, nil
}

func (p *portAlloc) release(k netip.AddrPort) {
	p.mu.Lock()
	delete(p.used, k)
	p.mu.Unlock()
}

func (p *portAlloc) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

func bindPair(addr netip.Addr, port int) (*udpSock, *udpSock, error) {
	rtp, err := listenUDP(netip.AddrPortFrom(addr, uint16(port)))
	if err != nil {
		return nil, nil, err
	}
	rtcp, err := listenUDP(netip.AddrPortFrom(addr, uint16(port+1)))
	if err != nil {
		rtp.Close()
		return nil, nil, err
	}
	return rtp, rtcp, nil
}
