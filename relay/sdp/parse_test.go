package sdp

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readSDP(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, b []byte) *Session {
	t.Helper()
	s, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, b)
	}
	return s
}

// mediaView is what a relay reads off a media section.
type mediaView struct {
	Type      string
	Port      int
	NumPorts  int
	Proto     string
	Formats   string
	Conn      string
	RTCPPort  int
	RTCPAddr  string
	RTCPMux   bool
	Direction string
	PTs       []uint8
	Attrs     int
}

func viewOf(m *Media) mediaView {
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	return mediaView{
		Type: m.Type, Port: m.Port, NumPorts: m.NumPorts, Proto: m.Proto,
		Formats: strings.Join(m.Formats, " "), Conn: addr(m.Conn),
		RTCPPort: m.RTCPPort, RTCPAddr: addr(m.RTCPAddr), RTCPMux: m.RTCPMux,
		Direction: m.Direction, PTs: m.PayloadTypes(), Attrs: len(m.Attrs),
	}
}

func TestParseRealWorld(t *testing.T) {
	tests := []struct {
		file       string
		origin     Origin
		conn       string // session level
		eol        string
		sessAttrs  int
		media      []mediaView
		extraCheck func(t *testing.T, s *Session)
	}{{
		file:   "kamailio_g711.sdp",
		origin: Origin{"user1", "53655765", "2353687637", "IN", "IP4", "192.0.2.10"},
		conn:   "192.0.2.10", eol: "\r\n",
		media: []mediaView{{"audio", 6000, 1, "RTP/AVP", "0 8 101", "192.0.2.10", 6001, "192.0.2.10", false, "sendrecv", []uint8{0, 8, 101}, 6}},
		extraCheck: func(t *testing.T, s *Session) {
			m := s.Media[0]
			if got := m.AttrValues("rtpmap"); !reflect.DeepEqual(got, []string{"0 PCMU/8000", "8 PCMA/8000", "101 telephone-event/8000"}) {
				t.Errorf("rtpmap values = %q", got)
			}
			if a := m.Attrs[5]; a.Key != "sendrecv" || a.HasValue || a.Value != "" {
				t.Errorf("flag attribute = %+v", a)
			}
		},
	}, {
		file:   "asterisk_offer.sdp",
		origin: Origin{"-", "1683714005", "1683714005", "IN", "IP4", "198.51.100.20"},
		conn:   "198.51.100.20", eol: "\r\n",
		media: []mediaView{{"audio", 17526, 1, "RTP/AVP", "9 0 8 3 101", "198.51.100.20", 17527, "198.51.100.20", false, "sendrecv", []uint8{9, 0, 8, 3, 101}, 9}},
		extraCheck: func(t *testing.T, s *Session) {
			m := s.Media[0]
			if v, ok := m.Attr("ptime"); !ok || v != "20" {
				t.Errorf("ptime = %q, %v", v, ok)
			}
			if v, ok := m.Attr("fmtp"); !ok || v != "101 0-16" {
				t.Errorf("fmtp = %q, %v", v, ok)
			}
			if _, ok := m.Attr("rtcp"); ok {
				t.Error("rtcp found where there is none")
			}
		},
	}, {
		file:   "audio_video.sdp",
		origin: Origin{"linphone", "3141", "2718", "IN", "IP4", "203.0.113.5"},
		conn:   "203.0.113.5", eol: "\r\n", sessAttrs: 1,
		media: []mediaView{
			{"audio", 7078, 1, "RTP/AVP", "96 0 8 101", "203.0.113.5", 7079, "203.0.113.5", false, "sendrecv", []uint8{96, 0, 8, 101}, 4},
			{"video", 9078, 1, "RTP/AVP", "96 97", "203.0.113.5", 9079, "203.0.113.5", false, "sendrecv", []uint8{96, 97}, 7},
		},
		extraCheck: func(t *testing.T, s *Session) {
			if v, _ := s.Attr("rtcp-xr"); v != "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics" {
				t.Errorf("session rtcp-xr = %q", v)
			}
			if _, ok := s.Media[1].Attr("x-unknown-vendor-thing"); !ok {
				t.Error("unknown attribute lost")
			}
		},
	}, {
		file:   "ipv6.sdp",
		origin: Origin{"-", "20518", "0", "IN", "IP6", "2001:db8::10"},
		conn:   "2001:db8::10", eol: "\r\n",
		media: []mediaView{{"audio", 40000, 1, "RTP/AVP", "0 18 101", "2001:db8::10", 40011, "2001:db8::11", false, "recvonly", []uint8{0, 18, 101}, 6}},
	}, {
		file:   "rtcp_attr.sdp",
		origin: Origin{"-", "2890844526", "2890842807", "IN", "IP4", "126.16.64.4"},
		conn:   "224.2.17.12", eol: "\r\n", sessAttrs: 1,
		media: []mediaView{
			{"audio", 49170, 1, "RTP/AVP", "0", "126.16.64.4", 53020, "126.16.64.4", false, "recvonly", []uint8{0}, 1},
			{"video", 51372, 1, "RTP/AVP", "99", "126.16.64.4", 53021, "126.16.64.5", false, "recvonly", []uint8{99}, 2},
		},
	}, {
		file:   "webrtc_ice_mux.sdp",
		origin: Origin{"-", "4611731400430051336", "2", "IN", "IP4", "127.0.0.1"},
		eol:    "\r\n", sessAttrs: 5,
		media: []mediaView{{"audio", 54400, 1, "UDP/TLS/RTP/SAVPF", "111 63 9 0 8 13 110 126", "203.0.113.141", 9, "0.0.0.0", true, "sendrecv", []uint8{111, 63, 9, 0, 8, 13, 110, 126}, 27}},
		extraCheck: func(t *testing.T, s *Session) {
			if got := len(s.Media[0].AttrValues("candidate")); got != 3 {
				t.Errorf("candidates = %d", got)
			}
		},
	}, {
		file:   "srtp_two_crypto.sdp",
		origin: Origin{"FreeSWITCH", "1683700000", "1683700001", "IN", "IP4", "192.0.2.50"},
		conn:   "192.0.2.50", eol: "\r\n",
		media: []mediaView{{"audio", 23456, 1, "RTP/SAVP", "0 8 101", "192.0.2.50", 23457, "192.0.2.50", false, "sendrecv", []uint8{0, 8, 101}, 8}},
		extraCheck: func(t *testing.T, s *Session) {
			cs, err := s.Media[0].Cryptos()
			if err != nil || len(cs) != 2 {
				t.Fatalf("Cryptos = %d, %v", len(cs), err)
			}
			if cs[0].Tag != 1 || cs[0].Suite != "AES_CM_128_HMAC_SHA1_80" || cs[1].Tag != 2 || cs[1].Suite != "AES_CM_128_HMAC_SHA1_32" {
				t.Errorf("cryptos = %+v", cs)
			}
			if len(cs[1].KeyParams[0].Key) != 30 {
				t.Errorf("key length %d", len(cs[1].KeyParams[0].Key))
			}
		},
	}, {
		file:   "session_conn.sdp",
		origin: Origin{"-", "8000", "8001", "IN", "IP4", "192.0.2.77"},
		conn:   "192.0.2.77", eol: "\r\n", sessAttrs: 1,
		media: []mediaView{
			{"audio", 30000, 1, "RTP/AVP", "8 101", "192.0.2.77", 30001, "192.0.2.77", false, "sendonly", []uint8{8, 101}, 2},
			{"video", 0, 1, "RTP/AVP", "96", "192.0.2.77", 0, "192.0.2.77", false, "sendonly", []uint8{96}, 1},
		},
	}, {
		file:   "media_conn.sdp",
		origin: Origin{"sbc", "11", "22", "IN", "IP4", "sbc.example.net"},
		eol:    "\r\n",
		media: []mediaView{
			{"audio", 20000, 1, "RTP/AVP", "0", "198.51.100.1", 20001, "198.51.100.1", false, "sendrecv", []uint8{0}, 1},
			{"audio", 20002, 1, "RTP/AVP", "8", "198.51.100.2", 20003, "198.51.100.2", false, "inactive", []uint8{8}, 2},
		},
	}, {
		file:   "lf_only.sdp",
		origin: Origin{"-", "3", "4", "IN", "IP4", "192.0.2.99"},
		conn:   "192.0.2.99", eol: "\n",
		media: []mediaView{{"audio", 4000, 1, "RTP/AVP", "0 101", "192.0.2.99", 4001, "192.0.2.99", false, "sendrecv", []uint8{0, 101}, 3}},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s := mustParse(t, readSDP(t, tt.file))
			if s.Origin != tt.origin {
				t.Errorf("origin = %+v, want %+v", s.Origin, tt.origin)
			}
			if got := s.Conn; (tt.conn == "") == got.IsValid() || (tt.conn != "" && got.String() != tt.conn) {
				t.Errorf("session conn = %v, want %q", got, tt.conn)
			}
			if s.eol != tt.eol {
				t.Errorf("eol = %q, want %q", s.eol, tt.eol)
			}
			if len(s.Attrs) != tt.sessAttrs {
				t.Errorf("session attrs = %d, want %d", len(s.Attrs), tt.sessAttrs)
			}
			var got []mediaView
			for _, m := range s.Media {
				got = append(got, viewOf(m))
			}
			if !reflect.DeepEqual(got, tt.media) {
				t.Errorf("media:\n got %+v\nwant %+v", got, tt.media)
			}
			if tt.extraCheck != nil {
				tt.extraCheck(t, s)
			}
		})
	}
}

