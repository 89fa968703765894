package signalling

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/signalling/route"
)

// Carrier gateway health (--carrier-probe-interval): every gateway of the
// carriers in force gets an OPTIONS each interval. Any final response
// counts as an answer (a 404 or 405 still proves the gateway is there and
// talking SIP, as Kamailio's dispatcher and most SBCs count it); silence
// or a transport error is a miss. A gateway goes down after probeDownAfter
// misses in a row and comes back up after probeUpAfter answers in a row —
// hysteresis, so one lost datagram does not flap the route. A gateway is
// up until probed otherwise, so a fresh start or a reload routes at once.
//
// Termination skips the down gateways while at least one is up (all down:
// all are tried, in route order — a probe may be wrong, a refused call is
// certain). The prober reads the carriers from the live settings each
// round, so a reload (SIGHUP) that adds or removes a carrier is followed at
// the next round; a removed gateway's state and metric series go.
const (
	probeDownAfter = 3
	probeUpAfter   = 2
	// probeTimeoutMax caps how long one OPTIONS waits for its answer.
	probeTimeoutMax = 4 * time.Second
)

// gwState is one gateway's probe state.
type gwState struct {
	up      bool
	misses  int // unanswered probes in a row
	answers int // answered probes in a row
}

// carrierHealth holds the probe state of every carrier gateway, keyed by
// gatewayLabel.
type carrierHealth struct {
	mu  sync.Mutex
	gws map[string]*gwState
}

func newCarrierHealth() *carrierHealth { return &carrierHealth{gws: map[string]*gwState{}} }

// gatewayLabel names a gateway in metrics and logs: host, port and
// transport, without the Request-URI user (a gateway is a place, and the
// label stays bounded by the configuration).
func gatewayLabel(d dest) string {
	u := sip.Uri{Host: d.host, Port: d.port}
	return strings.TrimPrefix(u.String(), "sip:") + ";transport=" + strings.ToLower(d.transport)
}

// isUp reports a gateway's state (unknown gateways are up).
func (h *carrierHealth) isUp(label string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.gws[label]
	return g == nil || g.up
}

// record counts one probe's outcome and returns the state after it and
// whether it changed.
func (h *carrierHealth) record(label string, answered bool) (up, changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.gws[label]
	if g == nil {
		g = &gwState{up: true}
		h.gws[label] = g
	}
	was := g.up
	if answered {
		g.misses = 0
		g.answers++
		if !g.up && g.answers >= probeUpAfter {
			g.up = true
		}
	} else {
		g.answers = 0
		g.misses++
		if g.up && g.misses >= probeDownAfter {
			g.up = false
		}
	}
	return g.up, g.up != was
}

// keep forgets every gateway not in labels, returning the forgotten ones.
func (h *carrierHealth) keep(labels map[string]bool) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var gone []string
	for l := range h.gws {
		if !labels[l] {
			delete(h.gws, l)
			gone = append(gone, l)
		}
	}
	return gone
}

// healthy drops the down gateways from targets while at least one target
// is up; with none up, targets is returned whole.
func (s *Server) healthy(targets []route.Target[dest]) []route.Target[dest] {
	out := make([]route.Target[dest], 0, len(targets))
	for _, t := range targets {
		if s.carriers.isUp(gatewayLabel(t.Value)) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return targets
	}
	return out
}

// probeCarriers probes the carrier gateways until ctx ends.
func (s *Server) probeCarriers(ctx context.Context) {
	for {
		every := s.settings().cfg.CarrierProbeInterval
		if every <= 0 {
			every = time.Second // probing off: look again for a reload that turns it on
			s.forgetGateways(map[string]bool{})
		} else {
			s.probeRound(ctx, every)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// probeRound sends one OPTIONS to each gateway in force and waits for
// their outcomes.
func (s *Server) probeRound(ctx context.Context, every time.Duration) {
	gws := map[string]dest{}
	for _, t := range s.settings().carriers {
		gws[gatewayLabel(t.Value)] = t.Value
	}
	labels := map[string]bool{}
	for l := range gws {
		labels[l] = true
	}
	s.forgetGateways(labels)
	timeout := min(every, probeTimeoutMax)
	var wg sync.WaitGroup
	for label, d := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			answered := s.probe(pctx, d)
			if ctx.Err() != nil {
				return
			}
			up, changed := s.carriers.record(label, answered)
			s.metrics.carrierUp(label, up)
			if changed {
				s.log.Warn().Str("gateway", label).Bool("up", up).Msg("carrier gateway state changed")
			}
		}()
	}
	wg.Wait()
}

// forgetGateways drops the state and series of gateways no longer
// configured.
func (s *Server) forgetGateways(labels map[string]bool) {
	for _, l := range s.carriers.keep(labels) {
		s.metrics.carrierGone(l)
	}
}

// probe sends one OPTIONS to d: true if any final response came back.
func (s *Server) probe(ctx context.Context, d dest) bool {
	port := d.port
	if port == 0 && d.transport == "TLS" {
		port = 5061
	}
	ruri := sip.Uri{Scheme: "sip", Host: d.host, Port: port, UriParams: sip.NewParams()}
	if d.transport != "UDP" {
		ruri.UriParams.Add("transport", strings.ToLower(d.transport))
	}
	req := sip.NewRequest(sip.OPTIONS, ruri)
	req.SetTransport(d.transport)
	ua := s.legUA(d.transport, s.peerOfDest(ctx, d))
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "xtrunk", Host: ua.ContactHDR.Address.Host}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", Host: d.host, Port: port}})
	cid := sip.CallIDHeader(newLegID())
	req.AppendHeader(&cid)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	res, err := ua.Client.Do(ctx, req)
	return err == nil && res != nil && res.StatusCode >= 200
}
