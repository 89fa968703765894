package signalling

import (
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// A peer's SDP tells the relay where to send media. A peer elsewhere that
// names loopback or one of the edge's own addresses (the relay's media
// or NG port, the SIP port, the API) would have the relay send a call's
// media into the edge itself: a loop, or a feed into a local service.
// rtpengine does no such check and Kamailio scripts add it; the edge
// refuses such a body with 488, as it refuses a body the relay cannot
// use. A peer on the edge's own host (a co-located PBX, its SIP from
// loopback or an edge address) may name them. 0.0.0.0 is hold (RFC 3264),
// never refused. The relay refuses its own ports on a local address in
// any case (relay/spoof.go).

// sdpAddrs returns the addresses an SDP body's c= lines and a=rtcp
// attributes name (RFC 4566, RFC 3605), unparsable ones skipped.
func sdpAddrs(body []byte) []netip.Addr {
	var out []netip.Addr
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, "\r")
		var f []string
		switch {
		case strings.HasPrefix(line, "c="):
			f = strings.Fields(line[2:]) // IN IP4 addr[/ttl[/n]]
			if len(f) < 3 {
				continue
			}
			f = f[2:]
		case strings.HasPrefix(line, "a=rtcp:"):
			f = strings.Fields(line[len("a=rtcp:"):]) // port [IN IP4 addr]
			if len(f) < 4 {
				continue
			}
			f = f[3:]
		default:
			continue
		}
		host, _, _ := strings.Cut(f[0], "/")
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// sdpSelfAddr returns the first address of body that is the edge's own
// (loopback, an address of this host or of the relay; hold's 0.0.0.0
// excepted) when peer, the SDP's sender, is not on the edge's host;
// otherwise the zero Addr. An unknown peer (an SDP the edge made) is not
// checked.
func (s *Server) sdpSelfAddr(peer netip.Addr, body []byte) netip.Addr {
	if !peer.IsValid() || s.isOwnAddr(peer) {
		return netip.Addr{}
	}
	for _, a := range sdpAddrs(body) {
		if !a.IsUnspecified() && s.isOwnAddr(a) {
			return a
		}
	}
	return netip.Addr{}
}

// msgSource is where a SIP message came from; the zero Addr if unknown.
func msgSource(m sip.Message) netip.Addr {
	if m == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(m.Source())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
