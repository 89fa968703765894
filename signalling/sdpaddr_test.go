package signalling

import (
	"net/netip"
	"strings"
	"testing"
)

// A peer elsewhere may not name loopback or the edge's own addresses as
// its media (c= or a=rtcp); hold (0.0.0.0) and a co-located peer may.
func TestSDPSelfAddr(t *testing.T) {
	s := &Server{}
	remote := netip.MustParseAddr("198.18.1.3")
	sdp := func(c, rtcp string) []byte {
		b := "v=0\r\no=- 1 1 IN IP4 198.18.1.3\r\ns=-\r\nc=IN IP4 " + c + "\r\nt=0 0\r\nm=audio 5060 RTP/AVP 8\r\n"
		if rtcp != "" {
			b += "a=rtcp:" + rtcp + "\r\n"
		}
		return []byte(b)
	}
	for _, tc := range []struct {
		name string
		peer netip.Addr
		body []byte
		want string // "" = accepted
	}{
		{"remote, loopback", remote, sdp("127.0.0.1", ""), "127.0.0.1"},
		{"remote, loopback /8", remote, sdp("127.9.9.9", ""), "127.9.9.9"},
		{"remote, rtcp loopback", remote, sdp("198.18.1.3", "5061 IN IP4 127.0.0.1"), "127.0.0.1"},
		{"remote, IPv6 loopback", remote, []byte("c=IN IP6 ::1\r\nm=audio 5060 RTP/AVP 0\r\n"), "::1"},
		{"remote, own address", remote, sdp("198.18.1.3", ""), ""},
		{"remote, hold", remote, sdp("0.0.0.0", ""), ""},
		{"co-located peer, loopback", netip.MustParseAddr("127.0.0.1"), sdp("127.0.0.1", ""), ""},
		{"edge's own SDP", netip.Addr{}, sdp("127.0.0.1", ""), ""},
		{"not SDP", remote, []byte("this is not SDP\r\n"), ""},
	} {
		got := s.sdpSelfAddr(tc.peer, tc.body)
		if (tc.want == "" && got.IsValid()) || (tc.want != "" && got.String() != tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, got, tc.want)
		}
	}
}

// sdpAddrs never panics, and every address it returns is written in the
// body.
func FuzzSDPAddrs(f *testing.F) {
	f.Add([]byte("v=0\r\nc=IN IP4 127.0.0.1/127/2\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:2 IN IP6 ::1\r\n"))
	f.Add([]byte("c=\r\na=rtcp:\r\nc=IN IP4\r\na=rtcp:1 IN IP4\r\n"))
	f.Add([]byte("c=IN IP4 ::ffff:127.0.0.1\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range sdpAddrs(body) {
			if !a.IsValid() {
				t.Fatalf("invalid address from %q", body)
			}
			if a.Is4() && !strings.Contains(string(body), a.String()) && !strings.Contains(string(body), "::ffff:") {
				t.Fatalf("%v is not in %q", a, body)
			}
		}
	})
}
