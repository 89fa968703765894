package signalling

import (
	"cmp"
	"net"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// How xtrunk sets up sipgo's transport layer (the fork's options, see
// third_party/sipgo/FORK.md):
//
//   - responses go only back the way the request came: over the
//     connection it came on, or for UDP through the listening socket to
//     its source address; the Via host is never resolved nor dialed (a
//     request whose connection is gone is dropped and counted);
//   - a UDP listener remembers at most maxUDPSources peers;
//   - malformed messages come to onMalformed: counted, fed to the guard as
//     requests from their source, logged at most malformedLogsPerSecond
//     times a second and cut to malformedLogBytes.

const (
	// maxUDPSources bounds sipgo's per-source entries for the UDP
	// listener (they make requests to a peer leave from the listener).
	maxUDPSources = 8192
	// malformedLogsPerSecond and malformedLogBytes bound what junk
	// costs in logs.
	malformedLogsPerSecond = 10
	malformedLogBytes      = 256
	// methodMalformed is the method a malformed message counts as in the
	// guard's flood rule.
	methodMalformed = "MALFORMED"
)

// transportMetrics are the transport's series, in the server's registry.
type transportMetrics struct {
	// xtrunk_sip_malformed_total{transport}: messages sipgo could not
	// parse (a datagram, or the read that broke a stream, which is then
	// closed).
	malformed *prometheus.CounterVec
	// xtrunk_sip_tcp_closed_total{reason}: TCP/TLS connections the edge
	// closed: source_cap and total_cap at accept (--tcp-max-per-source,
	// --tcp-max), idle (--tcp-idle-timeout), ban (accepted connections
	// of a source that was banned).
	closed *prometheus.CounterVec
	// xtrunk_sip_responses_dropped_total{transport}: requests dropped
	// because the connection they came on was gone before a response
	// could be sent (the edge never dials a Via host).
	dropped *prometheus.CounterVec
	// xtrunk_sip_tcp_connections: TCP and TLS connections open now
	// (accepted ones, handshakes in progress included).
}

func newTransportMetrics(reg *prometheus.Registry, conns *connTracker) *transportMetrics {
	m := &transportMetrics{
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_malformed_total",
			Help: "SIP messages that could not be parsed, by transport."}, []string{"transport"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_tcp_closed_total",
			Help: "TCP/TLS connections closed by the edge: source_cap, total_cap (at accept), idle, ban."}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_responses_dropped_total",
			Help: "Requests dropped because their connection was gone before the response, by transport."}, []string{"transport"}),
	}
	reg.MustRegister(m.malformed, m.closed, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_tcp_connections",
			Help: "TCP and TLS connections open now (accepted, handshakes included)."}, func() float64 { return float64(conns.count()) }))
	for _, tr := range []string{"UDP", "TCP", "TLS"} {
		m.malformed.WithLabelValues(tr)
		m.dropped.WithLabelValues(tr)
	}
	for _, r := range []string{closedSourceCap, closedTotalCap, closedIdle, closedBan} {
		m.closed.WithLabelValues(r)
	}
	return m
}

// transportLayerOptions are sipgo's transport layer options for s.
func (s *Server) transportLayerOptions() []sip.TransportLayerOption {
	return []sip.TransportLayerOption{
		sip.WithTransportLayerReadFilter(s.preParse),
		sip.WithTransportLayerResponseToSource(s.responseDropped),
		sip.WithTransportLayerParseErrorHandler(s.onMalformed),
		sip.WithTransportLayerUDPMaxSources(cmp.Or(s.udpMaxSources, maxUDPSources)),
	}
}

// responseDropped counts a request whose connection was gone.
func (s *Server) responseDropped(req *sip.Request) {
	tr := sip.NetworkToUpper(req.Transport())
	s.tm.dropped.WithLabelValues(tr).Inc()
	s.log.Debug().Str("transport", tr).Str("src", req.Source()).Str("request", req.StartLine()).
		Msg("connection gone before the response: request dropped")
}

// onMalformed handles a message sipgo could not parse: it counts, goes to
// the guard as a request from its source (so junk floods get banned like
// any flood; carrier sources are exempt) and is logged, rate limited and
// cut short.
func (s *Server) onMalformed(p sip.TransportReadProps, data []byte, err error) {
	tr := sip.NetworkToUpper(p.Transport)
	s.tm.malformed.WithLabelValues(tr).Inc()
	src := remoteIP(p.RemoteAddr)
	if ok, suppressed := s.malformedLog.allow(time.Now()); ok {
		ev := s.log.Info().Str("transport", tr).Str("error", truncate(err.Error(), malformedLogBytes)).
			Int("bytes", len(data)).Str("data", truncate(string(data), malformedLogBytes))
		if p.RemoteAddr != nil {
			ev = ev.Str("src", p.RemoteAddr.String())
		}
		if suppressed > 0 {
			ev = ev.Int("suppressed", suppressed)
		}
		ev.Msg("malformed SIP message")
	}
	if !src.IsValid() || s.inCarrierNets(src) {
		return
	}
	// A ban is counted and logged by the guard's hook (onBan).
	s.abuse.Check(src, methodMalformed, "")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// logLimiter lets through at most n events per second and counts the
// rest, to be reported with the next one let through.
type logLimiter struct {
	n int

	mu         sync.Mutex
	sec        int64
	inSec      int
	suppressed int
}

func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now.Unix(); sec != l.sec {
		l.sec, l.inSec = sec, 0
	}
	if l.inSec >= l.n {
		l.suppressed++
		return false, 0
	}
	l.inSec++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// withResolver sets sipgo's DNS resolver (tests: to see that nothing is
// ever looked up for a response).
func withResolver(r *net.Resolver) Option { return func(s *Server) { s.resolver = r } }

// withUDPMaxSources lowers the UDP listener's source bound (tests).
func withUDPMaxSources(n int) Option { return func(s *Server) { s.udpMaxSources = n } }
