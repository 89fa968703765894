package api

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/xtrunk/xtrunk/control/store"
)

// WithEdgeAddresses adds addresses (or prefixes) of the edge that this
// host's interfaces do not show: other edges sharing the store, public
// addresses behind 1:1 NAT, a relay's NG address. Origination URIs may not
// point at them.
func WithEdgeAddresses(p []netip.Prefix) Option {
	return func(s *Server) { s.edgeAddrs = append(s.edgeAddrs, p...) }
}

// ParseEdgeAddresses reads --edge-address values: addresses or CIDRs,
// comma-separated or repeated.
func ParseEdgeAddresses(vals []string) ([]netip.Prefix, error) {
	out, err := parsePrefixes(vals)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEdgeAddress, err)
	}
	return out, nil
}

// interfaceAddrs lists this host's addresses, read for each check: they
// change (DHCP, failover) and origination URIs are written rarely.
func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// checkOriginationTarget refuses an origination URI whose host is one of
// the edge's own addresses: the edge would call itself (its SIP listener,
// the relay's NG port) on a tenant's behalf. The address classes no
// origination may reach (loopback, link-local…) are the store's rule;
// host names are resolved when a call is placed, not here.
func (s *Server) checkOriginationTarget(_ context.Context, sipURL string) error {
	u, err := store.ParseSipURL(sipURL, nil)
	if err != nil {
		return nil // the store reports the URI's own faults
	}
	a, err := netip.ParseAddr(u.Host)
	if err != nil {
		return nil
	}
	a = a.Unmap()
	for _, p := range s.edgeAddrs {
		if p.Contains(a) {
			return badRequest("SipUrl host %s is an address of this edge", a)
		}
	}
	own, err := s.hostAddrs()
	if err != nil {
		return fmt.Errorf("api: listing this host's addresses: %w", err)
	}
	for _, o := range own {
		if o == a {
			return badRequest("SipUrl host %s is an address of this edge", a)
		}
	}
	return nil
}
