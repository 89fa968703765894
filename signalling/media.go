package signalling

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// interfaces are the relay's logical interfaces for the A-leg and the
// B-leg (toward the first of targets), in that order: by role
// (--relay-customer-iface, --relay-carrier-iface), unless
// --relay-interface names the one whose address is the address xtrunk's
// signalling uses toward that leg's peer, so that media and signalling
// leave by the same interface.
func (s *Server) interfaces(ctx context.Context, c *call, targets []route.Target[dest]) []string {
	a, b := s.cfg.RelayCustomerIface, s.cfg.RelayCarrierIface
	if !c.p.customerIsA() {
		a, b = b, a
	}
	if len(s.relayIfaces) == 0 {
		return []string{a, b}
	}
	if c.aUA != nil {
		if n, ok := s.relayIfaces[c.aUA.ContactHDR.Address.Host]; ok {
			a = n
		}
	}
	if len(targets) > 0 {
		d := targets[0].Value
		if n, ok := s.relayIfaces[s.selfHost(d.transport, s.peerOfDest(ctx, d))]; ok {
			b = n
		}
	}
	return []string{a, b}
}

// latching sets the NG flag for a party's leg: a customer on a trunk
// with Symmetric RTP gets its media where its RTP comes from (NAT);
// everyone else gets it where their SDP says (REQUIREMENTS §5).
func latching(c *call, customer bool, f *ng.Flags) {
	if customer && c.p.trunk.SymmetricRTPEnabled {
		f.Symmetric = true
		return
	}
	f.Asymmetric = true
}

// toward sets the NG options that shape the SDP the relay writes for the
// party that receives it: SRTP (AES_CM_128_HMAC_SHA1_80 only) toward the
// customer of a Secure trunk, plain RTP toward everyone else.
func toward(c *call, p *ng.Params, customer bool) {
	if customer && c.p.trunk.Secure {
		p.TransportProtocol = "RTP/SAVP"
		p.SDES = sdesOnly80
		return
	}
	p.TransportProtocol = "RTP/AVP"
}

// sdesOnly80 makes the relay offer AES_CM_128_HMAC_SHA1_80 alone
// (REQUIREMENTS §5): "only-" for relays that know it (xtrunk's), and
// "no-" for every other suite for those that do not (Debian's rtpengine
// 10.5 ignores "only-" and offers all eleven).
var sdesOnly80 = ng.SDES{Only: []string{"AES_CM_128_HMAC_SHA1_80"}, No: []string{
	"AES_CM_128_HMAC_SHA1_32", "AES_192_CM_HMAC_SHA1_80", "AES_192_CM_HMAC_SHA1_32",
	"AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM",
	"F8_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_32", "NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32"}}

// mediaOffer asks the relay for the B-leg's SDP: the A-leg's offer comes
// in on the A-leg's interface and leaves on the B-leg's (toward the first
// of targets).
func (s *Server) mediaOffer(ctx context.Context, c *call, targets []route.Target[dest]) ([]byte, error) {
	return s.offerAnswer(ctx, c, false, c.fromTag, "", c.aSrc, c.a.InviteRequest.Body(), c.p.customerIsA(), s.interfaces(ctx, c, targets))
}

// mediaAnswer hands the B-leg's SDP (toTag is its To tag; peer where it
// came from, zero for an SDP the edge made) to the relay and returns the
// A-leg's.
func (s *Server) mediaAnswer(ctx context.Context, c *call, toTag string, peer netip.Addr, sdp []byte) ([]byte, error) {
	return s.offerAnswer(ctx, c, true, c.fromTag, toTag, peer, sdp, !c.p.customerIsA(), nil)
}

// mediaReoffer passes a re-INVITE's offer from one leg (fromA; peer where
// it came from) to the relay and returns the SDP for the other leg.
func (s *Server) mediaReoffer(ctx context.Context, c *call, fromA bool, peer netip.Addr, sdp []byte) ([]byte, error) {
	from, to := c.tags(fromA)
	return s.offerAnswer(ctx, c, false, from, to, peer, sdp, fromA == c.p.customerIsA(), nil)
}

