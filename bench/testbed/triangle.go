package testbed

import (
	"errors"
	"fmt"
	"net/netip"
)

// Triangle is the three-host lab most tests use:
//
//	caller 198.18.1.2/24 <-> 198.18.1.1/24 relay 198.18.2.1/24 <-> 198.18.2.2/24 callee
//	       2001:2:0:1::2/64    2001:2:0:1::1/64  2001:2:0:2::1/64    2001:2:0:2::2/64
//
// CallerLink.A is the caller's end and CallerLink.B the relay's; CalleeLink.A
// is the relay's end and CalleeLink.B the callee's. The caller routes
// 198.18.2.0/24 (and 2001:2:0:2::/64) via the relay, the callee routes
// 198.18.1.0/24 (and 2001:2:0:1::/64) via the relay, so each can reach both
// relay addresses; the relay does not forward unless a test sets
// net.ipv4.ip_forward (or attaches an XDP program). The caller's and callee's
// ends carry an XDP_PASS program, so frames the relay redirects to them
// arrive. TX checksum offload is off on all four ends (see
// WithTxChecksumOffload). Neighbour entries are learnt unless
// WithStaticNeighbors is given.
type Triangle struct {
	Lab                    *Lab
	Caller, Relay, Callee  *NS
	CallerLink, CalleeLink *Link

	CallerIP, RelayCallerIP, RelayCalleeIP, CalleeIP     netip.Addr
	CallerIP6, RelayCallerIP6, RelayCalleeIP6, CalleeIP6 netip.Addr
}

// Triangle addresses.
var (
	TriangleCallerIP       = netip.MustParseAddr("198.18.1.2")
	TriangleRelayCallerIP  = netip.MustParseAddr("198.18.1.1")
	TriangleRelayCalleeIP  = netip.MustParseAddr("198.18.2.1")
	TriangleCalleeIP       = netip.MustParseAddr("198.18.2.2")
	TriangleCallerIP6      = netip.MustParseAddr("2001:2:0:1::2")
	TriangleRelayCallerIP6 = netip.MustParseAddr("2001:2:0:1::1")
	TriangleRelayCalleeIP6 = netip.MustParseAddr("2001:2:0:2::1")
	TriangleCalleeIP6      = netip.MustParseAddr("2001:2:0:2::2")
)

// NewTriangleLab builds a Triangle in a new lab; the caller closes tr.Lab
// (tests use labtest.NewTriangle, which closes it when the test ends). On
// error the lab is already closed and tr is nil.
func NewTriangleLab(opts ...Option) (tr *Triangle, err error) {
	l, err := New(opts...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			tr = nil
		}
	}()
	return l.buildTriangle()
}

func (l *Lab) buildTriangle() (*Triangle, error) {
	c := l.cfg
	tr := &Triangle{
		Lab:            l,
		CallerIP:       TriangleCallerIP,
		RelayCallerIP:  TriangleRelayCallerIP,
		RelayCalleeIP:  TriangleRelayCalleeIP,
		CalleeIP:       TriangleCalleeIP,
		CallerIP6:      TriangleCallerIP6,
		RelayCallerIP6: TriangleRelayCallerIP6,
		RelayCalleeIP6: TriangleRelayCalleeIP6,
		CalleeIP6:      TriangleCalleeIP6,
	}
	if c.noIPv6 {
		tr.CallerIP6, tr.RelayCallerIP6, tr.RelayCalleeIP6, tr.CalleeIP6 = netip.Addr{}, netip.Addr{}, netip.Addr{}, netip.Addr{}
	}
	var err error
	for _, ns := range []struct {
		p    **NS
		name string
	}{{&tr.Caller, "caller"}, {&tr.Relay, "relay"}, {&tr.Callee, "callee"}} {
		if *ns.p, err = l.AddNS(ns.name); err != nil {
			return nil, err
		}
	}
	addrs := func(v4, v6 netip.Addr) []netip.Prefix {
		p := []netip.Prefix{netip.PrefixFrom(v4, 24)}
		if v6.IsValid() {
			p = append(p, netip.PrefixFrom(v6, 64))
		}
		return p
	}
	tr.CallerLink, err = l.Link(tr.Caller, tr.Relay, LinkOptions{
		AAddrs:        addrs(tr.CallerIP, tr.CallerIP6),
		BAddrs:        addrs(tr.RelayCallerIP, tr.RelayCallerIP6),
		MTU:           c.mtu,
		XDPPassA:      true,
		GRO:           c.gro,
		TxChecksumOff: !c.txChecksum,
	})
	if err != nil {
		return nil, err
	}
	tr.CalleeLink, err = l.Link(tr.Relay, tr.Callee, LinkOptions{
		AAddrs:        addrs(tr.RelayCalleeIP, tr.RelayCalleeIP6),
		BAddrs:        addrs(tr.CalleeIP, tr.CalleeIP6),
		MTU:           c.mtu,
		XDPPassB:      true,
		GRO:           c.gro,
		TxChecksumOff: !c.txChecksum,
	})
	if err != nil {
		return nil, err
	}

	type route struct {
		ns  *NS
		dst netip.Prefix
		via netip.Addr
	}
	routes := []route{
		{tr.Caller, netip.MustParsePrefix("198.18.2.0/24"), tr.RelayCallerIP},
		{tr.Callee, netip.MustParsePrefix("198.18.1.0/24"), tr.RelayCalleeIP},
	}
	if !c.noIPv6 {
		routes = append(routes,
			route{tr.Caller, netip.MustParsePrefix("2001:2:0:2::/64"), tr.RelayCallerIP6},
			route{tr.Callee, netip.MustParsePrefix("2001:2:0:1::/64"), tr.RelayCalleeIP6})
	}
	for _, r := range routes {
		if err := r.ns.AddRoute(r.dst, r.via); err != nil {
			return nil, err
		}
	}
	if c.staticNeighbors {
		if err := tr.addStaticNeighbors(); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

// addStaticNeighbors makes each end of both links know the other's addresses.
func (tr *Triangle) addStaticNeighbors() error {
	for _, k := range []*Link{tr.CallerLink, tr.CalleeLink} {
		for _, pair := range [][2]*End{{k.A, k.B}, {k.B, k.A}} {
			local, peer := pair[0], pair[1]
			for _, p := range peer.Addrs {
				if err := local.NS.AddNeighbor(local.Name, p.Addr(), peer.MAC); err != nil {
					return fmt.Errorf("static neighbours: %w", err)
				}
			}
		}
	}
	return nil
}
