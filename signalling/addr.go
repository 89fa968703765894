package signalling

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Addresses. On a wildcard listener (0.0.0.0, ::) xtrunk has no one
// address to name itself by: each peer must get the address of the
// interface facing it (Kamailio's per-interface sockets, "mhomed"), or a
// PBX sends its ACK and BYE somewhere it cannot reach. So each leg of a
// call gets its own Contact, Via sent-by and From host, from a route
// lookup toward the peer; --advertise, or a specific listen address,
// still names every leg the same. UDP requests leave from the listening
// socket, so that the peer sees the port it reached and answers it.

const (
	// routeCacheSize bounds the route lookups kept (one per peer
	// address): past it the stale ones go, then all.
	routeCacheSize = 4096
	// routeCacheTTL is how long a lookup is trusted: routes change
	// (failover, a new uplink) and a call set up after that must follow.
	routeCacheTTL = 30 * time.Second
	// maxLegClients bounds the sipgo clients kept per (transport, host):
	// hosts are this machine's own addresses, so a few.
	maxLegClients = 64
	// resolveTimeout bounds the DNS lookup of a target named by FQDN.
	resolveTimeout = 2 * time.Second
)

// routeTable answers which local address faces a peer, caching the
// kernel's answer for routeCacheTTL.
type routeTable struct {
	lookup func(peer netip.Addr) (netip.Addr, error)
	now    func() time.Time

	mu      sync.Mutex
	entries map[netip.Addr]routeEntry
}

type routeEntry struct {
	src netip.Addr
	at  time.Time
}

func newRouteTable() *routeTable {
	return &routeTable{lookup: routeSource, now: time.Now, entries: map[netip.Addr]routeEntry{}}
}

// source is the local address facing peer.
func (r *routeTable) source(peer netip.Addr) (netip.Addr, error) {
	peer = peer.Unmap()
	now := r.now()
	r.mu.Lock()
	e, ok := r.entries[peer]
	r.mu.Unlock()
	if ok && now.Sub(e.at) < routeCacheTTL {
		return e.src, nil
	}
	src, err := r.lookup(peer)
	if err != nil {
		return netip.Addr{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.entries) >= routeCacheSize {
		for k, e := range r.entries {
			if now.Sub(e.at) >= routeCacheTTL {
				delete(r.entries, k)
			}
		}
		if len(r.entries) >= routeCacheSize {
			clear(r.entries) // all fresh: a flood of peers; start over
		}
	}
	r.entries[peer] = routeEntry{src: src, at: now}
	return src, nil
}

// routeSource asks the kernel which source address it would use toward
// peer: connecting a UDP socket picks the route and the address without
// sending anything. A loopback source toward a peer that is not loopback
// is refused: no peer could reach it.
func routeSource(peer netip.Addr) (netip.Addr, error) {
	peer = peer.Unmap()
	if !peer.IsValid() || peer.IsUnspecified() || peer.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("%w: %v", errNoRoute, peer)
	}
	network := "udp4"
	if peer.Is6() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v: %w", errNoRoute, peer, err)
	}
	defer c.Close()
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	if !src.IsValid() || src.IsUnspecified() || (src.IsLoopback() && !peer.IsLoopback()) {
		return netip.Addr{}, fmt.Errorf("%w: %v: the kernel chose %v", errNoRoute, peer, src)
	}
	return src.WithZone(""), nil
}

// legAddrs keeps the sipgo clients per (transport, local host): each
// names xtrunk by that host in Via and, for UDP, sends from the
// listening socket.
type legAddrs struct {
	routes *routeTable

	mu      sync.Mutex
	clients map[string]*sipgo.Client
}

func newLegAddrs() *legAddrs {
	return &legAddrs{routes: newRouteTable(), clients: map[string]*sipgo.Client{}}
}

// listenerFor is the listener a leg over transport uses: its own, else
// the first one (a transport dialed without a listener).
func (s *Server) listenerFor(transport string) netip.AddrPort {
	if a := s.lis.addr(transport); a.IsValid() {
		return a
	}
	for _, tr := range s.lis.transports() {
		return s.lis.addr(tr)
	}
	return netip.AddrPort{}
}

