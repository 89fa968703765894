package relay

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
)

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0xa}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0xb}
)

// udpSum verifies a built frame's UDP checksum the way a receiver does:
// the sum over pseudo header and datagram, checksum included, is 0xffff.
func udpSumOK(frame []byte) bool {
	var pseudo uint32
	var udp []byte
	if frame[12] == 0x08 {
		ip := frame[ethHeaderLen:]
		pseudo = csumAdd(0, ip[12:20])
		udp = ip[ipv4HeaderLen:]
	} else {
		ip := frame[ethHeaderLen:]
		pseudo = csumAdd(0, ip[8:40])
		udp = ip[ipv6HeaderLen:]
	}
	pseudo = csumAdd(pseudo, []byte{0, protoUDP, udp[4], udp[5]})
	return csumFold(csumAdd(pseudo, udp[:int(udp[4])<<8|int(udp[5])])) == 0
}

func TestUDPFrameRoundTrip(t *testing.T) {
	rtp := rtpgen.Packet(make([]byte, 172), 0x1234, 7)
	for _, tc := range []struct {
		name     string
		src, dst netip.AddrPort
		payload  []byte
	}{
		{"ipv4 rtp", netip.MustParseAddrPort("198.18.1.1:30000"), netip.MustParseAddrPort("198.18.1.2:20000"), rtp},
		{"ipv6 rtp", netip.MustParseAddrPort("[2001:2:0:1::1]:30002"), netip.MustParseAddrPort("[2001:2:0:1::2]:20000"), rtp},
		{"ipv4 odd length", netip.MustParseAddrPort("198.18.1.1:30000"), netip.MustParseAddrPort("198.18.1.2:9"), []byte("abc")},
		{"ipv4 empty", netip.MustParseAddrPort("198.18.1.1:30000"), netip.MustParseAddrPort("198.18.1.2:9"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 2048)
			n := buildUDPFrame(buf, macA, macB, tc.src, tc.dst, tc.payload)
			if n != frameLen(tc.dst.Addr(), len(tc.payload)) {
				t.Fatalf("built %d bytes, want %d", n, frameLen(tc.dst.Addr(), len(tc.payload)))
			}
			if !bytes.Equal(buf[0:6], macB[:]) || !bytes.Equal(buf[6:12], macA[:]) {
				t.Errorf("MACs % x", buf[:12])
			}
			if !udpSumOK(buf[:n]) {
				t.Errorf("UDP checksum wrong")
			}
			var f udpFrame
			if err := parseUDPFrame(buf[:n], &f); err != nil {
				t.Fatal(err)
			}
			if f.src != tc.src || f.dst != tc.dst || !bytes.Equal(f.payload, tc.payload) {
				t.Errorf("parsed %v -> %v %q, want %v -> %v %q", f.src, f.dst, f.payload, tc.src, tc.dst, tc.payload)
			}
			if cap(f.payload) != cap(buf)-(n-len(tc.payload)) {
				t.Errorf("payload capacity %d: encryption could not grow it in place", cap(f.payload))
			}
		})
	}
}

func TestParseUDPFrameRefuses(t *testing.T) {
	buf := make([]byte, 256)
	n := buildUDPFrame(buf, macA, macB, netip.MustParseAddrPort("198.18.1.1:30000"), netip.MustParseAddrPort("198.18.1.2:20000"), []byte("payload"))
	good := append([]byte(nil), buf[:n]...)
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"truncated ethernet", good[:10], errFrameShort},
		{"arp", mutate(func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }), errFrameNotUDP},
		{"tcp", mutate(func(b []byte) []byte { b[ethHeaderLen+9] = 6; return b }), errFrameNotUDP},
		{"bad ip checksum", mutate(func(b []byte) []byte { b[ethHeaderLen+8]--; return b }), errFrameMalformed},
		{"total length past the frame", mutate(func(b []byte) []byte { b[ethHeaderLen+2] = 0xff; return b }), errFrameMalformed},
		{"udp length past the packet", mutate(func(b []byte) []byte { b[ethHeaderLen+ipv4HeaderLen+4] = 0xff; return b }), errFrameMalformed},
		{"truncated ip", good[:ethHeaderLen+10], errFrameShort},
	} {
		var f udpFrame
		if err := parseUDPFrame(tc.frame, &f); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if buildUDPFrame(make([]byte, 20), macA, macB, netip.MustParseAddrPort("198.18.1.1:1"), netip.MustParseAddrPort("198.18.1.2:2"), []byte("x")) != 0 {
		t.Error("built into a buffer too small")
	}
	if buildUDPFrame(buf, macA, macB, netip.MustParseAddrPort("198.18.1.1:1"), netip.MustParseAddrPort("[2001:db8::1]:2"), []byte("x")) != 0 {
		t.Error("built a frame of mixed families")
	}
}

