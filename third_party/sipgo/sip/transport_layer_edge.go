package sip

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// This file holds transport layer options an edge exposed to the internet
// needs (xtrunk's fork; see FORK.md). Each is off by default, keeping
// sipgo's behaviour.

// ErrResponseConnectionGone is returned for a request whose response has
// nowhere to go: it came over a reliable transport and that connection is
// closed, and the layer was told not to open another
// (WithTransportLayerResponseToSource).
var ErrResponseConnectionGone = errors.New("sip: the connection the request came on is gone")

// WithTransportLayerResponseToSource makes responses go only back the way
// their request came, as RFC 3261 §18.2.2 and RFC 3581 §4 describe for a
// server that must not be turned into a DNS client or a TCP dialer by
// whoever writes a Via header:
//
//   - over TCP, TLS, WS and WSS, on the connection the request came on; if
//     it is closed already the request is dropped (an ACK, which gets no
//     response, is still passed on), onDrop is called and
//     ErrResponseConnectionGone is logged at debug level;
//   - over UDP, through the socket the request was read from, to its
//     source address: the source port with rport (RFC 3581), else the Via
//     port (RFC 3261 received).
//
// The Via host is never resolved nor dialed. onDrop may be nil.
func WithTransportLayerResponseToSource(onDrop func(req *Request)) TransportLayerOption {
	return func(l *TransportLayer) {
		l.responseToSource = true
		l.onResponseDrop = onDrop
	}
}

// ParseErrorHandler is told about data a transport could not parse as SIP
// (a UDP datagram, or the read that broke a stream's framing, after which
// the connection is closed). data is only valid during the call.
type ParseErrorHandler func(info TransportReadProps, data []byte, err error)

// WithTransportLayerParseErrorHandler hands parse failures on UDP, TCP and
// TLS to h instead of logging each one, whole, at error level: junk from
// the internet is the caller's to count, rate limit and log.
func WithTransportLayerParseErrorHandler(h ParseErrorHandler) TransportLayerOption {
	return func(l *TransportLayer) {
		l.parseErrorHandler = h
	}
}

// WithTransportLayerUDPMaxSources bounds the source addresses a UDP
// listener remembers (as connection pool entries pointing at itself, so
// that requests to a peer that wrote to us leave from the listener): past
// n, the least recently heard source is forgotten. n <= 0: no bound
// (sipgo's default), so that spoofed sources grow the pool forever.
func WithTransportLayerUDPMaxSources(n int) TransportLayerOption {
	return func(l *TransportLayer) {
		l.udpMaxSources = n
	}
}

// applyEdgeOptions hands the options above to the transports.
func (l *TransportLayer) applyEdgeOptions() {
	if l.udp != nil {
		l.udp.parseErrorHandler = l.parseErrorHandler
		l.udp.maxSources = l.udpMaxSources
	}
	for _, t := range []*TransportTCP{l.tcp, tlsTCP(l.tls)} {
		if t != nil {
			t.parseErrorHandler = l.parseErrorHandler
		}
	}
}

func tlsTCP(t *TransportTLS) *TransportTCP {
	if t == nil {
		return nil
	}
	return t.TransportTCP
}