// mediaReanswer passes the answer (from peer) to a re-INVITE sent by
// fromA and returns the SDP for fromA.
func (s *Server) mediaReanswer(ctx context.Context, c *call, fromA bool, peer netip.Addr, sdp []byte) ([]byte, error) {
	from, to := c.tags(fromA)
	return s.offerAnswer(ctx, c, true, from, to, peer, sdp, fromA != c.p.customerIsA(), nil)
}

// offerAnswer sends the relay an NG offer or answer: sdp is the party's
// whose tag is from (offer) or to (answer); byCustomer says whether that
// party is the customer (its latching flag; an offer's SDP goes to the
// other party, shaped by toward); direction names the interfaces on a
// call's first offer. peer is where the SDP came from: a peer elsewhere
// naming the edge's own addresses is refused (sdpaddr.go) before the
// relay sees it.
func (s *Server) offerAnswer(ctx context.Context, c *call, isAnswer bool, from, to string, peer netip.Addr, sdp []byte, byCustomer bool, direction []string) ([]byte, error) {
	if a := s.sdpSelfAddr(peer, sdp); a.IsValid() {
		return nil, fmt.Errorf("%w: %v, from %v", ErrSDPSelfAddr, a, peer)
	}
	p := ng.Params{CallID: c.id, FromTag: from, ToTag: to, SDP: string(sdp), Direction: direction,
		Replace: ng.Replace{Origin: true, SessionConnection: true}}
	latching(c, byCustomer, &p.Flags)
	if isAnswer {
		return s.ngSDP(ctx, ng.Answer{Params: p}.Dict())
	}
	toward(c, &p, !byCustomer)
	return s.ngSDP(ctx, ng.Offer{Params: p}.Dict())
}

// tags are the relay's (from-tag, to-tag) for an offer sent by the A-leg
// (fromA) or by the B-leg.
func (c *call) tags(fromA bool) (string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fromA {
		return c.fromTag, c.bTag
	}
	return c.bTag, c.fromTag
}

func (s *Server) ngSDP(ctx context.Context, req ng.Dict) ([]byte, error) {
	res, err := s.ng.Do(ctx, req)
	if err != nil { // an *ng.ReplyError stays visible: relayRefusal maps its class
		return nil, fmt.Errorf("relay %s: %w", req["command"], err)
	}
	switch v := res["sdp"].(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	}
	return nil, fmt.Errorf("relay %s: reply without sdp", req["command"])
}

// sdpEncrypted reports whether every audio stream of an SDP body is SRTP
// (RTP/SAVP or RTP/SAVPF) with an a=crypto line.
func sdpEncrypted(body []byte) bool {
	audio, crypto := 0, false
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			f := strings.Fields(line[2:])
			if len(f) < 3 || f[0] != "audio" {
				continue
			}
			if f[1] == "0" {
				continue // rejected stream
			}
			if !strings.HasPrefix(strings.ToUpper(f[2]), "RTP/SAVP") {
				return false
			}
			audio++
		case strings.HasPrefix(line, "a=crypto:"):
			crypto = true
		}
	}
	return audio > 0 && crypto
}

// startRecording asks the relay to record the call (once), mono or dual
// per the trunk's recording mode, trimmed per its recording trim.
func (s *Server) startRecording(ctx context.Context, c *call) {
	c.mu.Lock()
	if c.recording {
		c.mu.Unlock()
		return
	}
	c.recording = true
	c.mu.Unlock()
	channels := "mono"
	if strings.HasSuffix(c.p.trunk.RecordingMode, "-dual") {
		channels = "dual"
	}
	req := ng.StartRecording{CallID: c.id, FromTag: c.fromTag, Channels: channels, TrimSilence: c.p.trunk.RecordingTrim == "trim-silence"}
	if _, err := s.ng.Do(ctx, req.Dict()); err != nil {
		c.log.Error().Err(err).Msg("relay did not start recording")
		return
	}
	c.mu.Lock()
	c.recStart = time.Now()
	c.mu.Unlock()
}

