package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
)

// relayParty is one party of a call as the relay sees it: where the
// relay listens for that party's RTP (what the SDP sent to the party
// names) and what it has received from the party.
type relayParty struct {
	tag        string
	advertised netip.Addr     // the address the party's SDP gave (c=)
	local      netip.AddrPort // the relay's socket facing the party
	packets    int64          // RTP received from the party
	fast, user int64          // of which forwarded by XDP / by the relay's userspace
}

// relayCall reads one call from the relay over NG (query): its RTP
// stream per party. RTCP streams are left out.
func relayCall(ctx context.Context, c *ng.Client, id string) (map[string]relayParty, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := c.Do(ctx, ng.Dict{"command": "query", "call-id": id})
	if err != nil {
		return nil, err
	}
	out := map[string]relayParty{}
	ng.Streams(r, func(tag string, sd ng.Dict, rtcp bool) {
		if rtcp {
			return
		}
		p := relayParty{tag: tag}
		port, _ := sd.Int("local port")
		if a, err := netip.ParseAddr(sd.Str("local address")); err == nil {
			p.local = netip.AddrPortFrom(a, uint16(port))
		}
		p.advertised, _ = netip.ParseAddr(sd.Dict("advertised endpoint").Str("address"))
		st := sd.Dict("stats")
		p.packets, _ = st.Int("packets")
		p.fast, _ = st.Int("fast path")
		p.user, _ = st.Int("userspace")
		out[tag] = p
	})
	return out, nil
}

// findRelayCall waits until the relay holds one call with both parties'
// SDP (the offer and the answer went through) and returns its id and the
// parties facing a and b (by the addresses their SDP gave). The demo
// places one call at a time, so the relay's only call is it. done ends
// the wait early (the caller's SIP peer gave up).
func findRelayCall(ctx context.Context, c *ng.Client, a, b netip.Addr, done <-chan struct{}) (id string, pa, pb relayParty, err error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := c.Do(lctx, ng.Dict{"command": "list"})
		cancel()
		if err == nil {
			for _, id := range r.Strings("calls") {
				parties, err := relayCall(ctx, c, id)
				if err != nil {
					continue
				}
				var okA, okB bool
				for _, p := range parties {
					switch p.advertised {
					case a:
						pa, okA = p, true
					case b:
						pb, okB = p, true
					}
				}
				if okA && okB {
					return id, pa, pb, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", pa, pb, fmt.Errorf("the relay has no call between %s and %s after 15 s (list: %v)", a, b, err)
		}
		select {
		case <-ctx.Done():
			return "", pa, pb, ctx.Err()
		case <-done:
			return "", pa, pb, fmt.Errorf("the call ended before it was answered")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fastShare is the share of a party's packets the XDP program forwarded.
func (p relayParty) fastShare() float64 {
	if p.packets == 0 {
		return 0
	}
	return float64(p.fast) / float64(p.packets)
}