// oddInputs are accepted shapes that a careless rewriter would normalise.
var oddInputs = map[string]string{
	"no final line ending": "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv",
	"mixed line endings":   "v=0\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\nc=IN IP4 192.0.2.1\r\nt=0 0\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\n",
	"blank lines":          "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n\r\n\r\n",
	"trailing whitespace":  "v=0 \r\no=- 1 1 IN IP4 192.0.2.1  \r\ns= \r\nc=IN IP4 192.0.2.1\t\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 \r\na=sendrecv \r\na=ptime:20\t\r\n",
	"extra spaces":         "v=0\r\no=-  1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN  IP4 192.0.2.1\r\nt=0 0\r\nm=audio  4000  RTP/AVP  0   8\r\n",
	"attributes out of order": "v=0\r\na=tool:x\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nc=IN IP4 192.0.2.1\r\n" +
		"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nb=AS:64\r\nc=IN IP4 192.0.2.2\r\na=ptime:20\r\nk=prompt\r\n",
	"port/num and empty values":  "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000/2 RTP/AVP 0\r\na=\r\na=:\r\na=x:\r\na=fmtp:0 a:b:c\r\n",
	"multicast ttl":              "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 224.2.1.1/127/3\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP6 ff15::101/3\r\n",
	"disabled stream without c=": "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
	"no media":                   "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n",
}

