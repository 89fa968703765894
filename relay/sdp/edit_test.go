package sdp

import (
	"net/netip"
	"strings"
	"testing"
)

var relayAddr = netip.MustParseAddr("203.0.113.1")

func marshal(s *Session) string { return string(s.AppendMarshal(nil)) }

func assertSDP(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("SDP mismatch\n got:\n%s\nwant:\n%s\n got %q\nwant %q", got, want, got, want)
	}
}

// crlf writes test SDPs readably.
func crlf(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n" }

func TestRewriteOfferForRelay(t *testing.T) {
	s := mustParse(t, readSDP(t, "kamailio_g711.sdp"))
	m := s.Media[0]
	s.SetConnection(relayAddr)
	m.SetPort(40000)
	m.SetRTCP(40001, relayAddr)
	if n := RemoveICE(m); n != 0 {
		t.Errorf("RemoveICE removed %d from an offer without ICE", n)
	}
	s.BumpVersion()
	s.SetOriginAddr(relayAddr)
	assertSDP(t, marshal(s), crlf(
		"v=0",
		"o=user1 53655765 2353687638 IN IP4 203.0.113.1",
		"s=-",
		"c=IN IP4 203.0.113.1",
		"t=0 0",
		"m=audio 40000 RTP/AVP 0 8 101",
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-15",
		"a=ptime:20",
		"a=sendrecv",
		"a=rtcp:40001 IN IP4 203.0.113.1",
	))
	if m.Conn != relayAddr || m.RTCPPort != 40001 || m.RTCPAddr != relayAddr {
		t.Errorf("views not refreshed: conn %v rtcp %d %v", m.Conn, m.RTCPPort, m.RTCPAddr)
	}
}

func TestRewriteWebRTCOffer(t *testing.T) {
	in := string(readSDP(t, "webrtc_ice_mux.sdp"))
	s := mustParse(t, []byte(in))
	m := s.Media[0]
	addr := netip.MustParseAddr("198.51.100.7")
	s.SetConnection(addr)
	m.SetRTCP(30001, addr)
	m.SetPort(30000)
	m.SetProto("RTP/AVP")
	if n := RemoveICE(m); n != 7 {
		t.Errorf("RemoveICE(media) = %d, want 7", n)
	}
	if n := s.RemoveICE(); n != 2 {
		t.Errorf("Session.RemoveICE = %d, want 2", n)
	}

	want := in
	for _, drop := range []string{
		"a=ice-lite", "a=ice-options:trickle", "a=ice-options:trickle",
		"a=candidate:1467250027 1 udp 2122260223 192.168.0.196 54400 typ host generation 0",
		"a=candidate:1853887674 1 udp 1518280447 203.0.113.141 54400 typ srflx raddr 192.168.0.196 rport 54400 generation 0",
		"a=candidate:1467250027 2 udp 2122260222 192.168.0.196 54401 typ host generation 0",
		"a=end-of-candidates", "a=ice-ufrag:4ZcD", "a=ice-pwd:2/1muCWoOi3uLifh0NuRHlf0",
	} {
		want = strings.Replace(want, drop+"\r\n", "", 1)
	}
	for _, r := range [][2]string{
		// Every media has its own c=, so no session-level one is added.
		{"c=IN IP4 203.0.113.141", "c=IN IP4 198.51.100.7"},
		{"a=rtcp:9 IN IP4 0.0.0.0", "a=rtcp:30001 IN IP4 198.51.100.7"},
		{"m=audio 54400 UDP/TLS/RTP/SAVPF", "m=audio 30000 RTP/AVP"},
	} {
		want = strings.Replace(want, r[0], r[1], 1)
	}
	assertSDP(t, marshal(s), want)
	if !m.RTCPMux || m.RTCPPort != 30001 {
		t.Errorf("rtcp views: mux %v port %d", m.RTCPMux, m.RTCPPort)
	}
}

func TestSetConnectionAddsSessionLevel(t *testing.T) {
	s := mustParse(t, []byte(crlf(
		"v=0",
		"o=- 1 1 IN IP4 192.0.2.1",
		"s=-",
		"b=AS:100",
		"t=0 0",
		"m=audio 4000 RTP/AVP 0",
		"c=IN IP4 192.0.2.1",
		"m=video 0 RTP/AVP 96",
	)))
	s.SetConnection(netip.MustParseAddr("::ffff:203.0.113.1"))
	assertSDP(t, marshal(s), crlf(
		"v=0",
		"o=- 1 1 IN IP4 192.0.2.1",
		"s=-",
		"c=IN IP4 203.0.113.1",
		"b=AS:100",
		"t=0 0",
		"m=audio 4000 RTP/AVP 0",
		"c=IN IP4 203.0.113.1",
		"m=video 0 RTP/AVP 96",
	))
	if s.Media[1].Conn != relayAddr {
		t.Errorf("disabled media conn = %v", s.Media[1].Conn)
	}
}

func TestSetConnectionIPv6ToIPv4(t *testing.T) {
	s := mustParse(t, readSDP(t, "ipv6.sdp"))
	s.SetConnection(relayAddr)
	s.Media[0].SetRTCP(40001, relayAddr)
	s.SetOriginAddr(relayAddr)
	assertSDP(t, marshal(s), crlf(
		"v=0",
		"o=- 20518 0 IN IP4 203.0.113.1",
		"s=SDP Seminar",
		"c=IN IP4 203.0.113.1",
		"t=0 0",
		"m=audio 40000 RTP/AVP 0 18 101",
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:18 G729/8000",
		"a=fmtp:18 annexb=no",
		"a=rtpmap:101 telephone-event/8000",
		"a=rtcp:40001 IN IP4 203.0.113.1",
		"a=recvonly",
	))

	s.SetOriginAddr(netip.MustParseAddr("2001:db8::99"))
	if !strings.Contains(marshal(s), "\r\no=- 20518 0 IN IP6 2001:db8::99\r\n") {
		t.Errorf("IPv6 origin not written:\n%s", marshal(s))
	}
}

func TestConnFieldsWrittenBack(t *testing.T) {
	s := mustParse(t, readSDP(t, "session_conn.sdp"))
	other := netip.MustParseAddr("198.51.100.200")
	s.Media[0].Conn = other // differs from the session: needs its own c=
	s.Media[1].Conn = s.Conn
	assertSDP(t, marshal(s), crlf(
		"v=0",
		"o=- 8000 8001 IN IP4 192.0.2.77",
		"s=-",
		"c=IN IP4 192.0.2.77",
		"t=0 0",
		"a=sendonly",
		"m=audio 30000 RTP/AVP 8 101",
		"c=IN IP4 198.51.100.200",
		"a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000",
		"m=video 0 RTP/AVP 96",
		"a=rtpmap:96 H264/90000",
	))

	// A media that relied on the session's c= keeps its address when only
	// the session's changes.
	s = mustParse(t, readSDP(t, "session_conn.sdp"))
	s.Conn = relayAddr
	got := marshal(s)
	if !strings.Contains(got, "\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n") ||
		!strings.Contains(got, "m=audio 30000 RTP/AVP 8 101\r\nc=IN IP4 192.0.2.77\r\n") ||
		!strings.Contains(got, "m=video 0 RTP/AVP 96\r\nc=IN IP4 192.0.2.77\r\n") {
		t.Errorf("session-only conn change:\n%s", got)
	}

	// Clearing an address drops its c= line.
	s = mustParse(t, readSDP(t, "media_conn.sdp"))
	s.Media[1].Conn = netip.Addr{}
	if got := marshal(s); strings.Contains(got, "198.51.100.2\r\n") || !strings.Contains(got, "i=second leg\r\nb=TIAS:64000\r\n") {
		t.Errorf("c= not dropped cleanly:\n%s", got)
	}
}

func TestSetConnectionKeepsMediaOwnLines(t *testing.T) {
	s := mustParse(t, readSDP(t, "media_conn.sdp"))
	s.SetConnection(relayAddr)
	assertSDP(t, marshal(s), crlf(
		"v=0",
		"o=sbc 11 22 IN IP4 sbc.example.net",
		"s=session",
		"t=0 0",
		"m=audio 20000 RTP/AVP 0",
		"c=IN IP4 203.0.113.1",
		"a=rtpmap:0 PCMU/8000",
		"m=audio 20002 RTP/AVP 8",
		"i=second leg",
		"c=IN IP4 203.0.113.1",
		"b=TIAS:64000",
		"a=rtpmap:8 PCMA/8000",
		"a=inactive",
	))
	if s.Conn.IsValid() {
		t.Errorf("session conn set to %v though every media has its own", s.Conn)
	}
}

func TestAttrEditsKeepOtherLinesInPlace(t *testing.T) {
	s := mustParse(t, []byte(oddInputs["attributes out of order"]))
	m := s.Media[0]
	m.SetAttr("ptime", "30")
	if n := m.RemoveAttrs("rtpmap"); n != 1 {
		t.Errorf("RemoveAttrs = %d", n)
	}
	m.AddAttr("sendonly", "")
	m.SetRTCP(4001, netip.Addr{})
	s.SetAttr("tool", "xtrunk")
	s.AddAttr("group", "BUNDLE 0")
	assertSDP(t, marshal(s), crlf(
		"v=0",
		"a=tool:xtrunk",
		"o=- 1 1 IN IP4 192.0.2.1",
		"s=-",
		"t=0 0",
		"c=IN IP4 192.0.2.1",
		"a=group:BUNDLE 0",
		"m=audio 4000 RTP/AVP 0",
		"b=AS:64",
		"c=IN IP4 192.0.2.2",
		"a=ptime:30",
		"k=prompt",
		"a=sendonly",
		"a=rtcp:4001",
	))
	if m.Direction != "sendonly" || m.RTCPPort != 4001 || m.RTCPAddr != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("views: dir %s rtcp %d %v", m.Direction, m.RTCPPort, m.RTCPAddr)
	}
	if n := m.RemoveAttrs("nothing"); n != 0 {
		t.Errorf("RemoveAttrs(nothing) = %d", n)
	}
}

