package signalling

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/sockbuf"
	"github.com/xtrunk/xtrunk/signalling/limit"
)

const (
	// maxTLSHandshakes bounds the handshakes in progress; connections
	// past it are closed at once.
	maxTLSHandshakes = 256
	// certCheckEvery is how often the certificate files are looked at
	// for a renewal.
	certCheckEvery = 10 * time.Second
)

// listeners are the server's sockets, bound by New so that their
// addresses (port 0 in tests) are known before serving and the Contact
// headers can carry them.
type listeners struct {
	udp     net.PacketConn
	tcp     net.Listener
	tls     net.Listener // plain TCP; TLS is layered on in serve
	tlsConf *tls.Config
	udpBuf  sockbuf.Result // what the UDP listener got of UDPReceiveBuffer
	once    sync.Once
}

// listen binds what cfg asks for.
func listen(cfg Config, tlsConf *tls.Config) (*listeners, error) {
	udp, tcp, tlsAddr := cfg.listenAddrs()
	l := &listeners{tlsConf: tlsConf}
	var err error
	if udp != "" {
		if l.udp, err = net.ListenPacket("udp", udp); err != nil {
			return nil, fmt.Errorf("%w: listen_udp: %w", ErrConfig, err)
		}
		sc, _ := l.udp.(syscall.Conn) // a *net.UDPConn; a nil sc fails in SetReceive
		if l.udpBuf, err = sockbuf.SetReceive(sc, cfg.UDPReceiveBuffer); err != nil {
			l.close()
			return nil, fmt.Errorf("%w: udp-rcvbuf: %w", ErrConfig, err)
		}
	}
	if tcp != "" {
		if l.tcp, err = net.Listen("tcp", tcp); err != nil {
			l.close()
			return nil, fmt.Errorf("%w: listen_tcp: %w", ErrConfig, err)
		}
	}
	if tlsAddr != "" && tlsConf != nil {
		if l.tls, err = net.Listen("tcp", tlsAddr); err != nil {
			l.close()
			return nil, fmt.Errorf("%w: listen_tls: %w", ErrConfig, err)
		}
	}
	return l, nil
}

// watchReceiveBuffers logs what the SIP UDP listener and the NG client
// socket got of UDPReceiveBuffer (a warning when net.core.rmem_max
// capped it) and exports their buffers and kernel drops
// (xtrunk_sip_udp_receive_drops_total{socket="sip-udp"|"ng"},
// control/sockbuf.Collector): a drop there costs a call a retransmission.
func (s *Server) watchReceiveBuffers(nc *ng.Client) {
	col := sockbuf.NewCollector("xtrunk_sip")
	s.metrics.reg.MustRegister(col)
	col.Add("ng", nc)
	report := func(socket string, r sockbuf.Result) {
		ev := s.log.Info()
		if r.Capped() {
			ev = s.log.Warn().Str("fix", "raise net.core.rmem_max, or run with CAP_NET_ADMIN")
		}
		ev.Str("socket", socket).Int("requested", r.Requested).Int("granted", r.Granted).Bool("forced", r.Forced).
			Msg("UDP receive buffer (granted as the kernel counts it: twice the usable size)")
	}
	if sc, ok := s.lis.udp.(syscall.Conn); ok {
		col.Add("sip-udp", sc)
		report("sip-udp", s.lis.udpBuf)
	}
	report("ng", nc.ReceiveBuffer())
}

// transports lists the transports listened on, UDP first.
func (l *listeners) transports() []string {
	var out []string
	if l.udp != nil {
		out = append(out, "UDP")
	}
	if l.tcp != nil {
		out = append(out, "TCP")
	}
	if l.tls != nil {
		out = append(out, "TLS")
	}
	return out
}

