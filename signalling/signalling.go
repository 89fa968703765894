// Package signalling is xtrunk's SIP side: a back-to-back user agent on
// sipgo that admits a customer's call on its trunk (domain, IP ACL, digest,
// E.164, caller ID, Max-Forwards, limits), anchors its media in the relay
// over NG and places it toward a carrier gateway, with failover, writing a
// CDR when it ends.
//
// Every call is one object (see call.go) owning both dialogs and its own
// context; every way a call ends passes through its closeWith method.
// Every request reaches its handler through the guard (guard.go): scanners,
// floods and password guessers get silence. SIGTERM drains (drain.go);
// metrics.go holds the Prometheus series. Several edges share one store:
// each registers and heartbeats there (edges.go), and an origination URI
// with ;edge= is handed over to the edge it names (handover.go,
// edgeauth.go).
package signalling

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/auth"
	"github.com/xtrunk/xtrunk/signalling/limit"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// Server is one signalling process: listeners, the config cache, the
// limits and the calls in progress.
type Server struct {
	cfg       Config
	log       zerolog.Logger
	st        *store.Store
	cache     *Cache
	cdrs      *cdrWriter // CDRs to the store, batched
	ng        *ngClient
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	addresses *legAddrs // per-leg Contact/Via hosts and the clients carrying them (addr.go)
	lis       *listeners
	verifier  *auth.Verifier
	cps       *limit.CPS
	conc      *limit.Concurrent
	abuse     *limit.Guard
	metrics   *metrics
	// liveCfg is what SIGHUP may change (reload.go): the --carrier
	// gateways (termination's targets), the --carrier-source CIDRs
	// (INVITEs from them are origination, and they are exempt from the
	// abuse guard), limits and timeouts. reloadMu orders reloads.
	liveCfg  atomic.Pointer[settings]
	reloadMu sync.Mutex
	// relayIfaces are --relay-interface: the relay's interface NAME by
	// the address (as text) the signalling uses toward a leg.
	relayIfaces  map[string]string
	hostAddrs    hostAddrCache             // the host's interface addresses, for isOwnAddr (ownaddr.go)
	carrierAddrs carrierAddrCache          // the --carrier gateways' addresses (tenant_target.go)
	allow        string                    // the Allow header: the methods handled
	clock        limit.Clock               // the guard's (tests move it)
	trusted      *limit.TTLSet[trustKey]   // sources that passed digest on a trunk lately: exempt there
	exempted     *limit.TTLSet[netip.Addr] // sources some trunk exempted lately: parsed under flood bans
	// banHook and prefixBanHook are told of every ban (WithBanHooks).
	banHook       func(netip.Addr)
	prefixBanHook func(netip.Prefix)

	// TCP/TLS connections and sipgo's transport (conns.go, transport.go).
	conns         *connTracker      // accepted TCP/TLS connections
	tm            *transportMetrics // transport series
	malformedLog  logLimiter        // malformed messages' log lines
	resolver      *net.Resolver     // sipgo's DNS resolver (tests count its lookups)
	udpMaxSources int               // sipgo's UDP source bound (0: maxUDPSources)

	// xtrunk_sip_redirects_total (redirect.go); the CNAM client, nil
	// without --cnam-url (cnam.go).
	redirects *prometheus.CounterVec
	// carrierTargets counts tenant-named targets refused as carriers'.
	carrierTargets *prometheus.CounterVec
	cnam           *cnamClient
	// This edge in the store and the other edges (edges.go).
	edges *edgeRegistry
	dr    *drState // disaster recovery's HTTP client and metric (drtwiml.go)

	draining  atomic.Bool
	relayPong atomic.Int64   // unix nanos of the relay's last pong (watchRelay)
	carriers  *carrierHealth // the carrier gateways' probe state (probeCarriers)
	startRev  int64          // the store's revision at New (watchTrunkDeletes)
	closeOnce sync.Once
	closeErr  error
	// life is the server's lifetime, ended when Close has finished: the
	// server's own timeouts (lifetime.go) derive from it.
	life    context.Context
	endLife context.CancelFunc
	// hurry ends at Hurry (a second signal while sip stops): the BYEs of
	// calls ending from then on wait hurriedByeWait for an answer, not
	// byeTimeout (hangupWithin).
	hurry   context.Context
	hurryUp context.CancelFunc

	mu  sync.Mutex
	rnd *rand.Rand
	// calls are keyed by the edge's own call ID (call.id, also the relay
	// session's call-id), never by a Call-ID a peer chose. byA and byB
	// index them by the Call-ID of their inbound and outbound dialog for
	// in-dialog requests, which must also match the dialog's tags and
	// source (see dialogOf): a Call-ID alone names nobody's call.
	calls map[string]*call
	byA   map[string]*call // by A-leg Call-ID (the peer's)
	byB   map[string]*call // by B-leg Call-ID (the edge's)
	live  int              // calls not yet done (see track)
	idle  chan struct{}    // closed when live drops to 0
	// closing: Close has taken its list of calls to hang up; addCall
	// refuses new ones (ErrShuttingDown).
	closing bool
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(s *Server) { s.log = l } }

