package signalling

import (
	"context"
	"fmt"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
)

// mediaOffer asks the relay for the carrier leg's SDP: the customer's
// offer comes in on the customer interface and leaves on the carrier's.
func (s *Server) mediaOffer(ctx context.Context, c *call) ([]byte, error) {
	req := ng.Dict{
		"command":   "offer",
		"call-id":   c.id,
		"from-tag":  c.fromTag,
		"sdp":       string(c.a.InviteRequest.Body()),
		"direction": []any{s.cfg.RelayCustomerIface, s.cfg.RelayCarrierIface},
	}
	return s.ngSDP(ctx, req)
}

// mediaAnswer hands the carrier's SDP to the relay and returns the
// customer leg's.
func (s *Server) mediaAnswer(ctx context.Context, c *call, toTag string, sdp []byte) ([]byte, error) {
	req := ng.Dict{
		"command":  "answer",
		"call-id":  c.id,
		"from-tag": c.fromTag,
		"to-tag":   toTag,
		"sdp":      string(sdp),
	}
	return s.ngSDP(ctx, req)
}

func (s *Server) ngSDP(ctx context.Context, req ng.Dict) ([]byte, error) {
	res, err := s.ng.Do(ctx, req)
	if err != nil {
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

// mediaDelete ends the relay session and returns each leg's quality from
// the reply. A failure is logged, not fatal: the relay's own timeout reaps
// what is left.
func (s *Server) mediaDelete(ctx context.Context, c *call) []store.LegQuality {
	req := ng.Dict{"command": "delete", "call-id": c.id, "from-tag": c.fromTag}
	res, err := s.ng.Do(ctx, req)
	if err != nil {
		c.log.Debug().Err(err).Msg("relay delete")
		return nil
	}
	return legQuality(res, c.fromTag)
}

// legQuality reads rtpengine's delete reply: tags → medias → streams →
// stats, where a tag's RTP stream counts what that party sent to the
// relay. The customer is the offer's from-tag; the carrier is the other.
func legQuality(res ng.Dict, customerTag string) []store.LegQuality {
	tags, _ := res["tags"].(ng.Dict)
	type side struct {
		packets, bytes, lost int64
		jitter               float64
		ok                   bool
	}
	var cust, carr side
	for tag, v := range tags {
		td, _ := v.(ng.Dict)
		sd := side{}
		medias, _ := td["medias"].([]any)
		for _, m := range medias {
			md, _ := m.(ng.Dict)
			streams, _ := md["streams"].([]any)
			for _, st := range streams {
				std, _ := st.(ng.Dict)
				if flags, _ := std["flags"].([]any); len(flags) > 0 && flags[0] == "RTCP" {
					continue
				}
				stats, _ := std["stats"].(ng.Dict)
				sd.packets += num(stats["packets"])
				sd.bytes += num(stats["bytes"])
				sd.lost += num(stats["lost"])
				if j := float64(num(stats["jitter us"])) / 1000; j > sd.jitter {
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

func num(v any) int64 {
	switch n := v.(type) {
	case int64:
		if n > 0 {
			return n
		}
	case int:
		if n > 0 {
			return int64(n)
		}
	}
	return 0
}
