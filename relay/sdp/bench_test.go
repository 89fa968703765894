package sdp

import (
	"net/netip"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	in := readSDP(b, "kamailio_g711.sdp")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewrite is what the relay does to an offer on call setup.
func BenchmarkRewrite(b *testing.B) {
	in := readSDP(b, "kamailio_g711.sdp")
	addr := netip.MustParseAddr("203.0.113.1")
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		s, err := Parse(in)
		if err != nil {
			b.Fatal(err)
		}
		s.SetConnection(addr)
		for _, m := range s.Media {
			m.SetPort(40000)
			m.SetRTCP(40001, addr)
			RemoveICE(m)
		}
		s.BumpVersion()
		buf = s.AppendMarshal(buf[:0])
	}
}

// BenchmarkMarshalUnchanged is the cost of the copy-through path alone.
func BenchmarkMarshalUnchanged(b *testing.B) {
	in := readSDP(b, "webrtc_ice_mux.sdp")
	s, err := Parse(in)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		buf = s.AppendMarshal(buf[:0])
	}
}

func BenchmarkParseWebRTC(b *testing.B) {
	in := readSDP(b, "webrtc_ice_mux.sdp")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse(in); err != nil {
			b.Fatal(err)
		}
	}
}