func TestSetRTCPPlacement(t *testing.T) {
	s := mustParse(t, []byte(crlf(
		"v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
		"m=audio 4000 RTP/AVPF 0",
		"a=rtpmap:0 PCMU/8000",
		"a=rtcp-mux",
		"a=rtcp-fb:0 nack",
		"b=AS:64",
		"a=ptime:20",
	)))
	s.Media[0].SetRTCP(4000, relayAddr)
	assertSDP(t, marshal(s), crlf(
		"v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
		"m=audio 4000 RTP/AVPF 0",
		"a=rtpmap:0 PCMU/8000",
		"a=rtcp-mux",
		"a=rtcp-fb:0 nack",
		"a=rtcp:4000 IN IP4 203.0.113.1",
		"b=AS:64",
		"a=ptime:20",
	))
}

func TestMediaLineEdits(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	for _, tt := range []struct {
		name, mline string
		edit        func(m *Media)
		want        string
	}{
		{"port keeps /num", "m=audio 4000/2 RTP/AVP 0", func(m *Media) { m.SetPort(5000) }, "m=audio 5000/2 RTP/AVP 0"},
		{"port keeps explicit /1", "m=audio 4000/1 RTP/AVP 0", func(m *Media) { m.SetPort(6000) }, "m=audio 6000/1 RTP/AVP 0"},
		{"num ports", "m=audio 4000 RTP/AVP 0", func(m *Media) { m.NumPorts = 2 }, "m=audio 4000/2 RTP/AVP 0"},
		{"formats", "m=audio 4000 RTP/AVP 0 8 101", func(m *Media) { m.Formats = m.Formats[1:] }, "m=audio 4000 RTP/AVP 8 101"},
		{"proto", "m=audio 4000 RTP/SAVP 0", func(m *Media) { m.SetProto("RTP/AVP") }, "m=audio 4000 RTP/AVP 0"},
		{"disable", "m=video 4000 RTP/AVP 96", func(m *Media) { m.SetPort(0) }, "m=video 0 RTP/AVP 96"},
		{"spacing normalised only when edited", "m=audio  4000  RTP/AVP  0   8", func(m *Media) { m.SetPort(5000) }, "m=audio 5000 RTP/AVP 0 8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, []byte(head+tt.mline+"\r\na=ptime:20\r\n"))
			tt.edit(s.Media[0])
			assertSDP(t, marshal(s), head+tt.want+"\r\na=ptime:20\r\n")
		})
	}
}

