package ng

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Handler answers NG commands.
type Handler interface {
	// ServeNG handles one command (req.Str("command"), e.g. "offer") and
	// returns the reply dict. The server adds nothing to a non-nil reply
	// except "result": "ok" when the handler did not set "result"; a nil
	// reply is sent as {"result": "ok"}. The server does not modify the
	// returned Dict, so a handler may return a shared one.
	//
	// from is the request's source with any IPv4-mapped IPv6 address
	// unmapped. ctx is cancelled when Serve's context is.
	ServeNG(ctx context.Context, from netip.AddrPort, req Dict) Dict
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, from netip.AddrPort, req Dict) Dict

// ServeNG calls f.
func (f HandlerFunc) ServeNG(ctx context.Context, from netip.AddrPort, req Dict) Dict {
	return f(ctx, from, req)
}

// Defaults for the server's options.
const (
	DefaultReplyCacheTTL     = 30 * time.Second
	DefaultReplyCacheEntries = 1 << 16
	DefaultReplyCacheBytes   = 64 << 20
)

// maxReply is the largest UDP payload over IPv4; a longer reply could not
// be sent at all, so the peer gets an error instead.
const maxReply = 65507

// Server answers NG requests arriving on a packet connection.
type Server struct {
	h       Handler
	log     zerolog.Logger
	workers int
	ttl     time.Duration
	entries int
	bytes   int
	cache   *replyCache

	// allow, when set, are the sources whose commands are served; others
	// are dropped unanswered and reported to refused.
	allow   []netip.Prefix
	refused func(from netip.AddrPort)
	lastLog atomic.Int64 // unix nanos of the last refusal logged

	// inline, when set, says which requests the reading goroutine
	// answers itself (WithInline).
	inline func(req Dict) bool
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithLogger sets the server's logger; the default discards.
func WithLogger(l zerolog.Logger) ServerOption {
	return func(s *Server) { s.log = l }
}

// WithReplyCacheTTL sets how long a reply is kept to answer retransmits of
// its request (default 30s). Zero turns the cache off, though a retransmit
// that arrives while its request is being handled is still dropped rather
// than handled twice.
func WithReplyCacheTTL(d time.Duration) ServerOption {
	return func(s *Server) { s.ttl = d }
}

// WithReplyCacheSize bounds the reply cache by number of replies and by
// their total size; the oldest are evicted first. Defaults: 65536 replies,
// 64 MiB. Values below 1 keep the default.
func WithReplyCacheSize(entries, bytes int) ServerOption {
	return func(s *Server) {
		if entries > 0 {
			s.entries = entries
		}
		if bytes > 0 {
			s.bytes = bytes
		}
	}
}

// WithWorkers sets how many requests are handled at once (default
// 4*GOMAXPROCS). When all are busy the server stops reading and the
// socket's receive buffer absorbs, then drops, the excess; Kamailio
// retransmits.
func WithWorkers(n int) ServerOption {
	return func(s *Server) {
		if n > 0 {
			s.workers = n
		}
	}
}

// WithInline has the goroutine that read a request answer it itself when
// inline(req) is true (a malformed request is answered inline too);
// other requests go to the workers. Handing a
// request to a worker costs a goroutine wake-up, and with an idle CPU a
// thread's, per request: for commands that take microseconds (a relay's
// offer, answer, delete) that hand-off costs more than the work. A
// request answered inline holds up the requests behind it, so only
// requests that never wait long (on files or peers) should be.
func WithInline(inline func(req Dict) bool) ServerOption {
	return func(s *Server) { s.inline = inline }
}

// WithAllow serves commands only from sources inside one of prefixes:
// NG carries no authentication (rtpengine's has none either), and any
// command can record or tear down a call, so the relay listens to its
// own signalling only. Datagrams from elsewhere get no reply (a reply
// would confirm the port) and are passed to refused, if not nil, for a
// metric. An empty list allows every source.
func WithAllow(prefixes []netip.Prefix, refused func(from netip.AddrPort)) ServerOption {
	return func(s *Server) {
		s.allow = prefixes
		s.refused = refused
	}
}

// refusedLogEvery rate-limits the refusal log line: a flood of spoofed
// datagrams must not become a flood of log lines.
const refusedLogEvery = time.Second

// allowed reports whether from may send commands, counting and logging
// (at most once per refusedLogEvery) those that may not.
func (s *Server) allowed(from netip.AddrPort) bool {
	if len(s.allow) == 0 {
		return true
	}
	for _, p := range s.allow {
		if p.Contains(from.Addr()) {
			return true
		}
	}
	if s.refused != nil {
		s.refused(from)
	}
	now := time.Now().UnixNano()
	if last := s.lastLog.Load(); now-last >= int64(refusedLogEvery) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Warn().Stringer("from", from).Msg("ng: command from a source outside --ng-allow dropped")
	}
	return false
}