// serverRequestConnectionToSource is serverRequestConnection under
// WithTransportLayerResponseToSource.
func (l *TransportLayer) serverRequestConnectionToSource(req *Request) (Connection, error) {
	network := NetworkToLower(req.Transport())
	transport := l.getTransport(network)
	if transport == nil {
		return nil, fmt.Errorf("transport %s is not supported", network)
	}
	source := req.MessageData.Source()
	if IsReliable(network) {
		if source != "" {
			if c := transport.GetConnection(source); c != nil {
				return c, nil
			}
		}
		if req.IsAck() {
			return goneConnection{}, nil
		}
		if l.onResponseDrop != nil {
			l.onResponseDrop(req)
		}
		return nil, ErrResponseConnectionGone
	}

	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return nil, fmt.Errorf("response to %q: %w", source, err)
	}
	raddr := Addr{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port()), Hostname: ap.Addr().String(), Zone: ap.Addr().Zone()}
	if via := req.Via(); via != nil {
		// RFC 3581 §4: rport asks for the source port; without it the
		// response goes to the source address at the Via port (RFC 3261
		// §18.2.2, "received").
		if rport, ok := via.Params.Get("rport"); !ok || rport != "" {
			raddr.Port = via.Port
			if raddr.Port == 0 {
				raddr.Port = DefaultPort(network)
			}
		}
	}
	req.raddr = raddr
	if c := req.recvConn; c != nil {
		c.Ref(1)
		return c, nil
	}
	if c := transport.GetConnection(source); c != nil {
		return c, nil
	}
	if l.onResponseDrop != nil {
		l.onResponseDrop(req)
	}
	return nil, ErrResponseConnectionGone
}

// goneConnection stands for the closed connection an ACK came on: it takes
// no response, and anything written to it is dropped.
type goneConnection struct{}

func (goneConnection) LocalAddr() net.Addr    { return &net.TCPAddr{} }
func (goneConnection) WriteMsg(Message) error { return ErrResponseConnectionGone }
func (goneConnection) Ref(int) int            { return 0 }
func (goneConnection) TryClose() (int, error) { return 0, nil }
func (goneConnection) Close() error           { return nil }

// CloseConnectionsFrom closes every TCP, TLS, WS and WSS connection whose
// remote address is ip (IPv4-mapped or not), accepted or dialed, and
// returns how many it closed: for a caller that has just banned ip.
func (l *TransportLayer) CloseConnectionsFrom(ip netip.Addr) int {
	ip = ip.Unmap()
	var conns []Connection
	for _, t := range []*ConnectionPool{l.Pool("tcp"), l.Pool("tls"), l.Pool("ws"), l.Pool("wss")} {
		if t != nil {
			conns = append(conns, t.connectionsFrom(ip)...)
		}
	}
	for _, c := range conns {
		if tc, ok := c.(*TCPConnection); ok {
			// Close the socket only: its reader sees the error and
			// releases the connection the usual way.
			_ = tc.Conn.Close()
			continue
		}
		_ = c.Close()
	}
	return len(conns)
}

// connectionsFrom lists the pool's distinct connections whose remote
// address is ip.
func (p *ConnectionPool) connectionsFrom(ip netip.Addr) []Connection {
	p.mu.RLock()
	defer p.mu.RUnlock()
	seen := map[Connection]bool{}
	var out []Connection
	for _, c := range p.m {
		if seen[c] {
			continue
		}
		seen[c] = true
		rc, ok := c.(interface{ RemoteAddr() net.Addr })
		if !ok {
			continue
		}
		ap, err := netip.ParseAddrPort(rc.RemoteAddr().String())
		if err == nil && ap.Addr().Unmap() == ip {
			out = append(out, c)
		}
	}
	return out
}

// sourceSet is the source addresses a UDP listener has put in its pool,
// least recently heard first, bounded when max > 0.
type sourceSet struct {
	max   int
	order *list.List // of string, most recent at the front
	at    map[string]*list.Element
}

func newSourceSet(max int) *sourceSet {
	return &sourceSet{max: max, order: list.New(), at: map[string]*list.Element{}}
}

// add records addr as heard now; it returns the address forgotten to make
// room ("" if none).
func (s *sourceSet) add(addr string) (evicted string) {
	if e, ok := s.at[addr]; ok {
		s.order.MoveToFront(e)
		return ""
	}
	s.at[addr] = s.order.PushFront(addr)
	if s.max > 0 && s.order.Len() > s.max {
		e := s.order.Back()
		evicted = s.order.Remove(e).(string)
		delete(s.at, evicted)
	}
	return evicted
}

func (s *sourceSet) all() []string {
	out := make([]string, 0, len(s.at))
	for a := range s.at {
		out = append(out, a)
	}
	return out
}

func (s *sourceSet) len() int { return len(s.at) }
