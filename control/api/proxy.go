package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// WithTrustedProxies names the reverse proxies (nginx, a load balancer)
// the API sits behind: for a request from one of them, the client is the
// last X-Forwarded-For address that is not a trusted proxy. Without
// them, X-Forwarded-For is ignored (anyone can write it), and the login
// limit is per peer: behind a proxy that is one key for every user, and
// ten wrong passwords from anyone would 429 everyone.
func WithTrustedProxies(p []netip.Prefix) Option {
	return func(s *Server) { s.proxies = append(s.proxies, p...) }
}

// ParseTrustedProxies reads --trusted-proxy values: addresses or CIDRs,
// comma-separated or repeated.
func ParseTrustedProxies(vals []string) ([]netip.Prefix, error) {
	out, err := parsePrefixes(vals)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustedProxy, err)
	}
	return out, nil
}

// parsePrefixes reads addresses or CIDRs, comma-separated or repeated.
func parsePrefixes(vals []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			if p, err := netip.ParsePrefix(f); err == nil {
				if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
					p = netip.PrefixFrom(a.Unmap(), p.Bits()-96) // as addresses are compared: unmapped
				}
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", f)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// clientAddr is the request's client: its peer, or, when the peer is a
// trusted proxy, the rightmost X-Forwarded-For address that is not one
// (the left part of the header is whatever the client sent). The text
// is for sourceKey and the log.
func (s *Server) clientAddr(hr *http.Request) string {
	if len(s.proxies) == 0 {
		return hr.RemoteAddr
	}
	host, _, err := net.SplitHostPort(hr.RemoteAddr)
	if err != nil {
		host = hr.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trustedProxy(peer) {
		return hr.RemoteAddr
	}
	hops := strings.Split(strings.Join(hr.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseHop(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a hop that is not an address: trust nothing left of it
		}
		if !s.trustedProxy(a) {
			return a.Unmap().String()
		}
	}
	return hr.RemoteAddr // only proxies, or no header: the proxy itself
}

// parseHop reads an X-Forwarded-For hop: an address, or an address and
// port as some load balancers write it (198.51.100.7:5678,
// [2001:db8::7]:443).
func parseHop(h string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a, nil
	}
	ap, err := netip.ParseAddrPort(h)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