func TestRoundTripByteIdentical(t *testing.T) {
	files, err := filepath.Glob("testdata/*.sdp")
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata: %v, %d files", err, len(files))
	}
	inputs := map[string][]byte{}
	for _, f := range files {
		inputs[f] = readSDP(t, filepath.Base(f))
	}
	for name, in := range oddInputs {
		inputs[name] = []byte(in)
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			s := mustParse(t, in)
			if out := s.AppendMarshal(nil); !bytes.Equal(out, in) {
				t.Errorf("round trip changed the SDP:\n got %q\nwant %q", out, in)
			}
			// Appends, rather than overwrites.
			if out := s.AppendMarshal([]byte("X")); !bytes.Equal(out[1:], in) || out[0] != 'X' {
				t.Errorf("AppendMarshal did not append")
			}
			// Setting fields to what they already are changes nothing.
			for _, m := range s.Media {
				m.SetPort(m.Port)
				m.SetProto(m.Proto)
				if v, ok := m.Attr("rtpmap"); ok {
					m.SetAttr("rtpmap", v)
				}
			}
			if out := s.AppendMarshal(nil); !bytes.Equal(out, in) {
				t.Errorf("no-op edits changed the SDP:\n got %q\nwant %q", out, in)
			}
		})
	}
}

func TestParseOddInputsFields(t *testing.T) {
	s := mustParse(t, []byte(oddInputs["trailing whitespace"]))
	if s.Origin.Addr != "192.0.2.1" || s.Conn != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("origin %+v conn %v", s.Origin, s.Conn)
	}
	m := s.Media[0]
	if m.Direction != "sendrecv" || m.Attrs[0].Key != "sendrecv" {
		t.Errorf("trailing space kept in key: %+v", m.Attrs)
	}
	if v, _ := m.Attr("ptime"); v != "20" {
		t.Errorf("ptime = %q", v)
	}

	s = mustParse(t, []byte(oddInputs["port/num and empty values"]))
	m = s.Media[0]
	if m.Port != 4000 || m.NumPorts != 2 {
		t.Errorf("port %d/%d", m.Port, m.NumPorts)
	}
	want := []Attr{{Key: ""}, {Key: "", HasValue: true}, {Key: "x", HasValue: true}, {Key: "fmtp", Value: "0 a:b:c", HasValue: true}}
	for i, a := range m.Attrs {
		a.raw = ""
		if a != want[i] {
			t.Errorf("attr %d = %+v, want %+v", i, a, want[i])
		}
	}

	s = mustParse(t, []byte(oddInputs["multicast ttl"]))
	if s.Conn.String() != "224.2.1.1" || s.Media[0].Conn.String() != "ff15::101" {
		t.Errorf("multicast conns %v %v", s.Conn, s.Media[0].Conn)
	}

	s = mustParse(t, []byte(oddInputs["attributes out of order"]))
	if v, _ := s.Attr("tool"); v != "x" || s.Media[0].Conn.String() != "192.0.2.2" {
		t.Errorf("session tool %q, media conn %v", v, s.Media[0].Conn)
	}
}

