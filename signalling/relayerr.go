package signalling

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/ng"
)

// relayRetryAfter is the Retry-After of a 503 for a relay that is out of
// capacity or unreachable: long enough for a relay restart or a port pair
// to free up, short enough that a PBX does not give up on the trunk.
const relayRetryAfter = 10 * time.Second

// relayRefusal is the SIP answer to a failed NG command, by the error's
// class (ng.ClassOf): the caller's SDP (488), the relay's capacity (503
// with Retry-After), a call the relay does not know (481 in a dialog, 500
// otherwise: the edge lost track), anything else the relay refused (500),
// and a relay that did not answer at all (503 with Retry-After).
func relayRefusal(err error, inDialog bool) (int, string, []sip.Header) {
	retry := []sip.Header{sip.NewHeader("Retry-After", strconv.Itoa(int(relayRetryAfter/time.Second)))}
	if errors.Is(err, ErrSDPSelfAddr) {
		return 488, "Not Acceptable Here", nil
	}
	var re *ng.ReplyError
	if !errors.As(err, &re) {
		return 503, "Media Relay Unavailable", retry
	}
	switch re.Class {
	case ng.ClassBadSDP:
		return 488, "Not Acceptable Here", nil
	case ng.ClassNoCapacity:
		return 503, "Media Relay Out Of Capacity", retry
	case ng.ClassUnknownCall:
		if inDialog {
			return 481, "Call/Transaction Does Not Exist", nil
		}
	}
	return 500, "Server Internal Error", nil
}

// How the relay's health is watched for xtrunk_sip_relay_up.
const (
	relayPingEvery   = 2 * time.Second
	relayPingTimeout = 2 * time.Second
	relayUpWithin    = 5 * time.Second // a pong older than this: down
)

// watchRelay pings the relay every relayPingEvery until ctx ends,
// recording the last pong for relayUp.
func (s *Server) watchRelay(ctx context.Context) {
	t := time.NewTicker(relayPingEvery)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, relayPingTimeout)
		res, err := s.ng.Do(pctx, ng.Ping{}.Dict())
		cancel()
		if err == nil && res.Str("result") == "pong" {
			s.relayPong.Store(time.Now().UnixNano())
		} else if ctx.Err() == nil {
			s.log.Debug().Err(err).Msg("relay ping failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relayUp reports whether the relay answered a ping within relayUpWithin.
func (s *Server) relayUp() bool {
	last := s.relayPong.Load()
	return last != 0 && time.Since(time.Unix(0, last)) <= relayUpWithin
}