func TestLineEndings(t *testing.T) {
	// A missing final line ending stays missing, unless a line follows.
	s := mustParse(t, []byte(oddInputs["no final line ending"]))
	s.Media[0].Attrs[0].Key = "sendonly"
	if got := marshal(s); !strings.HasSuffix(got, "\r\na=sendonly") {
		t.Errorf("edited last line: %q", got)
	}
	s.Media[0].AddAttr("ptime", "20")
	if got := marshal(s); !strings.HasSuffix(got, "\r\na=sendonly\r\na=ptime:20\r\n") {
		t.Errorf("line after the last one: %q", got)
	}

	// Regenerated lines keep their own ending; added ones take the input's.
	s = mustParse(t, []byte(oddInputs["mixed line endings"]))
	s.SetConnection(relayAddr)
	s.Media[0].AddAttr("sendrecv", "")
	assertSDP(t, marshal(s), "v=0\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\nc=IN IP4 203.0.113.1\r\nt=0 0\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\na=sendrecv\n")

	s = mustParse(t, readSDP(t, "lf_only.sdp"))
	s.Media[0].SetRTCP(4001, netip.Addr{})
	if got := marshal(s); strings.Contains(got, "\r") || !strings.HasSuffix(got, "a=fmtp:101 0-15\na=rtcp:4001\n") {
		t.Errorf("LF-only SDP gained CRs or lost order: %q", got)
	}
}

