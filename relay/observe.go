package relay

import (
	"fmt"
	"net"
	"time"
)

// What operators see of the relay besides metrics: readiness (/readyz)
// and one log line per call at its end.

// Ready reports whether the relay can carry calls (for /readyz): it is
// not closed and, in xdp mode, every device the program was attached to
// is still there under its name. In userspace mode New returning is
// enough.
func (r *Relay) Ready() error {
	if r.ctx.Err() != nil {
		return fmt.Errorf("%w: closed", ErrNotReady)
	}
	if r.dp == nil {
		return nil
	}
	for _, a := range r.dp.Attachments() {
		ifc, err := net.InterfaceByIndex(a.Ifindex)
		if err != nil || ifc.Name != a.Device {
			return fmt.Errorf("%w: XDP device %s (ifindex %d) is gone", ErrNotReady, a.Device, a.Ifindex)
		}
	}
	return nil
}

// logEnd writes the call's one line at its end: the Call-ID signalling
// logs too (for correlation), why it ended, how long it lasted and the
// packets received from each party (party a: the offer's from-tag), with
// how many of all went through XDP. Caller holds c.mu.
func (r *Relay) logEnd(c *call) {
	var from [2]uint64
	var fast, user, drops uint64
	for _, st := range c.streams {
		for i, e := range st.ep {
			if e == nil {
				continue
			}
			for _, s := range []*sock{e.rtp, e.rtcp} {
				ss := r.sockStats(s)
				from[i] += ss.packets
				fast, user, drops = fast+ss.fast, user+ss.user, drops+ss.drops
			}
		}
	}
	why := c.endReason
	if why == "" {
		why = "delete"
	}
	r.log.Info().Str("call_id", c.id).Str("reason", why).Dur("duration", time.Since(c.created).Round(time.Millisecond)).
		Uint64("packets_from_a", from[0]).Uint64("packets_from_b", from[1]).Uint64("fast_path", fast).Uint64("userspace", user).
		Uint64("drops", drops).Msg("call ended")
}