// FuzzParseUDPFrame: any bytes parse or are refused, never panic; what
// parses lies inside the frame, and rebuilds into a frame that parses the
// same.
func FuzzParseUDPFrame(f *testing.F) {
	buf := make([]byte, 256)
	n := buildUDPFrame(buf, macA, macB, netip.MustParseAddrPort("198.18.1.1:30000"), netip.MustParseAddrPort("198.18.1.2:20000"), []byte("payload"))
	f.Add(append([]byte(nil), buf[:n]...))
	n = buildUDPFrame(buf, macA, macB, netip.MustParseAddrPort("[2001:2::1]:30000"), netip.MustParseAddrPort("[2001:2::2]:20000"), []byte("payload6"))
	f.Add(append([]byte(nil), buf[:n]...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var u udpFrame
		if err := parseUDPFrame(b, &u); err != nil {
			return
		}
		if len(u.payload) > len(b) {
			t.Fatalf("payload of %d bytes from a %d-byte frame", len(u.payload), len(b))
		}
		out := make([]byte, 2048+ethHeaderLen+ipv6HeaderLen+udpHeaderLen+len(b))
		m := buildUDPFrame(out, macA, macB, u.src, u.dst, u.payload)
		if m == 0 {
			t.Fatalf("parsed %v -> %v but cannot rebuild", u.src, u.dst)
		}
		var v udpFrame
		if err := parseUDPFrame(out[:m], &v); err != nil || v.src != u.src || v.dst != u.dst || !bytes.Equal(v.payload, u.payload) {
			t.Fatalf("rebuilt frame parses as %v -> %v (%v)", v.src, v.dst, err)
		}
	})
}

// csumAdd16 is RFC 1071's sum word by word, the reference csumAdd must
// agree with.
func csumAdd16(acc uint32, b []byte) uint64 {
	s := uint64(acc)
	for ; len(b) >= 2; b = b[2:] {
		s += uint64(b[0])<<8 | uint64(b[1])
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold64(s uint64) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func FuzzCsumAdd(f *testing.F) {
	f.Add(uint32(0), []byte{})
	f.Add(uint32(0xffff), []byte{0xff})
	f.Add(uint32(1<<17-1), bytes.Repeat([]byte{0xff}, 1500))
	f.Add(uint32(12345), []byte("an odd-length RTP payload of some bytes."))
	f.Fuzz(func(t *testing.T, acc uint32, b []byte) {
		acc %= 1 << 17 // what csumAdd returns and callers pass back in
		got := csumAdd(acc, b)
		if got >= 1<<17 {
			t.Fatalf("csumAdd returned %#x, not below 2^17", got)
		}
		if csumFold(got) != fold64(csumAdd16(acc, b)) {
			t.Fatalf("csumAdd(%#x, %x) folds to %#04x, RFC 1071 word by word to %#04x", acc, b, csumFold(got), fold64(csumAdd16(acc, b)))
		}
		// Chained over a split at an even offset, as the pseudo-header and
		// the datagram are summed.
		k := len(b) / 2 &^ 1
		if c := csumFold(csumAdd(csumAdd(acc, b[:k]), b[k:])); c != csumFold(got) {
			t.Fatalf("split at %d: %#04x, whole %#04x", k, c, csumFold(got))
		}
	})
}

func BenchmarkCsumAdd(b *testing.B) {
	p := bytes.Repeat([]byte{0xa5, 0x3c}, 91) // a 182-byte SRTP packet
	b.SetBytes(int64(len(p)))
	var s uint32
	for b.Loop() {
		s = csumAdd(s&0xffff, p)
	}
	_ = s
}
