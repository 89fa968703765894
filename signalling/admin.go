package signalling

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/signalling/limit"
)

// The operator's console (xtrunk ctl, xtrunk top) reads live calls, bans
// and carrier state through these methods; cmd/xtrunk serves them as JSON
// under /admin/ on the --metrics listener.

// maxAdminQueries bounds the NG queries one live-call listing sends to
// the relay at once, and adminQueryTimeout each one: the console must not
// load the relay in proportion to the calls up, nor hang on it.
const (
	maxAdminQueries   = 8
	adminQueryTimeout = time.Second
	// maxLadder is how many SIP messages a call's ladder keeps (the
	// first ones and then the latest: see ladder.add).
	maxLadder = 32
)

// LiveCall is a call in progress as the console shows it.
type LiveCall struct {
	ID        string     `json:"id"`  // the edge's call ID (the relay's call-id)
	Sid       string     `json:"sid"` // the Call SID its CDR will have
	Trunk     string     `json:"trunk"`
	Direction string     `json:"direction"`
	From      string     `json:"from"`
	To        string     `json:"to"`
	Status    string     `json:"status"` // ringing or in-progress
	Start     time.Time  `json:"start"`
	Answer    *time.Time `json:"answer,omitempty"`
	Codec     string     `json:"codec,omitempty"`
	Legs      []LiveLeg  `json:"legs,omitempty"`
	Ladder    []SIPEvent `json:"ladder,omitempty"` // calls/{id} only
}

// LiveLeg is one leg's media so far, from an NG query to the relay.
type LiveLeg struct {
	Leg      string  `json:"leg"` // customer or carrier
	Packets  uint64  `json:"packets"`
	Lost     int64   `json:"lost"`
	LossPct  float64 `json:"loss_pct"`
	JitterMs float64 `json:"jitter_ms"`
	MOS      float64 `json:"mos"`
	XDPShare float64 `json:"xdp_share"` // share of the leg's packets the XDP fast path forwarded (0..1)
}

// SIPEvent is one line of a call's SIP ladder.
type SIPEvent struct {
	At   time.Time `json:"at"`
	Leg  string    `json:"leg"` // A or B
	Dir  string    `json:"dir"` // "in" (to the edge) or "out"
	Line string    `json:"line"`
}

// ladder keeps a call's first SIP messages and its latest ones: a long
// call's re-INVITEs must not grow it without bound, and its setup stays
// visible. Every call in progress has one, so its events are compact (a
// time, two letters and the line: one pointer each, where a SIPEvent has
// three) and its first ladderCap come in one allocation; snapshot builds
// the SIPEvents.
type ladder struct {
	mu     sync.Mutex
	events []ladderEvent
	more   int // messages dropped from the middle
}

type ladderEvent struct {
	at       int64 // UnixNano
	leg, dir byte  // "A", "B" or "-"; "in", "out" or "-": the first letter
	line     string
}

// ladderCap is the room a ladder starts with: a call's setup and
// teardown through the B2BUA (INVITE, 100, 180, 200 and ACK each way,
// then BYE and its 200 each way) without growing.
const ladderCap = 16

func (l *ladder) add(leg, dir, line string) {
	ev := ladderEvent{at: time.Now().UnixNano(), leg: leg[0], dir: dir[0], line: line}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.events == nil {
		l.events = make([]ladderEvent, 0, ladderCap)
	}
	if len(l.events) < maxLadder {
		l.events = append(l.events, ev)
		return
	}
	// keep the first half, slide the second
	h := maxLadder / 2
	copy(l.events[h:], l.events[h+1:])
	l.events[maxLadder-1] = ev
	l.more++
}

// ladderDir is the direction whose first letter is d.
func ladderDir(d byte) string {
	switch d {
	case 'i':
		return "in"
	case 'o':
		return "out"
	}
	return string(d)
}

func (l *ladder) snapshot() []SIPEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]SIPEvent, len(l.events))
	for i, ev := range l.events {
		out[i] = SIPEvent{At: time.Unix(0, ev.at).UTC(), Leg: string(ev.leg), Dir: ladderDir(ev.dir), Line: ev.line}
	}
	return out
}

// sip notes a message on the call's ladder.
func (c *call) sip(leg, dir, format string, args ...any) {
	c.ladder.add(leg, dir, fmt.Sprintf(format, args...))
}

// LiveCalls lists the calls in progress, oldest first, with each leg's
// media so far (at most maxAdminQueries NG queries at once).
func (s *Server) LiveCalls(ctx context.Context) []LiveCall {
	calls := s.callsInProgress()
	sort.Slice(calls, func(i, j int) bool { return calls[i].start.Before(calls[j].start) })
	out := make([]LiveCall, len(calls))
	sem := make(chan struct{}, maxAdminQueries)
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = s.liveCall(ctx, c)
		})
	}
	wg.Wait()
	return out
}

// LiveCall is one call in progress by its ID or Call SID, with its SIP
// ladder; ErrNoSuchCall when there is none.
func (s *Server) LiveCall(ctx context.Context, id string) (LiveCall, error) {
	c := s.findCall(id)
	if c == nil {
		return LiveCall{}, ErrNoSuchCall
	}
	lc := s.liveCall(ctx, c)
	lc.Ladder = c.ladder.snapshot()
	return lc, nil
}

