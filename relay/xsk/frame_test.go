package xsk

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// The lab tests write whole Ethernet/IPv4/UDP frames into TX frames and
// read them out of RX frames; these are the two helpers they use.

const (
	ethLen  = 14
	ipv4Len = 20
	udpLen  = 8
	hdrLen  = ethLen + ipv4Len + udpLen
)

var errFrame = errors.New("not an Ethernet/IPv4/UDP frame")

// udpFrame is what parseUDP4 reads out of a frame.
type udpFrame struct {
	src, dst netip.AddrPort
	payload  []byte
}

// buildUDP4 writes an Ethernet/IPv4/UDP frame with payload into buf, with
// both checksums computed, and returns its length (0 if buf is too small).
func buildUDP4(buf []byte, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) int {
	n := hdrLen + len(payload)
	if len(buf) < n || n > 0xffff {
		return 0
	}
	copy(buf[0:6], dstMAC)
	copy(buf[6:12], srcMAC)
	binary.BigEndian.PutUint16(buf[12:], 0x0800)
	ip := buf[ethLen : ethLen+ipv4Len]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(ipv4Len+udpLen+len(payload)))
	binary.BigEndian.PutUint32(ip[4:], 0) // id 0, DF clear, offset 0
	ip[8], ip[9] = 64, 17
	binary.BigEndian.PutUint16(ip[10:], 0)
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))

	udp := buf[ethLen+ipv4Len : n]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+len(payload)))
	binary.BigEndian.PutUint16(udp[6:], 0)
	copy(udp[udpLen:], payload)
	c := ^fold(sum(udp, pseudo(ip, len(udp))))
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return n
}

// parseUDP4 reads an Ethernet/IPv4/UDP frame, checking lengths and both
// checksums. The payload aliases b.
func parseUDP4(b []byte) (udpFrame, error) {
	if len(b) < hdrLen || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return udpFrame{}, errFrame
	}
	ip := b[ethLen:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < ipv4Len || ip[9] != 17 || len(ip) < ihl+udpLen {
		return udpFrame{}, errFrame
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total < ihl+udpLen || total > len(ip) || fold(sum(ip[:ihl], 0)) != 0xffff {
		return udpFrame{}, errFrame
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // fragment
		return udpFrame{}, errFrame
	}
	udp := ip[ihl:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < udpLen || ulen > len(udp) {
		return udpFrame{}, errFrame
	}
	udp = udp[:ulen]
	if binary.BigEndian.Uint16(udp[6:]) != 0 && fold(sum(udp, pseudo(ip, ulen))) != 0xffff {
		return udpFrame{}, errFrame
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	return udpFrame{
		src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:])),
		dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:])),
		payload: udp[udpLen:],
	}, nil
}

// pseudo is the sum of the IPv4 pseudo-header for a UDP datagram of n bytes.
func pseudo(ip []byte, n int) uint32 {
	return sum(ip[12:20], 17+uint32(n))
}

// sum adds b as big-endian 16-bit words to acc (RFC 1071).
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

func TestUDP4RoundTrip(t *testing.T) {
	src := netip.MustParseAddrPort("198.18.0.2:4000")
	dst := netip.MustParseAddrPort("198.18.0.1:5000")
	mac1 := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	for _, p := range []string{"", "x", "hello world", string(make([]byte, 1400))} {
		buf := make([]byte, 2048)
		n := buildUDP4(buf, mac1, mac2, src, dst, []byte(p))
		f, err := parseUDP4(buf[:n])
		if err != nil || f.src != src || f.dst != dst || string(f.payload) != p {
			t.Fatalf("payload %d bytes: got %+v, %v", len(p), f, err)
		}
		buf[n-1] ^= 0xff // corrupt the payload: the UDP checksum must catch it
		if len(p) > 0 {
			if _, err := parseUDP4(buf[:n]); err == nil {
				t.Fatalf("payload %d bytes: corrupted frame parsed", len(p))
			}
		}
	}
	if n := buildUDP4(make([]byte, 10), mac1, mac2, src, dst, nil); n != 0 {
		t.Fatalf("short buffer: wrote %d", n)
	}
}

// FuzzParseUDP4 feeds arbitrary frames to the parser: it must not panic,
// and what it accepts must rebuild into a frame that parses the same.
func FuzzParseUDP4(f *testing.F) {
	buf := make([]byte, 2048)
	n := buildUDP4(buf, net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2},
		netip.MustParseAddrPort("198.18.0.2:4000"), netip.MustParseAddrPort("198.18.0.1:5000"), []byte("seed"))
	f.Add(buf[:n])
	f.Add([]byte{})
	f.Add(make([]byte, hdrLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := parseUDP4(b)
		if err != nil {
			return
		}
		out := make([]byte, hdrLen+len(u.payload))
		m := buildUDP4(out, net.HardwareAddr(b[6:12]), net.HardwareAddr(b[0:6]), u.src, u.dst, u.payload)
		v, err := parseUDP4(out[:m])
		if err != nil || v.src != u.src || v.dst != u.dst || string(v.payload) != string(u.payload) {
			t.Fatalf("rebuilt frame differs: %+v %v", v, err)
		}
	})
}
