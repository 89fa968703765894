package signalling

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/limit"
)

// Several edges on one store (REQUIREMENTS §3.6, §6). Every `xtrunk sip`
// with --edge registers its edge in the store (name, the SIP address other
// edges hand calls over to) and heartbeats every --edge-heartbeat; an edge
// silent for edgeDeadAfter heartbeats is dead. An origination URI with
// ;edge=NAME (;region= mapped) makes its calls leave from that edge: the
// edge the carrier sent the call to stays the B2BUA toward the carrier,
// with its relay in the media path, and INVITEs edge NAME with
// X-Xtrunk-Edge-Auth (edgeauth.go); NAME dials that one origination URI
// itself, media anchored on its relay. An unknown, dead or silent edge:
// the call leaves from here and the CDR's edge note says so. The
// receiving edge writes the call's one CDR.

// Results of an ;edge= target, the result label of
// xtrunk_sip_edge_handovers_total.
const (
	handoverSent         = "handed_over"    // the named edge took the INVITE (whatever the PBX answered)
	handoverUnreachable  = "unreachable"    // alive in the store, silent to the INVITE: left from here
	handoverDead         = "dead"           // heartbeat too old: left from here
	handoverUnknown      = "unknown"        // never registered: left from here
	handoverOff          = "not_configured" // no --edge-secret or no --edge here: left from here
	handoverSecure       = "secure_trunk"   // a Secure trunk's call is not handed over: left from here
	handoverRefusedThere = "refused_there"  // the named edge refused the hand-over itself (X-Xtrunk-Edge-Refused): left from here
	handoverAccepted     = "accepted"       // (the named edge) an authenticated hand-over became a call
	handoverRefused      = "refused"        // (the named edge) a hand-over INVITE that failed authentication
)

// edgeDeadAfter heartbeats missed make an edge dead.
const edgeDeadAfter = 3

// defaultEdgeHeartbeat is --edge-heartbeat's default.
const defaultEdgeHeartbeat = 5 * time.Second

// edgeRegistry is this edge's registration and its view of the others.
type edgeRegistry struct {
	s      *Server
	self   string // --edge
	secret []byte // --edge-secret
	every  time.Duration

	mu    sync.Mutex
	addr  string                // what this edge registers ("" until known)
	known map[string]store.Edge // by name, as last read
	// seen are the MACs of hand-overs accepted lately: one INVITE, one
	// call, even within edgeAuthValidity.
	seen *limit.TTLSet[string]

	handovers *prometheus.CounterVec
}

func newEdgeRegistry(s *Server) *edgeRegistry {
	r := &edgeRegistry{s: s, self: strings.ToLower(s.cfg.Edge), secret: []byte(s.cfg.EdgeSecret), every: s.cfg.EdgeHeartbeat,
		known: map[string]store.Edge{}, seen: limit.NewTTLSet[string](maxTrusted)}
	if r.every <= 0 {
		r.every = defaultEdgeHeartbeat
	}
	r.handovers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_edge_handovers_total",
		Help: "Origination targets with ;edge= naming another edge, by that edge and result (handed_over, refused_there, unreachable, dead, unknown, not_configured, secure_trunk); on the named edge, hand-over INVITEs (accepted, refused)."},
		[]string{"edge", "result"})
	alive := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_edges_alive",
		Help: "Edges registered in the store whose heartbeat is recent, this one included, as last read."},
		func() float64 { return float64(r.aliveCount()) })
	s.metrics.reg.MustRegister(r.handovers, alive)
	return r
}

// count adds one to xtrunk_sip_edge_handovers_total.
func (r *edgeRegistry) count(edge, result string) { r.handovers.WithLabelValues(edge, result).Inc() }

// ownAddress is the SIP address this edge registers: --edge-sip-address,
// else --advertise or the UDP listener's address with the UDP port ("" on
// a wildcard listener without --advertise: nothing to register).
func (s *Server) ownAddress() string {
	if s.cfg.EdgeSIPAddress != "" {
		return s.cfg.EdgeSIPAddress
	}
	ap := s.lis.addr("UDP")
	if !ap.IsValid() {
		return ""
	}
	if adv := s.cfg.Advertise; adv != "" {
		return sipHostPort(strings.Trim(adv, "[]"), int(ap.Port()))
	}
	if ap.Addr().IsUnspecified() {
		return ""
	}
	return ap.String()
}

