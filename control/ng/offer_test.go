package ng

// A G.711 offer as Kamailio's rtpengine module sends it, used by the
// benchmarks, fuzz seeds and tests.

const offerSDP = "v=0\r\n" +
	"o=- 3887741234 3887741234 IN IP4 198.51.100.23\r\n" +
	"s=Yealink SIP-T46U 108.86.0.90\r\n" +
	"c=IN IP4 198.51.100.23\r\n" +
	"t=0 0\r\n" +
	"m=audio 11800 RTP/AVP 0 8 9 18 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:9 G722/8000\r\n" +
	"a=rtpmap:18 G729/8000\r\n" +
	"a=fmtp:18 annexb=no\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-15\r\n" +
	"a=ptime:20\r\n" +
	"a=maxptime:150\r\n" +
	"a=rtcp:11801 IN IP4 198.51.100.23\r\n" +
	"a=ssrc:1815425873 cname:3c7e1a0f9b2d4e6a\r\n" +
	"a=label:0\r\n" +
	"a=sendrecv\r\n" +
	"m=video 0 RTP/AVP 96\r\n" +
	"a=rtpmap:96 H264/90000\r\n" +
	"a=fmtp:96 profile-level-id=42800d;packetization-mode=1\r\n" +
	"a=inactive\r\n" +
	"a=x-alt-desc:codec-preference ulaw,alaw\r\n" +
	"a=x-rtp-session-id:0B2F8C1E64A94C1A9D5E7F3B21C0A9E4\r\n"

// offerMessage is the datagram, keys in Kamailio's (unsorted) order.
func offerMessage() []byte {
	b := []byte("2187_3931468_1 d")
	add := func(k, v string) {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	add("sdp", offerSDP)
	add("call-id", "a84b4c76e66710@pc33.atlanta.example.com")
	list := func(k string, vs ...string) {
		b = appendString(b, k)
		b = append(b, 'l')
		for _, v := range vs {
			b = appendString(b, v)
		}
		b = append(b, 'e')
	}
	list("flags", "trust-address", "symmetric", "loop-protect-codec")
	list("replace", "origin", "session-connection")
	list("rtcp-mux", "demux")
	list("direction", "external", "internal")
	list("received-from", "IP4", "198.51.100.23")
	add("from-tag", "1928301774")
	add("via-branch", "z9hG4bK776asdhds.0")
	add("record call", "no")
	add("command", "offer")
	return append(b, 'e')
}

func offerDict() Dict {
	return Dict{
		"command":       "offer",
		"call-id":       "a84b4c76e66710@pc33.atlanta.example.com",
		"from-tag":      "1928301774",
		"via-branch":    "z9hG4bK776asdhds.0",
		"sdp":           offerSDP,
		"flags":         []any{"trust-address", "symmetric", "loop-protect-codec"},
		"replace":       []any{"origin", "session-connection"},
		"rtcp-mux":      []any{"demux"},
		"direction":     []any{"external", "internal"},
		"received-from": []any{"IP4", "198.51.100.23"},
		"record call":   "no",
	}
}
