package relay

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Frames of the AF_XDP path (socketless mode): the relay reads and writes
// whole Ethernet frames, so it parses and builds the Ethernet, IP and UDP
// headers the kernel's sockets otherwise handle.
//
// Checksums: the IPv4 header checksum is verified (cheap, and always
// complete on the wire). The UDP checksum is not: a frame redirected by
// XDP has passed no validation, and on veth and virtio a sender's
// checksum offload leaves a partial checksum (the pseudo header's sum
// only) in frames that are nevertheless intact, so verifying would drop
// good media. SRTP authenticates what matters; plain RTP rides on the
// Ethernet FCS, as it does through a kernel whose driver reported
// CHECKSUM_UNNECESSARY. Frames built here carry complete checksums:
// AF_XDP TX has no offload in copy mode.

const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	protoUDP      = 17
	frameTTL      = 64
)

// udpFrame is what the packet path needs of a received frame.
type udpFrame struct {
	src, dst netip.AddrPort
	// payload is the UDP payload, a view into the frame whose capacity
	// runs to the end of the buffer (SRTP encryption grows it in place).
	payload []byte
}

// parseUDPFrame reads an Ethernet frame carrying UDP over IPv4 (options
// allowed, no fragments) or IPv6 (no extension headers) into f.
func parseUDPFrame(b []byte, f *udpFrame) error {
	if len(b) < ethHeaderLen {
		return fmt.Errorf("%w: %d bytes", errFrameShort, len(b))
	}
	var udp []byte
	switch binary.BigEndian.Uint16(b[12:]) {
	case etherTypeIPv4:
		ip := b[ethHeaderLen:]
		if len(ip) < ipv4HeaderLen || ip[0]>>4 != 4 {
			return fmt.Errorf("%w: IPv4 header", errFrameShort)
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < ipv4HeaderLen || total < ihl+udpHeaderLen || total > len(ip) {
			return fmt.Errorf("%w: IPv4 lengths (ihl %d, total %d, %d bytes)", errFrameMalformed, ihl, total, len(ip))
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return fmt.Errorf("%w: IPv4 fragment", errFrameNotUDP)
		}
		if ip[9] != protoUDP {
			return fmt.Errorf("%w: IP protocol %d", errFrameNotUDP, ip[9])
		}
		if csumFold(csumAdd(0, ip[:ihl])) != 0 {
			return fmt.Errorf("%w: IPv4 header checksum", errFrameMalformed)
		}
		f.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), 0)
		f.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), 0)
		udp = ip[ihl:total]
	case etherTypeIPv6:
		ip := b[ethHeaderLen:]
		if len(ip) < ipv6HeaderLen || ip[0]>>4 != 6 {
			return fmt.Errorf("%w: IPv6 header", errFrameShort)
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if plen < udpHeaderLen || ipv6HeaderLen+plen > len(ip) {
			return fmt.Errorf("%w: IPv6 payload length %d, %d bytes", errFrameMalformed, plen, len(ip))
		}
		if ip[6] != protoUDP {
			return fmt.Errorf("%w: IPv6 next header %d", errFrameNotUDP, ip[6])
		}
		f.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[8:24])), 0)
		f.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[24:40])), 0)
		udp = ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	default:
		return fmt.Errorf("%w: EtherType %#04x", errFrameNotUDP, binary.BigEndian.Uint16(b[12:]))
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:]))
	if ulen < udpHeaderLen || ulen > len(udp) {
		return fmt.Errorf("%w: UDP length %d of %d bytes", errFrameMalformed, ulen, len(udp))
	}
	f.src = netip.AddrPortFrom(f.src.Addr(), binary.BigEndian.Uint16(udp[0:]))
	f.dst = netip.AddrPortFrom(f.dst.Addr(), binary.BigEndian.Uint16(udp[2:]))
	start := len(b) - len(udp) + udpHeaderLen
	f.payload = b[start : start+ulen-udpHeaderLen : cap(b)]
	return nil
}