func TestPayloadTypes(t *testing.T) {
	for _, tt := range []struct {
		proto, fmts string
		want        []uint8
	}{
		{"RTP/AVP", "0 8 101", []uint8{0, 8, 101}},
		{"RTP/SAVPF", "96 128 abc 127 0127 -1", []uint8{96, 127}},
		{"UDP/TLS/RTP/SAVPF", "111", []uint8{111}},
		{"udp", "0 8", nil},
		{"DTLS/SCTP", "5000", nil},
		{"UDP/BFCP", "*", nil},
	} {
		m := &Media{Proto: tt.proto, Formats: strings.Fields(tt.fmts)}
		if got := m.PayloadTypes(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %q: PayloadTypes = %v, want %v", tt.proto, tt.fmts, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	for _, tt := range []struct {
		name, in string
		want     error
		line     string // expected in the message, if any
	}{
		{"empty", "", ErrNoVersion, ""},
		{"missing v=", "o=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n", ErrNoVersion, ""},
		{"v=1", "v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", ErrNoVersion, ""},
		{"leading blank line", "\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", ErrNoVersion, ""},
		{"v= again", head + "v=0\r\n", ErrBadLine, "line 6"},
		{"garbage", "v=0\r\nthis is not sdp\r\n", ErrBadLine, "line 2"},
		{"binary", "v=0\r\n\x00\xff\xfe=\r\n", ErrBadLine, "line 2"},
		{"uppercase type", "v=0\r\nO=- 1 1 IN IP4 192.0.2.1\r\n", ErrBadLine, "line 2"},
		{"spaced type", "v=0\r\no = - 1 1 IN IP4 192.0.2.1\r\n", ErrBadLine, "line 2"},
		{"bare CR", head + "a=foo:x\rc=IN IP4 6.6.6.6\r\n", ErrBadLine, "line 6"},
		{"trailing bare CR", head + "m=audio 1 RTP/AVP 0\r", ErrBadLine, "line 6"},
		{"NUL", head + "a=fo\x00o\r\n", ErrBadLine, "line 6"},
		{"missing o=", "v=0\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n", ErrNoOrigin, ""},
		{"missing s=", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n", ErrNoSessionName, ""},
		{"bad o= five fields", "v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", ErrBadOrigin, "line 2"},
		{"bad o= seven fields", "v=0\r\no=- 1 1 IN IP4 192.0.2.1 x\r\ns=-\r\n", ErrBadOrigin, "line 2"},
		{"bad o= version", "v=0\r\no=- 1 v2 IN IP4 192.0.2.1\r\ns=-\r\n", ErrBadOrigin, "line 2"},
		{"second o=", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", ErrBadOrigin, "line 3"},
		{"o= in media", head + "m=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 192.0.2.1\r\n", ErrBadLine, "line 7"},
		{"bad m= port", head + "m=audio abc RTP/AVP 0\r\n", ErrBadMedia, "line 6"},
		{"port > 65535", head + "m=audio 65536 RTP/AVP 0\r\n", ErrBadMedia, "line 6"},
		{"huge port", head + "m=audio 99999999999999999999 RTP/AVP 0\r\n", ErrBadMedia, "line 6"},
		{"negative port", head + "m=audio -1 RTP/AVP 0\r\n", ErrBadMedia, "line 6"},
		{"port/0", head + "m=audio 4000/0 RTP/AVP 0\r\n", ErrBadMedia, "line 6"},
		{"port/", head + "m=audio 4000/ RTP/AVP 0\r\n", ErrBadMedia, "line 6"},
		{"m= no formats", head + "m=audio 4000 RTP/AVP\r\n", ErrBadMedia, "line 6"},
		{"m= no proto", head + "m=audio 4000\r\n", ErrBadMedia, "line 6"},
		{"bad c= address", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 999.0.2.1\r\n", ErrBadConnection, "line 4"},
		{"c= family mismatch", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 2001:db8::1\r\n", ErrBadConnection, "line 4"},
		{"c= hostname", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 media.example.com\r\n", ErrBadConnection, "line 4"},
		{"c= nettype", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=ATM IP4 192.0.2.1\r\n", ErrBadConnection, "line 4"},
		{"c= zone", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP6 fe80::1%eth0\r\n", ErrBadConnection, "line 4"},
		{"c= bad ttl", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 224.2.1.1/x\r\n", ErrBadConnection, "line 4"},
		{"second c=", head + "c=IN IP4 192.0.2.2\r\n", ErrBadConnection, "line 6"},
		{"second media c=", head + "m=audio 1 RTP/AVP 0\r\nc=IN IP4 192.0.2.2\r\nc=IN IP4 192.0.2.3\r\n", ErrBadConnection, "line 8"},
		{"missing connection", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", ErrNoConnection, "line 6"},
		{"bad a=rtcp port", head + "m=audio 1 RTP/AVP 0\r\na=rtcp:70000\r\n", ErrBadRTCP, "line 7"},
		{"bad a=rtcp addr", head + "m=audio 1 RTP/AVP 0\r\na=rtcp:5 IN IP4 nowhere\r\n", ErrBadRTCP, "line 7"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, %v; want %v", s, err, tt.want)
			}
			if tt.line != "" && !strings.Contains(err.Error(), tt.line+":") && !strings.HasSuffix(err.Error(), tt.line) {
				t.Errorf("error %q does not name %s", err, tt.line)
			}
		})
	}
}

func TestSSRCs(t *testing.T) {
	s, err := Parse([]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n" +
		"a=ssrc:3735928559 cname:x\r\na=ssrc:3735928559 msid:y\r\na=ssrc:12\r\na=ssrc:bad cname:z\r\na=ssrc:99999999999 cname:w\r\na=ssrc:7 cname:v\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Media[0].SSRCs(8); !slices.Equal(got, []uint32{3735928559, 12, 7}) {
		t.Errorf("SSRCs = %v", got)
	}
	if got := s.Media[0].SSRCs(2); !slices.Equal(got, []uint32{3735928559, 12}) {
		t.Errorf("SSRCs(2) = %v", got)
	}
}
