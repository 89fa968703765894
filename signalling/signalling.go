// Package signalling is xtrunk's SIP side: a back-to-back user agent on
// sipgo that admits a customer's call on its trunk (domain, IP ACL, digest,
// E.164, caller ID, Max-Forwards, limits), anchors its media in the relay
// over NG and places it toward a carrier gateway, with failover, writing a
// CDR when it ends.
//
// Every call is one object (see call.go) owning both dialogs and its own
// context; every way a call ends passes through its closeWith method.
package signalling

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
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
	cfg      Config
	log      zerolog.Logger
	st       *store.Store
	cache    *Cache
	ng       *ng.Client
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	client   *sipgo.Client
	dialogUA *sipgo.DialogUA
	verifier *auth.Verifier
	cps      *limit.CPS
	conc     *limit.Concurrent
	carriers []route.Target[sip.Uri]
	// carrierNets are the --carrier-source CIDRs: INVITEs from them are
	// origination.
	carrierNets []netip.Prefix

	mu    sync.Mutex
	rnd   *rand.Rand
	calls map[string]*call // by A-leg Call-ID
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(s *Server) { s.log = l } }

// New makes a server reading its trunks from st and driving the relay at
// cfg.RelayNG.
func New(cfg Config, st *store.Store, opts ...Option) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, log: zerolog.Nop(), cps: limit.NewCPS(time.Now), conc: limit.NewConcurrent(),
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)), calls: map[string]*call{}}
	for _, o := range opts {
		o(s)
	}
	for _, c := range cfg.Carriers {
		t, err := parseCarrier(c)
		if err != nil {
			return nil, err
		}
		s.carriers = append(s.carriers, t)
	}
	var err error
	if s.carrierNets, err = parseCarrierSources(cfg.CarrierSources); err != nil {
		return nil, err
	}
	s.cache = NewCache(st, cfg.Domain, cfg.edges())
	s.verifier = auth.New(cfg.realm())
	if s.ng, err = ng.Dial(cfg.RelayNG); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	host, _, _ := splitHostPort(cfg.ListenUDP)
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent("xtrunk")}
	if host != "" && host != "0.0.0.0" {
		uaOpts = append(uaOpts, sipgo.WithUserAgentHostname(host))
	}
	if s.ua, err = sipgo.NewUA(uaOpts...); err != nil {
		s.ng.Close()
		return nil, err
	}
	if s.srv, err = sipgo.NewServer(s.ua); err != nil {
		s.ua.Close()
		s.ng.Close()
		return nil, err
	}
	var copts []sipgo.ClientOption
	if host != "" && host != "0.0.0.0" {
		copts = append(copts, sipgo.WithClientHostname(host))
	}
	if s.client, err = sipgo.NewClient(s.ua, copts...); err != nil {
		s.ua.Close()
		s.ng.Close()
		return nil, err
	}
	contactHost := host
	if contactHost == "" || contactHost == "0.0.0.0" {
		contactHost = "127.0.0.1"
	}
	_, port, _ := splitHostPort(cfg.ListenUDP)
	s.dialogUA = &sipgo.DialogUA{Client: s.client, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: contactHost, Port: port}}}
	s.srv.OnInvite(s.onInvite)
	s.srv.OnAck(s.onAck)
	s.srv.OnBye(s.onBye)
	s.srv.OnCancel(func(*sip.Request, sip.ServerTransaction) {}) // sipgo answers CANCEL itself and ends the INVITE transaction
	s.srv.OnRegister(s.onRegister)
	s.srv.OnOptions(s.onOptions)
	return s, nil
}

// ListenAndServe serves UDP on cfg.ListenUDP and keeps the cache fresh
// until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	go s.cache.Run(ctx)
	return s.srv.ListenAndServe(ctx, "udp", s.cfg.ListenUDP)
}

// Close ends every call in progress and releases the sockets.
func (s *Server) Close() error {
	s.mu.Lock()
	seen := map[*call]bool{}
	var calls []*call
	for _, c := range s.calls {
		if !seen[c] {
			seen[c] = true
			calls = append(calls, c)
		}
	}
	s.mu.Unlock()
	for _, c := range calls {
		c.closeWith(503, "shutting down", hangupSystem)
	}
	s.srv.Close()
	s.client.Close()
	s.ua.Close()
	return s.ng.Close()
}

func (s *Server) addCall(c *call) {
	s.mu.Lock()
	s.calls[c.id] = c
	s.mu.Unlock()
}

func (s *Server) removeCall(c *call) {
	s.mu.Lock()
	if s.calls[c.id] == c {
		delete(s.calls, c.id)
	}
	s.mu.Unlock()
}

// addLeg files c under its B-leg Call-ID too, so the carrier's BYE finds it.
func (s *Server) addLeg(id string, c *call) {
	s.mu.Lock()
	s.calls[id] = c
	s.mu.Unlock()
}

func (s *Server) removeLeg(id string, c *call) {
	s.mu.Lock()
	if s.calls[id] == c {
		delete(s.calls, id)
	}
	s.mu.Unlock()
}

func (s *Server) callByID(id string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// order puts a call's targets in the order to try them (priority, then
// weighted random).
func (s *Server) order(targets []route.Target[dest]) []route.Target[dest] {
	s.mu.Lock()
	defer s.mu.Unlock()
	return route.Order(targets, s.rnd)
}
