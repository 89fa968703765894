package relay

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// Local addresses as an attack surface. The relay serves parties on its
// own host (localparty.go), so an address of its namespace — loopback,
// an interface address, any other address of a device — is a valid media
// destination. Two ways to abuse that, and what stops them:
//
//   - Forged sources from the wire. XDP and AF_XDP see a packet before the
//     kernel's martian and rp_filter checks, so a remote sender can claim
//     127.0.0.1 or one of the relay's addresses. The host's own packets to
//     the relay travel over lo; on any other device such a source is
//     forged. The XDP program drops them while a leg learns (loopback and
//     the relay's addresses) and at a leg latched to a local party
//     (bpf.Session.LocalSource: every namespace address), counted as
//     drop_spoofed; the AF_XDP path drops what still reaches it from any
//     namespace address (xtrunk_relay_userspace_drops_total{reason=
//     "spoofed"}). A leg never latches to a local source its SDP did not
//     name, whichever path the packet took: a forged local source would
//     otherwise turn the call's media toward the host.
//   - An SDP naming the host. A party's SDP may name a local address (a
//     co-located PBX), but never the relay's own media port range or its
//     NG port there: media sent to those loops through the relay or feeds
//     its control port. Such an offer or answer is refused (ErrSelfTarget;
//     signalling answers 488). Which other local services a tenant may
//     not target is signalling's decision: it knows which peer is remote.

// hostAddrsTTL bounds how stale the namespace's address list may be (an
// address added to the host is seen within it).
const hostAddrsTTL = int64(time.Second)

// hostAddrs caches the relay namespace's addresses: at most one netlink
// dump per hostAddrsTTL. Its netlink handle is opened in the relay's
// namespace (New), so the dump lists that namespace's addresses whatever
// thread asks.
type hostAddrs struct {
	h     *netlink.Handle // nil: loopback and interface addresses only
	mu    sync.Mutex
	addrs map[netip.Addr]bool
	at    int64 // monotonic ns of the last dump
}

func newHostAddrs() (*hostAddrs, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return &hostAddrs{}, fmt.Errorf("netlink: %w", err)
	}
	return &hostAddrs{h: h}, nil
}

func (ha *hostAddrs) close() {
	if ha != nil && ha.h != nil {
		ha.h.Close()
	}
}

// has says whether a (unmapped, no zone) is assigned to a device of the
// namespace; err reports a failed dump (the previous list is kept).
func (ha *hostAddrs) has(a netip.Addr) (bool, error) {
	if ha == nil || ha.h == nil {
		return false, nil
	}
	ha.mu.Lock()
	defer ha.mu.Unlock()
	var err error
	if now := monoNow(); ha.addrs == nil || now-ha.at > hostAddrsTTL {
		ha.at = now
		var list []netlink.Addr
		if list, err = ha.h.AddrList(nil, netlink.FAMILY_ALL); err == nil {
			ha.addrs = make(map[netip.Addr]bool, len(list))
			for _, ad := range list {
				if ip, ok := netip.AddrFromSlice(ad.IP); ok {
					ha.addrs[ip.Unmap()] = true
				}
			}
		}
	}
	return ha.addrs[a], err
}

// isLocal says whether a is an address of the relay's network namespace:
// loopback, a relay interface's address, or any other address assigned
// to one of its devices.
func (r *Relay) isLocal(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	if a.IsLoopback() {
		return true
	}
	for _, ifc := range r.ifaces {
		if ifc.Addr.Unmap().WithZone("") == a {
			return true
		}
	}
	ok, err := r.host.has(a)
	if err != nil {
		r.log.Warn().Err(err).Msg("listing the namespace's addresses failed; parties on this host are recognised by loopback and interface addresses only")
	}
	return ok
}

// spoofedLatch says whether e may not latch to src: a local source its SDP
// did not name (see above). Caller holds no lock; e's SDP fields are read
// through the route's learning rules (lp).
func (r *Relay) spoofedLatch(lp *learnParams, src netip.AddrPort) bool {
	if lp == nil || !r.isLocal(src.Addr()) {
		return false
	}
	return !(lp.sdpIP.IsValid() && r.isLocal(lp.sdpIP)) && !(lp.want.IsValid() && r.isLocal(lp.want.Addr()))
}

// spoofedFrame says whether a frame that arrived on device ifindex (an
// AF_XDP socket's) claims a source of the relay's host: forged, unless
// the device is lo.
func (x *xdpPath) spoofedFrame(ifindex int, src netip.AddrPort) bool {
	return ifindex != loIfindex && x.r.isLocal(src.Addr())
}

// loIfindex is lo's index in every namespace (the kernel's
// LOOPBACK_IFINDEX).
const loIfindex = 1

// ngPort is the port of the relay's NG listener (ListenNG), 0 if none.
func (r *Relay) ngPort() uint16 {
	_, p, err := net.SplitHostPort(r.cfg.ListenNG)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}

// selfTarget says whether a, a party's media address, is one of the
// relay's own ports on its own host: the media port range or the NG port.
func (r *Relay) selfTarget(a netip.AddrPort) bool {
	if !a.IsValid() || a.Port() == 0 || !r.isLocal(a.Addr()) {
		return false
	}
	p := int(a.Port())
	return (p >= r.cfg.PortMin && p <= r.cfg.PortMax) || (a.Port() == r.ngPort())
}

// checkSelfTarget refuses an m= line whose RTP or RTCP address is one of
// the relay's own ports (selfTarget). A rejected stream (port 0) names
// nothing. With sip-source-address the relay sends where the signalling
// came from, so that address is checked instead.
func (r *Relay) checkSelfTarget(m *sdp.Media, p *ng.Params) error {
	if m.Port == 0 {
		return nil
	}
	conn, ra := m.Conn, m.RTCPAddr
	if p.Flags.SIPSourceAddress && p.ReceivedFrom.IsValid() {
		conn, ra = p.ReceivedFrom, p.ReceivedFrom
	}
	rtp := netip.AddrPortFrom(conn.Unmap(), uint16(m.Port))
	if !ra.IsValid() {
		ra = conn
	}
	rtcp := netip.AddrPortFrom(ra.Unmap(), uint16(m.RTCPPort))
	for _, a := range []netip.AddrPort{rtp, rtcp} {
		if r.selfTarget(a) {
			r.log.Warn().Stringer("party", a).Msg("refused an SDP naming the relay's own media or NG port on its host (a media loop or a feed into the control port)")
			return fmt.Errorf("%w: %v", ErrSelfTarget, a)
		}
	}
	return nil
}