// selfHost is the host xtrunk names itself by toward peer over transport:
// --advertise; else the listen address when it is a specific one; else
// the address of the interface the route to peer leaves from. With no
// route (or no peer) it falls back to the first address of an interface
// that is up, never to 0.0.0.0 and never to loopback toward a peer that
// is not loopback.
func (s *Server) selfHost(transport string, peer netip.Addr) string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	if a := s.listenerFor(transport).Addr().Unmap(); a.IsValid() && !a.IsUnspecified() {
		return a.String()
	}
	if peer.IsValid() {
		src, err := s.addresses.routes.source(peer)
		if err == nil {
			return src.String()
		}
		s.log.Warn().Err(err).Msg("no local address faces the peer: using the first interface address")
	}
	return fallbackHost(peer)
}

// fallbackHost is the first address of an interface that is up, of
// peer's family when there is one (loopback only for a loopback peer).
func fallbackHost(peer netip.Addr) string {
	addrs, _ := net.InterfaceAddrs()
	var other netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			continue
		}
		if !peer.IsValid() || ip.Is4() == peer.Unmap().Is4() {
			return ip.String()
		}
		if !other.IsValid() {
			other = ip
		}
	}
	if other.IsValid() {
		return other.String()
	}
	if peer.Unmap().Is6() {
		return "::1"
	}
	return "127.0.0.1"
}

// contactAt is xtrunk's Contact as host over transport: the listener's
// port, and ;transport= for anything but UDP.
func (s *Server) contactAt(transport, host string) sip.ContactHeader {
	transport = strings.ToUpper(transport)
	u := sip.Uri{Scheme: "sip", Host: host, Port: int(s.lis.addr(transport).Port())}
	if transport != "UDP" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", strings.ToLower(transport))
	}
	return sip.ContactHeader{Address: u}
}

// legUA is the dialog UA for a leg toward peer over transport: its
// Contact and its client's Via carry selfHost(transport, peer). A
// transport dialed without a listener of its own gets the first
// listener's Contact, so that the peer's in-dialog requests have a
// listener to go to.
func (s *Server) legUA(transport string, peer netip.Addr) *sipgo.DialogUA {
	transport = strings.ToUpper(transport)
	host := s.selfHost(transport, peer)
	contact := transport
	if !s.lis.addr(transport).IsValid() {
		if trs := s.lis.transports(); len(trs) > 0 {
			contact = trs[0]
		}
	}
	return &sipgo.DialogUA{Client: s.clientAt(transport, host), ContactHDR: s.contactAt(contact, host)}
}

// clientAt is the sipgo client whose requests over transport carry host
// in Via, with the listener's port; over UDP they leave from the
// listening socket itself (sipgo.WithClientConnectionAddr), not from an
// ephemeral port.
func (s *Server) clientAt(transport, host string) *sipgo.Client {
	key := transport + " " + host
	s.addresses.mu.Lock()
	defer s.addresses.mu.Unlock()
	if c := s.addresses.clients[key]; c != nil {
		return c
	}
	opts := []sipgo.ClientOption{sipgo.WithClientHostname(host)}
	if port := s.lis.addr(transport).Port(); port != 0 {
		opts = append(opts, sipgo.WithClientPort(int(port)))
	}
	if transport == "UDP" && s.lis.udp != nil {
		opts = append(opts, sipgo.WithClientConnectionAddr(s.lis.udp.LocalAddr().String()))
	}
	c, err := sipgo.NewClient(s.ua, opts...)
	if err != nil {
		// Only a listener address sipgo cannot parse gets here: send from
		// an ephemeral port rather than not at all.
		s.log.Error().Err(err).Str("transport", transport).Msg("SIP client on the listener")
		c, _ = sipgo.NewClient(s.ua, sipgo.WithClientHostname(host))
	}
	if len(s.addresses.clients) < maxLegClients {
		s.addresses.clients[key] = c
	}
	return c
}

// peerOfSource is the address of a request's sender.
func peerOfSource(req *sip.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// peerOfDest is the address a B-leg toward d goes to: d's host, looked up
// in DNS (IPv4 first, as sipgo does) when it is a name. Only needed on a
// wildcard listener without --advertise.
func (s *Server) peerOfDest(ctx context.Context, d dest) netip.Addr {
	if a, err := netip.ParseAddr(strings.Trim(d.host, "[]")); err == nil {
		return a.Unmap()
	}
	if s.cfg.Advertise != "" {
		return netip.Addr{}
	}
	if a := s.listenerFor(d.transport).Addr(); a.IsValid() && !a.IsUnspecified() {
		return netip.Addr{}
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", d.host)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}
	}
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			return ip.Unmap()
		}
	}
	return ips[0]
}