// Hangup ends a call in progress as the operator asked: BYE to both legs
// of an answered call (487 to the caller of a ringing one), CDR hangup
// cause "system: administratively ended".
func (s *Server) Hangup(id string) error {
	c := s.findCall(id)
	if c == nil {
		return ErrNoSuchCall
	}
	c.log.Info().Msg("call ended by the operator")
	c.closeWith(endedBy(hangupSystem, 487, reasonAdmin))
	return nil
}

// Bans lists the abuse guard's bans in force.
func (s *Server) Bans() []limit.Ban { return s.abuse.Bans() }

// Unban lifts the ban on an address or a /24 or /64 prefix; ErrNotBanned
// when none held.
func (s *Server) Unban(addr string) error {
	if !s.abuse.Unban(addr) {
		return fmt.Errorf("%w: %s", ErrNotBanned, addr)
	}
	s.log.Info().Str("source", addr).Msg("ban lifted by the operator")
	return nil
}

// CarrierState is a carrier gateway's OPTIONS probe state.
type CarrierState struct {
	Gateway string `json:"gateway"`
	Up      bool   `json:"up"`
	Probed  bool   `json:"probed"` // false: not probed yet (counts as up)
	Misses  int    `json:"misses"`
	Answers int    `json:"answers"`
}

// Carriers lists the configured carrier gateways and their probe state.
func (s *Server) Carriers() []CarrierState {
	seen := map[string]bool{}
	var out []CarrierState
	for _, t := range s.settings().carriers {
		l := gatewayLabel(t.Value)
		if seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, s.carriers.state(l))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Gateway < out[j].Gateway })
	return out
}

func (h *carrierHealth) state(label string) CarrierState {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.gws[label]
	if g == nil {
		return CarrierState{Gateway: label, Up: true}
	}
	return CarrierState{Gateway: label, Up: g.up, Probed: true, Misses: g.misses, Answers: g.answers}
}

// findCall is the call with the edge's ID or the Call SID id.
func (s *Server) findCall(id string) *call {
	s.mu.Lock()
	c := s.calls[id]
	s.mu.Unlock()
	if c != nil {
		return c
	}
	for _, c := range s.callsInProgress() {
		c.mu.Lock()
		sid := c.sid
		c.mu.Unlock()
		if sid == id {
			return c
		}
	}
	return nil
}

func (s *Server) liveCall(ctx context.Context, c *call) LiveCall {
	c.mu.Lock()
	answered, answer := c.answered, c.answer
	c.mu.Unlock()
	lc := LiveCall{ID: c.id, Sid: c.callSid(), Trunk: c.p.trunk.Sid, Direction: c.p.dir, From: c.p.from, To: c.p.to,
		Status: "ringing", Start: c.start.UTC(), Codec: c.codec()}
	if answered {
		lc.Status = "in-progress"
		a := answer.UTC()
		lc.Answer = &a
	}
	q, customerTag, ok := s.queryMedia(ctx, c, "relay query for the console")
	if !ok {
		return lc
	}
	share := xdpShares(q, customerTag)
	for _, lq := range withMOS(legQuality(q, customerTag), lc.Codec) {
		lc.Legs = append(lc.Legs, LiveLeg{Leg: lq.Leg, Packets: lq.PacketsReceived, Lost: lq.PacketsLost,
			LossPct: 100 * lossRatio(lq), JitterMs: lq.JitterMs, MOS: lq.MOS, XDPShare: share[lq.Leg]})
	}
	return lc
}

// queryMedia asks the relay for the call's media so far (an NG query, at
// most adminQueryTimeout): the reply and the customer leg's tag; false
// when the relay did not answer (logged at debug as what, unless the
// relay just does not know the call yet).
func (s *Server) queryMedia(ctx context.Context, c *call, what string) (ng.QueryReply, string, bool) {
	qctx, cancel := context.WithTimeout(ctx, adminQueryTimeout)
	defer cancel()
	q, err := s.ng.Query(qctx, ng.Query{CallID: c.id, FromTag: c.fromTag}.Dict())
	if err != nil {
		var re *ng.ReplyError
		if !errors.As(err, &re) {
			c.log.Debug().Err(err).Msg(what)
		}
		return ng.QueryReply{}, "", false
	}
	customerTag := c.fromTag
	if !c.p.customerIsA() {
		customerTag, _ = c.tags(false)
	}
	return q, customerTag, true
}

// xdpShares is, per leg (customer, carrier), the share of the RTP packets
// it sent that the XDP fast path forwarded.
func xdpShares(q ng.QueryReply, customerTag string) map[string]float64 {
	out := map[string]float64{}
	for tag, party := range q.Tags {
		var fast, all int64
		for _, m := range party.Medias {
			for _, st := range m.Streams {
				if st.IsRTCP() {
					continue
				}
				fast += max(st.Stats.FastPath, 0)
				all += max(st.Stats.Packets, 0)
			}
		}
		leg := "carrier"
		if tag == customerTag {
			leg = "customer"
		}
		if all > 0 {
			out[leg] = float64(fast) / float64(all)
		}
	}
	return out
}