// WithBanHooks has onBan called with every source the abuse guard bans
// and onPrefix with every /24 or /64 it bans, outside the guard's locks
// and after the ban holds (say, to close the source's TCP/TLS
// connections: sipgo's would otherwise live on). Either may be nil.
func WithBanHooks(onBan func(netip.Addr), onPrefix func(netip.Prefix)) Option {
	return func(s *Server) { s.banHook, s.prefixBanHook = onBan, onPrefix }
}

// withClock sets the abuse guard's clock (tests).
func withClock(now limit.Clock) Option { return func(s *Server) { s.clock = now } }

// New makes a server reading its trunks from st and driving the relay at
// cfg.RelayNG. It binds the listeners (ListenAndServe serves them) and
// fails if one cannot be bound or the TLS certificate cannot be read.
func New(cfg Config, st *store.Store, opts ...Option) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, log: zerolog.Nop(), cps: limit.NewCPS(time.Now), conc: limit.NewConcurrent(),
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)), calls: map[string]*call{}, byA: map[string]*call{}, byB: map[string]*call{}, clock: time.Now,
		carriers: newCarrierHealth()}
	for _, o := range opts {
		o(s)
	}
	lv, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	s.liveCfg.Store(lv)
	s.life, s.endLife = context.WithCancel(context.Background())
	s.hurry, s.hurryUp = context.WithCancel(s.life)
	s.relayIfaces, _ = parseRelayInterfaces(cfg.RelayInterfaces)
	s.cache = NewCache(st, cfg.Domain, cfg.edges())
	s.cdrs = newCDRWriter(s.life, st, s.log)
	var authOpts []auth.Option
	if !cfg.DigestURICheck {
		authOpts = append(authOpts, auth.WithoutURICheck())
	}
	s.verifier = auth.New(cfg.realm(), authOpts...)
	g := cfg.guard()
	g.OnBan, g.OnPrefixBan = s.onBan, s.onPrefixBan
	s.abuse = limit.NewGuard(g, s.clock)
	s.trusted = limit.NewTTLSet[trustKey](maxTrusted)
	s.exempted = limit.NewTTLSet[netip.Addr](maxTrusted)
	tlsServer, tlsClient, certs, err := cfg.tlsConfigs()
	if err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s, certs)
	s.cdrs.failed, s.cdrs.dropped = s.metrics.cdrFailed.Inc, s.metrics.cdrDropped.Inc
	rctx, rcancel := s.within(startupStoreTimeout)
	s.startRev, _ = st.Revision(rctx) // on failure 0: a replay of the feed, whose deletes are of trunks without series
	if cfg.FinishLiveCalls {
		s.finishLeftovers(rctx, st, cfg.Edge)
	}
	rcancel()
	s.redirects = newRedirectMetric(s.metrics.reg)
	s.carrierTargets = newCarrierTargetMetric(s.metrics.reg)
	s.cnam = newCNAMClient(s.life, cfg, s.metrics.reg, s.log)
	s.edges = newEdgeRegistry(s)
	s.dr = newDRState(s.metrics.reg, s.drAddrAllowed)
	s.conns = newConnTracker(cfg.TCPMax, cfg.TCPMaxPerSource)
	s.tm = newTransportMetrics(s.metrics.reg, s.conns)
	s.malformedLog.n = malformedLogsPerSecond
	nc, err := ng.Dial(cfg.RelayNG, ng.WithReceiveBuffer(cfg.NGReceiveBuffer))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.ng = &ngClient{Client: nc, m: s.metrics}
	if s.lis, err = listen(cfg, tlsServer); err != nil {
		s.ng.Close()
		return nil, err
	}
	s.watchReceiveBuffers(nc)
	fail := func(err error) (*Server, error) {
		s.lis.close()
		if s.ua != nil {
			s.ua.Close()
		}
		s.ng.Close()
		return nil, err
	}
	host := s.advertisedHost()
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent("xtrunk"), sipgo.WithUserAgenTLSConfig(tlsClient),
		sipgo.WithUserAgentTransportLayerOptions(s.transportLayerOptions()...),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLinger(cfg.TxLinger))}
	if s.resolver != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgentDNSResolver(s.resolver))
	}
	if host != "" {
		uaOpts = append(uaOpts, sipgo.WithUserAgentHostname(host))
	}
	if s.ua, err = sipgo.NewUA(uaOpts...); err != nil {
		return fail(err)
	}
	if s.srv, err = sipgo.NewServer(s.ua); err != nil {
		return fail(err)
	}
	s.addresses = newLegAddrs()
	s.route()
	return s, nil
}

