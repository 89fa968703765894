package signalling

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// TCP and TLS connections are a resource a peer spends on us at no cost to
// itself: each one holds a socket and a goroutine. They are counted at
// accept and refused past --tcp-max-per-source from one address or
// --tcp-max in all (TLS included, handshakes in progress too); a
// connection that carries nothing, CRLF keep-alives aside, for
// --tcp-idle-timeout is closed; a banned source's connections are closed
// (closeConnectionsFrom).

// Reasons a TCP/TLS connection is closed by the edge, the
// xtrunk_sip_tcp_closed_total reason label.
const (
	closedSourceCap = "source_cap" // over --tcp-max-per-source at accept
	closedTotalCap  = "total_cap"  // over --tcp-max at accept
	closedIdle      = "idle"       // nothing read for --tcp-idle-timeout
	closedBan       = "ban"        // its source was banned
)

// tcpWriteTimeout bounds a write to a peer that stopped reading: the
// writer (a transaction's goroutine) is not held hostage for long.
const tcpWriteTimeout = 10 * time.Second

// connTracker counts the accepted TCP/TLS connections per source.
type connTracker struct {
	maxTotal, maxPerSource int // <= 0: no cap

	mu    sync.Mutex
	total int
	bySrc map[netip.Addr]map[*trackedConn]struct{}
}

func newConnTracker(maxTotal, maxPerSource int) *connTracker {
	return &connTracker{maxTotal: maxTotal, maxPerSource: maxPerSource, bySrc: map[netip.Addr]map[*trackedConn]struct{}{}}
}

// admit takes c on, or says which cap it is over ("" when admitted).
func (t *connTracker) admit(c net.Conn) (*trackedConn, string) {
	src := remoteIP(c.RemoteAddr())
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.maxTotal > 0 && t.total >= t.maxTotal {
		return nil, closedTotalCap
	}
	conns := t.bySrc[src]
	if t.maxPerSource > 0 && len(conns) >= t.maxPerSource {
		return nil, closedSourceCap
	}
	if conns == nil {
		conns = map[*trackedConn]struct{}{}
		t.bySrc[src] = conns
	}
	tc := &trackedConn{Conn: c, t: t, src: src}
	conns[tc] = struct{}{}
	t.total++
	return tc, ""
}

func (t *connTracker) release(tc *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.bySrc[tc.src]
	if _, ok := conns[tc]; !ok {
		return
	}
	delete(conns, tc)
	if len(conns) == 0 {
		delete(t.bySrc, tc.src)
	}
	t.total--
}

// closeFrom closes every connection from src; it returns how many.
func (t *connTracker) closeFrom(src netip.Addr) int {
	t.mu.Lock()
	var conns []*trackedConn
	for tc := range t.bySrc[src.Unmap()] {
		conns = append(conns, tc)
	}
	t.mu.Unlock()
	for _, tc := range conns {
		_ = tc.Close()
	}
	return len(conns)
}

// sourcesIn lists the sources inside p with connections open now (at
// most --tcp-max of them).
func (t *connTracker) sourcesIn(p netip.Prefix) []netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []netip.Addr
	for src := range t.bySrc {
		if p.Contains(src) {
			out = append(out, src)
		}
	}
	return out
}

// count is the number of connections open now.
func (t *connTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// trackedConn gives its slot back when closed, by whichever side. Closing
// it again is not an error: a ban closes the socket under sipgo, which
// then closes it as usual.
type trackedConn struct {
	net.Conn
	t    *connTracker
	src  netip.Addr
	once sync.Once
}

func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.t.release(c)
		err = c.Conn.Close()
	})
	return err
}

// idleConn closes a connection nothing is read from for idle (a CRLF
// keep-alive is a read), and bounds each write.
type idleConn struct {
	net.Conn
	idle   time.Duration
	onIdle func()
}

func (c *idleConn) Read(b []byte) (int, error) {
	if c.idle > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.onIdle != nil {
		c.onIdle()
	}
	return n, err
}

func (c *idleConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// withIdle wraps a connection handed to sipgo.
func (s *Server) withIdle(c net.Conn) net.Conn {
	return &idleConn{Conn: c, idle: s.cfg.TCPIdleTimeout, onIdle: func() {
		s.tm.closed.WithLabelValues(closedIdle).Inc()
	}}
}

// closeConnectionsFrom closes every TCP and TLS connection from addr,
// accepted or dialed, handshakes in progress included: a source the guard
// bans loses its open connections as well as new ones. It closes sockets
// only (no TLS close_notify that a stalled peer could block), takes none
// of the guard's locks and returns at once, so the guard may call it from
// its ban hook.
func (s *Server) closeConnectionsFrom(addr netip.Addr) {
	addr = addr.Unmap()
	n := s.conns.closeFrom(addr) // accepted: the raw sockets, under TLS too
	// And those xtrunk dialed to addr (the accepted ones sipgo still
	// lists are closed already).
	s.ua.TransportLayer().CloseConnectionsFrom(addr)
	if n == 0 {
		return
	}
	s.tm.closed.WithLabelValues(closedBan).Add(float64(n))
	s.log.Info().Str("src", addr.String()).Int("connections", n).Msg("closed a banned source's connections")
}

func remoteIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