// addr is transport's bound address (zero when it is off).
func (l *listeners) addr(transport string) netip.AddrPort {
	var a net.Addr
	switch strings.ToUpper(transport) {
	case "UDP":
		if l.udp != nil {
			a = l.udp.LocalAddr()
		}
	case "TCP":
		if l.tcp != nil {
			a = l.tcp.Addr()
		}
	case "TLS":
		if l.tls != nil {
			a = l.tls.Addr()
		}
	}
	switch a := a.(type) {
	case nil:
		return netip.AddrPort{}
	case *net.UDPAddr: // without a.String(): this runs several times a call
		return netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())
	case *net.TCPAddr:
		return netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// serve runs sipgo on every listener until ctx ends or one fails. ready
// is called once sipgo holds the UDP listener (at most
// listenerRegisterWait after it starts): requests the edge sends on its
// own before then would not find the listener to leave from and would
// get a socket of their own, from another port (and, in a test whose
// goroutine is outside the lab's namespace, another network).
func (l *listeners) serve(ctx context.Context, s *Server, ready func()) error {
	type result struct {
		transport string
		err       error
	}
	errc := make(chan result, 3)
	n := 0
	start := func(transport string, f func() error) {
		n++
		go func() { errc <- result{transport, f()} }()
	}
	if l.udp != nil {
		start("UDP", func() error { return s.srv.ServeUDP(l.udp) })
		waitUDPRegistered(s.srv.TransportLayer().Pool("udp"), l.udp.LocalAddr().String())
	}
	ready()
	if l.tcp != nil {
		start("TCP", func() error { return s.srv.ServeTCP(&guardedListener{Listener: l.tcp, s: s, idle: true}) })
	}
	if l.tls != nil {
		start("TLS", func() error {
			return s.srv.ServeTLS(newTLSListener(&guardedListener{Listener: l.tls, s: s}, l.tlsConf, s))
		})
	}
	var first result
	select {
	case <-ctx.Done():
	case first = <-errc:
		n--
	}
	l.close()
	for ; n > 0; n-- {
		<-errc
	}
	if ctx.Err() != nil || first.err == nil || errors.Is(first.err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("signalling: %s listener: %w", first.transport, first.err)
}

// listenerRegisterWait bounds how long serve waits for sipgo to hold the
// UDP listener (it does so as its serving goroutine starts).
const listenerRegisterWait = 2 * time.Second

// waitUDPRegistered waits until pool holds the listener at addr, polling
// every millisecond, at most listenerRegisterWait.
func waitUDPRegistered(pool *sip.ConnectionPool, addr string) {
	for deadline := time.Now().Add(listenerRegisterWait); pool != nil && pool.Get(addr) == nil && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

func (l *listeners) close() {
	l.once.Do(func() {
		for _, c := range []interface{ Close() error }{l.udp, l.tcp, l.tls} {
			if c != nil {
				_ = c.Close()
			}
		}
	})
}

// guardedListener closes connections from banned sources and those over
// the connection caps before sipgo (or TLS) spends anything on them, and
// rides out accept errors such as running out of file descriptors instead
// of stopping the listener. With idle, it applies the idle timeout too
// (TLS applies it after the handshake, which has its own).
type guardedListener struct {
	net.Listener
	s    *Server
	idle bool
}

func (l *guardedListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.s.log.Warn().Err(err).Dur("retry_in", delay).Msg("SIP accept failed")
			time.Sleep(delay)
			continue
		}
		delay = 0
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok && l.s.dropEarly(a.AddrPort().Addr()) {
			l.s.metrics.ignored(limit.ReasonBanned)
			_ = c.Close()
			continue
		}
		tc, over := l.s.conns.admit(c)
		if tc == nil {
			l.s.tm.closed.WithLabelValues(over).Inc()
			l.s.log.Debug().Str("src", c.RemoteAddr().String()).Str("reason", over).Msg("TCP connection refused")
			_ = c.Close()
			continue
		}
		if l.idle {
			return l.s.withIdle(tc), nil
		}
		return tc, nil
	}
}

// tlsListener hands sipgo connections whose handshake is done: each
// handshake runs on its own, bounded in time and in number, so that a
// peer that connects and stalls blocks neither the accept loop nor a
// goroutine for long.
type tlsListener struct {
	net.Listener
	conf  *tls.Config
	s     *Server
	conns chan net.Conn
	sem   chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newTLSListener(inner net.Listener, conf *tls.Config, s *Server) *tlsListener {
	l := &tlsListener{Listener: inner, conf: conf, s: s, conns: make(chan net.Conn),
		sem: make(chan struct{}, maxTLSHandshakes), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *tlsListener) loop() {
	defer l.Close()
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return
		}
		select {
		case l.sem <- struct{}{}:
			go l.handshake(raw)
		default:
			_ = raw.Close()
			l.s.metrics.tlsFailed()
		}
	}
}

func (l *tlsListener) handshake(raw net.Conn) {
	defer func() { <-l.sem }()
	c := tls.Server(raw, l.conf)
	_ = c.SetDeadline(time.Now().Add(l.s.cfg.TLSHandshakeTimeout))
	if err := c.Handshake(); err != nil {
		l.s.log.Debug().Err(err).Str("src", raw.RemoteAddr().String()).Msg("TLS handshake failed")
		l.s.metrics.tlsFailed()
		_ = raw.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	select {
	case l.conns <- l.s.withIdle(c):
	case <-l.done:
		_ = c.Close()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// tlsConfigs builds the server side (nil without a certificate) and the
// client side: verify servers against the system's CAs plus TLSCA, unless
// told not to; present the server certificate if a server asks for one.
func (c Config) tlsConfigs() (server, client *tls.Config, certs *certLoader, err error) {
	minVer, err := tlsVersion(c.TLSMinVersion)
	if err != nil {
		return nil, nil, nil, err
	}
	client = &tls.Config{MinVersion: minVer, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // a lab option, off by default
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: tls_ca: %w", ErrConfig, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, nil, fmt.Errorf("%w: tls_ca %s: no PEM certificate in it", ErrConfig, c.TLSCA)
		}
		client.RootCAs = pool
	}
	if c.TLSCert == "" {
		return nil, client, nil, nil
	}
	if certs, err = newCertLoader(c.TLSCert, c.TLSKey); err != nil {
		return nil, nil, nil, err
	}
	server = &tls.Config{MinVersion: minVer, GetCertificate: certs.get}
	client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return certs.get(nil) }
	return server, client, certs, nil
}

// certLoader serves the certificate from its files and picks up a
// renewed one (new modification times) without a restart; a renewal
// that does not load keeps the old certificate.
type certLoader struct {
	certFile, keyFile string

	mu              sync.Mutex
	cert            *tls.Certificate
	certMod, keyMod time.Time
	checked         time.Time
}

func newCertLoader(certFile, keyFile string) (*certLoader, error) {
	l := &certLoader{certFile: certFile, keyFile: keyFile}
	if err := l.load(); err != nil {
		return nil, fmt.Errorf("%w: tls_cert/tls_key: %w", ErrConfig, err)
	}
	return l, nil
}

func (l *certLoader) load() error {
	cs, err := os.Stat(l.certFile)
	if err != nil {
		return err
	}
	ks, err := os.Stat(l.keyFile)
	if err != nil {
		return err
	}
	if l.cert != nil && cs.ModTime().Equal(l.certMod) && ks.ModTime().Equal(l.keyMod) {
		return nil
	}
	c, err := tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		return err
	}
	l.cert, l.certMod, l.keyMod = &c, cs.ModTime(), ks.ModTime()
	return nil
}

func (l *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.checked) >= certCheckEvery {
		l.checked = now
		_ = l.load() // keep serving the old one
	}
	return l.cert, nil
}

// notAfter is the served certificate's expiry.
func (l *certLoader) notAfter() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cert == nil || l.cert.Leaf == nil {
		return time.Time{}
	}
	return l.cert.Leaf.NotAfter
}

// Transports lists the transports xtrunk listens on ("UDP", "TCP",
// "TLS"). Any of them can also be dialed: a TLS target without a TLS
// listener works, but the peer's requests within the dialog then have
// nowhere to go but the connection xtrunk opened.
func (s *Server) Transports() []string { return s.lis.transports() }

// Addr is the address transport listens on (zero when it is off).
func (s *Server) Addr(transport string) netip.AddrPort { return s.lis.addr(transport) }

// advertisedHost is the host every leg shares, set on sipgo's user
// agent: --advertise, else the first listener's host unless it is a
// wildcard ("" then: each leg gets its own, see selfHost).
func (s *Server) advertisedHost() string {
	if s.cfg.Advertise != "" {
		return s.cfg.Advertise
	}
	for _, tr := range s.lis.transports() {
		if a := s.lis.addr(tr).Addr(); a.IsValid() && !a.IsUnspecified() {
			return a.Unmap().String()
		}
	}
	return ""
}