// frameLen is the size of the frame buildUDPFrame makes for n payload
// bytes to dst.
func frameLen(dst netip.Addr, n int) int {
	if dst.Is4() {
		return ethHeaderLen + ipv4HeaderLen + udpHeaderLen + n
	}
	return ethHeaderLen + ipv6HeaderLen + udpHeaderLen + n
}

// buildUDPFrame writes an Ethernet frame carrying payload from src to dst
// (both IPv4 or both IPv6, IPv4-mapped addresses unmapped by the caller)
// into buf and returns its length; 0 when buf is too small or the
// families differ. The IP packet starts at buf[ethHeaderLen:], for a raw
// socket to send when the frame cannot go out of AF_XDP.
func buildUDPFrame(buf []byte, srcMAC, dstMAC [6]byte, src, dst netip.AddrPort, payload []byte) int {
	n := frameLen(dst.Addr(), len(payload))
	if n > len(buf) || src.Addr().Is4() != dst.Addr().Is4() || len(payload) > 0xffff-ipv6HeaderLen-udpHeaderLen {
		return 0
	}
	copy(buf[0:6], dstMAC[:])
	copy(buf[6:12], srcMAC[:])
	ulen := udpHeaderLen + len(payload)
	var udp []byte
	var pseudo uint32
	if dst.Addr().Is4() {
		binary.BigEndian.PutUint16(buf[12:], etherTypeIPv4)
		ip := buf[ethHeaderLen : ethHeaderLen+ipv4HeaderLen]
		ip[0], ip[1] = 0x45, 0
		binary.BigEndian.PutUint16(ip[2:], uint16(ipv4HeaderLen+ulen))
		binary.BigEndian.PutUint32(ip[4:], 0x4000) // id 0, DF: media is never fragmented here
		ip[8], ip[9] = frameTTL, protoUDP
		ip[10], ip[11] = 0, 0
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], csumFold(csumAdd(0, ip)))
		pseudo = csumAdd(csumAdd(0, ip[12:20]), []byte{0, protoUDP})
		udp = buf[ethHeaderLen+ipv4HeaderLen : n]
	} else {
		binary.BigEndian.PutUint16(buf[12:], etherTypeIPv6)
		ip := buf[ethHeaderLen : ethHeaderLen+ipv6HeaderLen]
		binary.BigEndian.PutUint32(ip[0:], 6<<28)
		binary.BigEndian.PutUint16(ip[4:], uint16(ulen))
		ip[6], ip[7] = protoUDP, frameTTL
		s6, d6 := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:24], s6[:])
		copy(ip[24:40], d6[:])
		pseudo = csumAdd(csumAdd(0, ip[8:40]), []byte{0, protoUDP})
		udp = buf[ethHeaderLen+ipv6HeaderLen : n]
	}
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(ulen))
	udp[6], udp[7] = 0, 0
	copy(udp[udpHeaderLen:], payload)
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(ulen))
	c := csumFold(csumAdd(csumAdd(pseudo, l[:]), udp))
	if c == 0 {
		c = 0xffff // zero means "no checksum" (and is forbidden on IPv6)
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return n
}

// csumAdd adds b to the one's complement sum acc (RFC 1071), b taken as
// big-endian 16-bit words, an odd last byte padded with zero. It sums
// 32-bit words into 64 bits (2^16 ≡ 1 mod 0xffff, so the folded sum is
// the same) and returns the sum folded below 2^17, so callers can keep
// adding.
func csumAdd(acc uint32, b []byte) uint32 {
	s := uint64(acc)
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	s = s&0xffffffff + s>>32 // < 2^33
	s = s&0xffff + s>>16     // < 2^18
	s = s&0xffff + s>>16     // < 2^17
	return uint32(s)
}

// csumFold folds acc to 16 bits, complemented: 0 for a header whose
// checksum field is right.
func csumFold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}
