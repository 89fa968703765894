package relay

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The AF_XDP path writes whole frames, so it needs what the kernel's
// sockets find for themselves: the egress device, its MAC and MTU, and
// the next hop's MAC. It asks the kernel over netlink — RTM_GETROUTE for
// (source, destination), the FIB lookup the fast path makes with
// bpf_fib_lookup, then the neighbour table of the route's device for the
// gateway or the destination — and caches the answer per (source,
// destination) for nhTTL, as the fast path caches its own (NH_TTL_NS in
// relay.bpf.c): a route or neighbour change reaches both within it.
//
// A destination the relay cannot send to this way — no neighbour entry
// yet, a local address, a device without an AF_XDP socket, a frame over
// the MTU — is sent through the kernel instead (rawSender): the kernel
// resolves the neighbour (the next lookup then finds it) or fragments,
// and the packet is never dropped for want of a MAC. Such sends are
// counted (xtrunk_relay_xsk_tx_fallback_total{reason}).

// nhTTL is how long a resolved next hop is trusted, and nhMissTTL how long
// an unresolved one is sent through the kernel before asking again.
const (
	nhTTL     = int64(1e9)
	nhMissTTL = int64(100e6)
)

// Fallback reasons (xtrunk_relay_xsk_tx_fallback_total{reason}).
const (
	fallbackNoNeigh = "no_neigh"  // the next hop's MAC is not known (yet)
	fallbackNoRoute = "no_route"  // the route lookup failed or is not unicast
	fallbackNoXSK   = "no_socket" // the egress device has no AF_XDP socket (loopback, another device)
	fallbackMTU     = "mtu"       // larger than the egress device's MTU
	fallbackTxFull  = "tx_full"   // the AF_XDP TX ring had no free frame
)

// nextHop is where a frame to a destination goes.
type nextHop struct {
	ok             bool   // false: send through the kernel, for reason why
	why            string // fallback reason when !ok
	ifindex        int
	srcMAC, dstMAC [6]byte
	mtu            int // L3 bytes
	expires        int64
}

type nhKey struct{ src, dst netip.Addr }

// resolver looks next hops up and caches them. Its netlink socket lives
// in the network namespace the relay was made in.
type resolver struct {
	h *netlink.Handle

	mu    sync.RWMutex
	cache map[nhKey]nextHop
}

func newResolver() (*resolver, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &resolver{h: h, cache: map[nhKey]nextHop{}}, nil
}

func (r *resolver) close() { r.h.Close() }

// lookup returns the next hop from src to dst at monotonic time now.
func (r *resolver) lookup(src, dst netip.Addr, now int64) nextHop {
	k := nhKey{src, dst}
	r.mu.RLock()
	nh, ok := r.cache[k]
	r.mu.RUnlock()
	if ok && nh.expires > now {
		return nh
	}
	nh = r.resolve(src, dst)
	if nh.ok {
		nh.expires = now + nhTTL
	} else {
		nh.expires = now + nhMissTTL
	}
	r.mu.Lock()
	if len(r.cache) > 1<<16 {
		clear(r.cache) // a relay talks to far fewer peers; this bounds a spray
	}
	r.cache[k] = nh
	r.mu.Unlock()
	return nh
}

func (r *resolver) resolve(src, dst netip.Addr) nextHop {
	routes, err := r.h.RouteGetWithOptions(net.IP(dst.AsSlice()), &netlink.RouteGetOptions{SrcAddr: net.IP(src.AsSlice())})
	if err != nil || len(routes) == 0 {
		return nextHop{why: fallbackNoRoute}
	}
	rt := routes[0]
	if rt.Type != unix.RTN_UNICAST && rt.Type != 0 {
		return nextHop{why: fallbackNoRoute} // local, broadcast, blackhole...
	}
	link, err := r.h.LinkByIndex(rt.LinkIndex)
	if err != nil {
		return nextHop{why: fallbackNoRoute}
	}
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 || attrs.Flags&net.FlagLoopback != 0 {
		return nextHop{why: fallbackNoXSK}
	}
	via := dst
	if gw, ok := netip.AddrFromSlice(rt.Gw); ok && gw.IsValid() && !gw.IsUnspecified() {
		via = gw.Unmap()
	}
	family := netlink.FAMILY_V4
	if via.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := r.h.NeighList(rt.LinkIndex, family)
	if err != nil {
		return nextHop{why: fallbackNoNeigh}
	}
	const usable = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT | unix.NUD_NOARP
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a.Unmap() != via || n.State&usable == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		nh := nextHop{ok: true, ifindex: rt.LinkIndex, mtu: attrs.MTU}
		copy(nh.srcMAC[:], attrs.HardwareAddr)
		copy(nh.dstMAC[:], n.HardwareAddr)
		return nh
	}
	return nextHop{why: fallbackNoNeigh, ifindex: rt.LinkIndex, mtu: attrs.MTU}
}

// rawSender sends whole IP packets through the kernel (raw IPPROTO_RAW
// sockets: the header is ours, the kernel routes, resolves the neighbour
// and fragments). One per family for the whole relay, not per call.
type rawSender struct{ fd4, fd6 int }

func newRawSender() (*rawSender, error) {
	fd4, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, os.NewSyscallError("socket raw4", err)
	}
	fd6, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		unix.Close(fd4)
		return nil, os.NewSyscallError("socket raw6", err)
	}
	return &rawSender{fd4: fd4, fd6: fd6}, nil
}

// send sends ip, an IPv4 or IPv6 packet with its UDP datagram, to dst.
func (s *rawSender) send(ip []byte, dst netip.Addr) error {
	var err error
	if dst.Is4() {
		err = unix.Sendto(s.fd4, ip, unix.MSG_DONTWAIT, &unix.SockaddrInet4{Addr: dst.As4()})
	} else {
		err = unix.Sendto(s.fd6, ip, unix.MSG_DONTWAIT, &unix.SockaddrInet6{Addr: dst.As16()})
	}
	if err != nil {
		return os.NewSyscallError("sendto raw", err)
	}
	return nil
}

func (s *rawSender) close() {
	unix.Close(s.fd4)
	unix.Close(s.fd6)
}