// mediaIdle asks the relay how long the call's media has been silent in
// both directions; gone is true when the relay no longer has the call.
func (s *Server) mediaIdle(ctx context.Context, c *call) (idle time.Duration, gone bool, err error) {
	q, err := s.ng.Query(ctx, ng.Query{CallID: c.id, FromTag: c.fromTag}.Dict())
	var re *ng.ReplyError
	if errors.As(err, &re) && re.Class == ng.ClassUnknownCall {
		return 0, true, nil // "Unknown call-id": the relay timed it out itself
	}
	if err != nil {
		return 0, false, err
	}
	last := max(q.Created, 0)
	for _, party := range q.Tags {
		for _, m := range party.Medias {
			for _, st := range m.Streams {
				if st.Stats.Packets > 0 && st.LastPacket > last {
					last = st.LastPacket
				}
			}
		}
	}
	if last == 0 {
		return 0, false, nil
	}
	// "last packet" is in whole seconds: the packet came during that
	// second, so count the silence from its end, or a call could be
	// ended up to a second before its media timeout.
	return time.Since(time.Unix(last+1, 0)), false, nil
}

// watchMedia ends an answered call whose media stopped in both directions
// for the media timeout (REQUIREMENTS §4), polling the relay. A timer
// whose callback re-arms it, stopped when the call's context ends: no
// goroutine parked per call between polls.
func (c *call) watchMedia() {
	timeout := c.s.settings().cfg.MediaTimeout
	if timeout <= 0 {
		return
	}
	every := min(timeout/4, 5*time.Second)
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		if c.ctx.Err() != nil {
			return // the call is over
		}
		ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		idle, gone, err := c.s.mediaIdle(ctx, c)
		cancel()
		switch {
		case err != nil:
			c.log.Debug().Err(err).Msg("relay query") // a relay hiccup is not a verdict on the call
		case gone || idle >= timeout:
			c.log.Info().Dur("idle", idle).Bool("relay_gone", gone).Msg("media timeout")
			c.closeWith(endedBy(hangupSystem, 0, reasonMediaTimeout))
			return
		}
		t.Reset(every)
	})
	context.AfterFunc(c.ctx, func() { t.Stop() })
}

// deleted is what the relay's delete reply says about a finished call.
type deleted struct {
	quality   []store.LegQuality
	recording *ng.Recording // the relay's "recording" entry, nil when none
}

// mediaDelete ends the relay session and returns each leg's quality and
// the recording from the reply. A failure is logged, not fatal: the
// relay's own timeout reaps what is left.
func (s *Server) mediaDelete(ctx context.Context, c *call) deleted {
	q, err := s.ng.Query(ctx, ng.Delete{CallID: c.id, FromTag: c.fromTag}.Dict())
	if err != nil {
		c.log.Debug().Err(err).Msg("relay delete")
		return deleted{}
	}
	customerTag := c.fromTag
	if !c.p.customerIsA() {
		customerTag, _ = c.tags(false)
	}
	return deleted{quality: legQuality(q, customerTag), recording: q.Recording}
}

// legQuality reads rtpengine's delete reply: tags → medias → streams →
// stats, where a tag's RTP stream counts what that party sent to the
// relay. customerTag is the customer's; the carrier is the other.
func legQuality(q ng.QueryReply, customerTag string) []store.LegQuality {
	type side struct {
		packets, bytes, lost int64
		jitter               float64
		ok                   bool
	}
	var cust, carr side
	for tag, party := range q.Tags {
		sd := side{}
		for _, m := range party.Medias {
			for _, st := range m.Streams {
				if st.IsRTCP() {
					continue
				}
				sd.packets += max(st.Stats.Packets, 0)
				sd.bytes += max(st.Stats.Bytes, 0)
				sd.lost += max(st.Stats.Lost, 0)
				if j := float64(max(st.Stats.JitterUs, 0)) / 1000; j > sd.jitter {
					sd.jitter = j
				}
				sd.ok = true
			}
		}
		if tag == customerTag {
			cust = sd
		} else if sd.ok {
			carr = sd
		}
	}
	if !cust.ok && !carr.ok {
		return nil
	}
	return []store.LegQuality{
		{Leg: "customer", PacketsReceived: uint64(cust.packets), BytesReceived: uint64(cust.bytes),
			PacketsSent: uint64(carr.packets), BytesSent: uint64(carr.bytes), PacketsLost: cust.lost, JitterMs: cust.jitter},
		{Leg: "carrier", PacketsReceived: uint64(carr.packets), BytesReceived: uint64(carr.bytes),
			PacketsSent: uint64(cust.packets), BytesSent: uint64(cust.bytes), PacketsLost: carr.lost, JitterMs: carr.jitter},
	}
}