// route registers the request handlers, each behind guard (malformed
// requests, panics) and the abuse guard (screened), and the Allow header
// they make.
func (s *Server) route() {
	// add new methods here
	handlers := map[sip.RequestMethod]sipgo.RequestHandler{
		sip.INVITE:   s.onInvite,
		sip.ACK:      s.onAck,
		sip.BYE:      s.onBye,
		sip.CANCEL:   func(*sip.Request, sip.ServerTransaction) {}, // sipgo answers CANCEL itself and ends the INVITE transaction
		sip.REGISTER: s.onRegister,
		sip.OPTIONS:  s.onOptions,
		sip.INFO:     s.onInfo,
		sip.UPDATE:   s.onUpdate,
		sip.REFER:    s.onRefer,
	}
	var allow []string
	for m, h := range handlers {
		s.srv.OnRequest(m, s.guard(s.screened(h)))
		if m != sip.REGISTER {
			allow = append(allow, string(m))
		}
	}
	slices.SortFunc(allow, func(a, b string) int { return methodOrder(a) - methodOrder(b) })
	s.allow = strings.Join(allow, ", ")
	s.srv.OnNoRoute(s.guard(s.screened(s.onOther)))
}

// ListenAndServe serves the listeners bound by New and keeps the cache
// fresh until ctx ends (then it closes the listeners and returns nil), or
// until a listener fails.
func (s *Server) ListenAndServe(ctx context.Context) error {
	go s.cache.Run(ctx)
	go s.watchRelay(ctx)
	go s.edges.run(ctx)
	go s.watchTrunkDeletes(ctx)
	go s.refreshLiveQuality(ctx)
	// the carrier probes send from the UDP listener: only once sipgo has
	// it (serve's ready), else the first ones left from a new socket
	return s.lis.serve(ctx, s, func() { go s.probeCarriers(ctx) })
}

// Close ends every call in progress (BYE to answered ones, 503 to the
// others), waits for their CDRs (closeWithWait at most) and releases the
// sockets. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.draining.Store(true) // nothing new while closing
		s.mu.Lock()
		s.closing = true // no call admitted after the snapshot below (addCall)
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range s.callsInProgress() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.closeWith(endedBy(hangupSystem, 503, reasonShuttingDown))
			}()
		}
		wg.Wait()
		select { // calls that were already ending on their own
		case <-s.whenIdle():
		case <-s.hurried():
			s.log.Warn().Int("calls", s.Calls()).Msg("hurried: closing with calls still ending")
		case <-time.After(closeWithWait):
			s.log.Warn().Int("calls", s.Calls()).Msg("closing with calls still ending")
		}
		s.lis.close()
		s.srv.Close()
		s.ua.Close()
		s.closeErr = s.ng.Close()
		s.cdrs.close() // every CDR in the store before Close returns
		if s.endLife != nil {
			s.endLife()
		}
	})
	return s.closeErr
}

// closeWithWait bounds how long Close waits for calls that were ending
// already (closeWith gives a BYE 5 s, then writes the CDR).
const closeWithWait = 10 * time.Second

// callsInProgress is every call.
func (s *Server) callsInProgress() []*call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		out = append(out, c)
	}
	return out
}

// callIDInUse reports whether a live call's A-leg has Call-ID id.
func (s *Server) callIDInUse(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byA[id] != nil
}

// addCall files c, unless a live call's A-leg already has its Call-ID
// (ErrCallIDInUse): a second INVITE reusing it, from another tenant or
// not, must change nothing of the first call.
func (s *Server) addCall(c *call) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrShuttingDown
	}
	if s.byA[c.aCallID] != nil {
		s.mu.Unlock()
		return ErrCallIDInUse
	}
	s.calls[c.id] = c
	s.byA[c.aCallID] = c
	s.mu.Unlock()
	s.track(c)
	s.metrics.callStarted(callLabels(c))
	return nil
}

// track counts c as live until its closeWith has finished (CDR
// queued; untrack): Drain and Close wait for that, not just for the call
// to leave calls, so that no CDR is lost to a shutdown.
func (s *Server) track(*call) {
	s.mu.Lock()
	s.live++
	s.mu.Unlock()
}

// untrack ends what track began; closeWith calls it last (no goroutine
// per call waiting for the call's end).
func (s *Server) untrack() {
	s.mu.Lock()
	s.live--
	if s.live == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
}

// whenIdle is closed once no call is live (at once if none is).
func (s *Server) whenIdle() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	return s.idle
}

func (s *Server) removeCall(c *call) {
	s.mu.Lock()
	if s.calls[c.id] == c {
		delete(s.calls, c.id)
	}
	if s.byA[c.aCallID] == c {
		delete(s.byA, c.aCallID)
	}
	s.mu.Unlock()
}

// addLeg files c under its B-leg Call-ID too, so the B party's BYE finds it.
func (s *Server) addLeg(id string, c *call) {
	s.mu.Lock()
	s.byB[id] = c
	s.mu.Unlock()
}

func (s *Server) removeLeg(id string, c *call) {
	s.mu.Lock()
	if s.byB[id] == c {
		delete(s.byB, id)
	}
	s.mu.Unlock()
}

// order puts a call's targets in the order to try them (priority, then
// weighted random).
func (s *Server) order(targets []route.Target[dest]) []route.Target[dest] {
	s.mu.Lock()
	defer s.mu.Unlock()
	return route.Order(targets, s.rnd)
}