// allowSelf adds the address the server is bound to, when it is a
// specific one, to the allowed sources: a datagram from it comes from this
// host, as one from loopback does, and the relay's own readiness ping and
// a signalling process beside it send from there.
func (s *Server) allowSelf(conn net.PacketConn) {
	la, ok := conn.LocalAddr().(*net.UDPAddr)
	if len(s.allow) == 0 || !ok {
		return
	}
	ip, ok := netip.AddrFromSlice(la.IP)
	if !ok || ip.Unmap().IsUnspecified() {
		return
	}
	ip = ip.Unmap()
	for _, p := range s.allow {
		if p.Contains(ip) {
			return
		}
	}
	s.allow = append(slices.Clip(s.allow), netip.PrefixFrom(ip, ip.BitLen()))
}

// NewServer returns a server that passes requests to h.
func NewServer(h Handler, opts ...ServerOption) *Server {
	s := &Server{
		h:       h,
		log:     zerolog.Nop(),
		workers: 4 * runtime.GOMAXPROCS(0),
		ttl:     DefaultReplyCacheTTL,
		entries: DefaultReplyCacheEntries,
		bytes:   DefaultReplyCacheBytes,
	}
	for _, o := range opts {
		o(s)
	}
	s.cache = newReplyCache(s.ttl, s.entries, s.bytes)
	return s
}

// job is one request on its way to a worker.
type job struct {
	key  cacheKey       // key.cookie is msg's cookie
	to   netip.AddrPort // the source as read, to reply to on a *net.UDPConn
	addr net.Addr       // the source, to reply to on other PacketConns
	msg  string
	// parsed: req and perr are msg parsed (by dispatch, for WithInline)
	parsed bool
	req    Dict
	perr   error
}

// Serve reads requests from conn and answers them until ctx is done, then
// waits for the requests being handled and returns nil. It returns an
// error if conn fails (is closed, for instance). Serve does not close conn,
// but on return because of ctx it leaves conn with a read deadline in the
// past.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() {
		// Unblocks the read; the past deadline makes every later read fail.
		_ = conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	s.allowSelf(conn)

	jobs := make(chan job, s.workers)
	var wg sync.WaitGroup
	for range s.workers {
		wg.Go(func() {
			var buf []byte
			for j := range jobs {
				buf = s.handle(ctx, conn, j, buf[:0])
			}
		})
	}
	err := s.read(ctx, conn, jobs)
	close(jobs)
	wg.Wait()
	return err
}