func sipHostPort(host string, port int) string {
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a, uint16(port)).String()
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// run registers and heartbeats until ctx ends, reading the other edges
// each time; on the way out it marks this edge down.
func (r *edgeRegistry) run(ctx context.Context) {
	log := r.s.log.With().Str("edge", r.self).Logger()
	if r.self != "" {
		addr := r.s.ownAddress()
		if addr == "" {
			log.Warn().Msg("edge not registered: no --edge-sip-address (and a wildcard listener without --advertise); other edges cannot hand calls over to it")
		} else if _, err := parseEdgeAddress(addr); err != nil {
			log.Warn().Err(err).Msg("edge not registered")
		} else {
			r.mu.Lock()
			r.addr = addr
			r.mu.Unlock()
			log.Info().Str("sip_address", addr).Dur("heartbeat", r.every).Msg("edge registering in the store")
		}
	}
	started := time.Now()
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.beat(ctx, started, log)
		select {
		case <-ctx.Done():
			r.down(ctx, log)
			return
		case <-t.C:
		}
	}
}

// beat is one heartbeat and one read of the edges.
func (r *edgeRegistry) beat(ctx context.Context, started time.Time, log zerolog.Logger) {
	bctx, cancel := context.WithTimeout(ctx, r.every)
	defer cancel()
	r.mu.Lock()
	addr := r.addr
	r.mu.Unlock()
	if addr != "" {
		if err := r.s.st.HeartbeatEdge(bctx, store.Edge{Name: r.self, SIPAddress: addr, Started: started}); err != nil {
			log.Warn().Err(err).Msg("edge heartbeat failed")
		}
		started = time.Time{}
	}
	es, err := r.s.st.ListEdges(bctx)
	if err != nil {
		log.Warn().Err(err).Msg("reading the edges failed; keeping the last view")
		return
	}
	known := make(map[string]store.Edge, len(es))
	for _, e := range es {
		known[e.Name] = e
	}
	r.mu.Lock()
	r.known = known
	r.mu.Unlock()
}

// down zeroes this edge's heartbeat so the others stop handing over to it.
func (r *edgeRegistry) down(ctx context.Context, log zerolog.Logger) {
	r.mu.Lock()
	addr := r.addr
	r.mu.Unlock()
	if addr == "" {
		return
	}
	// ctx (ListenAndServe's) has ended, which is why the edge goes down;
	// the mark must still be written, bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeWriteTimeout)
	defer cancel()
	if err := r.s.st.EdgeDown(ctx, r.self); err != nil {
		log.Debug().Err(err).Msg("marking the edge down")
	}
}

// alive reports whether e's heartbeat is recent at now.
func (r *edgeRegistry) alive(e store.Edge, now time.Time) bool {
	return !e.Heartbeat.IsZero() && now.Sub(e.Heartbeat) <= edgeDeadAfter*r.every
}

func (r *edgeRegistry) aliveCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now, n := time.Now(), 0
	for _, e := range r.known {
		if r.alive(e, now) {
			n++
		}
	}
	return n
}

// lookup finds edge name: its address if alive, else the result saying
// why not.
func (r *edgeRegistry) lookup(name string) (dest, string) {
	r.mu.Lock()
	e, ok := r.known[name]
	r.mu.Unlock()
	if !ok {
		return dest{}, handoverUnknown
	}
	if !r.alive(e, time.Now()) {
		return dest{}, handoverDead
	}
	d, err := parseEdgeAddress(e.SIPAddress)
	if err != nil {
		return dest{}, handoverUnknown
	}
	return d, ""
}

// parseEdgeAddress reads a registered address: HOST:PORT (UDP) or a SIP
// URI (sip:HOST[:PORT][;transport=tcp|tls], sips: for TLS).
func parseEdgeAddress(a string) (dest, error) {
	if strings.HasPrefix(strings.ToLower(a), "sip") && strings.Contains(a, ":") && !strings.HasPrefix(a, "[") {
		var u sip.Uri
		if err := sip.ParseUri(a, &u); err == nil && u.Host != "" {
			d := destOfURI(u)
			d.user = ""
			switch d.transport {
			case "UDP", "TCP", "TLS":
				return d, nil
			}
		}
	}
	h, p, err := splitHostPort(a)
	if err != nil || h == "" || p == 0 {
		return dest{}, fmt.Errorf("%w: edge SIP address %q: want HOST:PORT or sip:HOST:PORT[;transport=…]", ErrConfig, a)
	}
	return dest{host: strings.Trim(h, "[]"), port: p, transport: "UDP"}, nil
}

// validateEdges checks the --edge-* settings.
func (c Config) validateEdges() error {
	if c.EdgeSecret != "" && len(c.EdgeSecret) < 16 {
		return fmt.Errorf("%w: edge_secret must be at least 16 characters", ErrConfig)
	}
	if c.EdgeHeartbeat < 0 {
		return fmt.Errorf("%w: edge_heartbeat is negative", ErrConfig)
	}
	if c.EdgeSIPAddress != "" {
		if _, err := parseEdgeAddress(c.EdgeSIPAddress); err != nil {
			return err
		}
	}
	if c.Edge != "" {
		if err := store.CheckEdgeName(strings.ToLower(c.Edge)); err != nil {
			return fmt.Errorf("%w: edge: %w", ErrConfig, err)
		}
	}
	return nil
}