func TestDirection(t *testing.T) {
	s := mustParse(t, readSDP(t, "session_conn.sdp"))
	if s.Media[0].Direction != "sendonly" {
		t.Fatalf("inherited direction = %s", s.Media[0].Direction)
	}
	s.Media[0].AddAttr("inactive", "")
	if s.Media[0].Direction != "inactive" || s.Media[1].Direction != "sendonly" {
		t.Errorf("media level does not override session level")
	}
	s.RemoveAttrs("sendonly")
	if s.Media[0].Direction != "inactive" || s.Media[1].Direction != "sendrecv" {
		t.Errorf("after removing session sendonly: %s %s", s.Media[0].Direction, s.Media[1].Direction)
	}
	s.SetAttr("recvonly", "")
	if s.Media[1].Direction != "recvonly" {
		t.Errorf("session recvonly not inherited: %s", s.Media[1].Direction)
	}
}

func TestBumpVersion(t *testing.T) {
	for in, want := range map[string]string{
		"0":                          "1",
		"8":                          "9",
		"9":                          "10",
		"1999":                       "2000",
		"007":                        "008",
		"4611731400430051336":        "4611731400430051337",
		"18446744073709551615":       "18446744073709551616", // past uint64
		"99999999999999999999999999": "100000000000000000000000000",
		"v1":                         "v1", // not decimal: left alone
	} {
		s := &Session{Origin: Origin{SessVersion: in}}
		s.BumpVersion()
		if s.Origin.SessVersion != want {
			t.Errorf("BumpVersion(%s) = %s, want %s", in, s.Origin.SessVersion, want)
		}
	}
}

func TestCloneIsIndependent(t *testing.T) {
	in := readSDP(t, "audio_video.sdp")
	s := mustParse(t, in)
	c := s.Clone()
	c.SetConnection(relayAddr)
	c.Media[0].SetRTCP(1, relayAddr)
	c.Media[1].Formats[0] = "100"
	c.Media[1].RemoveAttrs("rtcp-fb")
	c.RemoveAttrs("rtcp-xr")
	c.BumpVersion()
	if got := marshal(s); got != string(in) {
		t.Errorf("editing the clone changed the original:\n%s", got)
	}
	if marshal(c) == string(in) {
		t.Error("clone edits lost")
	}
}

func TestHandBuiltMedia(t *testing.T) {
	s := mustParse(t, readSDP(t, "kamailio_g711.sdp"))
	s.Media = append(s.Media,
		&Media{Type: "video", Port: 5000, NumPorts: 1, Proto: "RTP/AVP", Formats: []string{"96"}, Conn: s.Conn,
			Attrs: []Attr{{Key: "rtpmap", Value: "96 H264/90000", HasValue: true}}},
		&Media{Type: "image", Port: 6000, Proto: "udptl", Formats: []string{"t38"}, Conn: relayAddr})
	got := marshal(s)
	want := string(readSDP(t, "kamailio_g711.sdp")) + crlf(
		"m=video 5000 RTP/AVP 96",
		"a=rtpmap:96 H264/90000",
		"m=image 6000 udptl t38",
		"c=IN IP4 203.0.113.1",
	)
	assertSDP(t, got, want)
	if _, err := Parse([]byte(got)); err != nil {
		t.Errorf("output does not parse: %v", err)
	}
}