func (s *Server) read(ctx context.Context, conn net.PacketConn, jobs chan<- job) error {
	buf := make([]byte, MaxDatagram)
	var out []byte // replies answered inline, reused
	udp, _ := conn.(*net.UDPConn)
	var backoff time.Duration
	for {
		var (
			n    int
			to   netip.AddrPort
			addr net.Addr
			err  error
		)
		if udp != nil {
			n, to, err = udp.ReadFromUDPAddrPort(buf)
		} else if n, addr, err = conn.ReadFrom(buf); err == nil {
			to = addrPortOf(addr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("ng: serve: %w", err)
			}
			// Transient (an ICMP error surfacing, say); back off so a
			// persistent one cannot spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn().Err(err).Dur("backoff", backoff).Msg("ng: read failed")
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		var ok bool
		if out, ok = s.dispatch(ctx, conn, jobs, buf[:n], to, addr, out); !ok {
			return nil
		}
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap // zero for non-IP peers, which then share one cookie space
}

// dispatch answers a retransmit from the cache, answers a new request
// (WithInline; its reply is encoded into out, returned for reuse) or
// queues it. It returns false if ctx ended while waiting for a worker.
func (s *Server) dispatch(ctx context.Context, conn net.PacketConn, jobs chan<- job, b []byte, to netip.AddrPort, addr net.Addr, out []byte) ([]byte, bool) {
	from := netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if !s.allowed(from) {
		return out, true
	}
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		// Without a cookie there is nothing to address a reply with.
		s.log.Debug().Stringer("from", to).Int("len", len(b)).Msg("ng: dropping datagram without cookie")
		return out, true
	}
	cached, st, key := s.cache.begin(from, b[:i], time.Now())
	switch st {
	case lookupCached:
		s.log.Debug().Stringer("from", from).Str("cookie", key.cookie).Msg("ng: retransmit, resending cached reply")
		s.write(conn, cached, to, addr)
	case lookupPending:
		s.log.Debug().Stringer("from", from).Str("cookie", key.cookie).Msg("ng: retransmit of a request in progress, dropped")
	case lookupNew:
		// a copy: the handler may keep the request's strings
		j := job{key: key, to: to, addr: addr, msg: string(b)}
		if s.inline != nil {
			_, j.req, j.perr = parseMessage(j.msg)
			j.parsed = true
			if j.perr != nil || s.inline(j.req) {
				return s.handle(ctx, conn, j, out[:0]), true
			}
		}
		select {
		case jobs <- j:
		case <-ctx.Done():
			s.cache.finish(key, nil, time.Now())
			return out, false
		}
	}
	return out, true
}

func (s *Server) write(conn net.PacketConn, b []byte, to netip.AddrPort, addr net.Addr) {
	var err error
	if udp, ok := conn.(*net.UDPConn); ok {
		_, err = udp.WriteToUDPAddrPort(b, to)
	} else {
		_, err = conn.WriteTo(b, addr)
	}
	if err != nil {
		s.log.Warn().Err(err).Stringer("to", to).Msg("ng: sending reply failed")
	}
}

// handle answers one new request, caches the answer and sends it. It
// returns buf for reuse.
func (s *Server) handle(ctx context.Context, conn net.PacketConn, j job, buf []byte) []byte {
	start := time.Now()
	buf, cmd := s.answer(ctx, j, buf)
	s.cache.finish(j.key, buf, time.Now()) // copies it
	s.write(conn, buf, j.to, j.addr)
	s.log.Debug().Stringer("from", j.key.from).Str("cookie", j.key.cookie).Str("command", cmd).
		Dur("elapsed", time.Since(start)).Msg("ng: replied")
	return buf
}

// answer appends the encoded reply to j to buf. Nothing that happens while
// answering, a panicking handler included, escapes it.
func (s *Server) answer(ctx context.Context, j job, buf []byte) (out []byte, cmd string) {
	cookie := j.key.cookie
	defer func() {
		if r := recover(); r != nil {
			s.log.Error().Stringer("from", j.key.from).Str("cookie", cookie).Str("command", cmd).
				Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("ng: panic answering request")
			out, _ = AppendMessage(buf[:0], cookie, ErrorReply("internal error"))
		}
	}()
	req, err := j.req, j.perr
	if !j.parsed {
		_, req, err = parseMessage(j.msg)
	}
	var rep Dict
	if err != nil {
		s.log.Info().Err(err).Stringer("from", j.key.from).Str("cookie", cookie).Msg("ng: malformed request")
		rep = ErrorReply("malformed request: " + strings.TrimPrefix(err.Error(), "ng: "))
	} else {
		cmd = req.Str("command")
		rep = s.h.ServeNG(ctx, j.key.from, req)
	}
	out, err = appendMessage(buf, cookie, rep, "result", "ok")
	if err != nil {
		s.log.Error().Err(err).Str("command", cmd).Msg("ng: handler reply cannot be encoded")
		out, _ = AppendMessage(buf[:0], cookie, ErrorReply("internal error"))
	} else if len(out) > maxReply {
		s.log.Error().Int("len", len(out)).Str("command", cmd).Msg("ng: reply too large for a datagram")
		out, _ = AppendMessage(out[:0], cookie, ErrorReply("reply too large"))
	}
	return out, cmd
}
