package bpf

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// frame builds an Ethernet/IP/UDP frame with a valid IP and UDP checksum.
type frame struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
	ttl            uint8
	payload        []byte
	noUDPCsum      bool
}

func (f frame) bytes() []byte {
	if f.ttl == 0 {
		f.ttl = 61
	}
	v4 := f.src.Addr().Is4()
	b := make([]byte, 14)
	copy(b[0:6], f.dstMAC)
	copy(b[6:12], f.srcMAC)
	udpLen := 8 + len(f.payload)
	udp := make([]byte, udpLen)
	binary.BigEndian.PutUint16(udp[0:], f.src.Port())
	binary.BigEndian.PutUint16(udp[2:], f.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	copy(udp[8:], f.payload)
	if v4 {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = f.ttl
		ip[9] = 17
		s, d := f.src.Addr().As4(), f.dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^sum16(0, ip))
		if !f.noUDPCsum {
			c := udpChecksum(ip[12:16], ip[16:20], udp)
			binary.BigEndian.PutUint16(udp[6:], c)
		}
		b = append(b, ip...)
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6] = 17
		ip[7] = f.ttl
		s, d := f.src.Addr().As16(), f.dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		binary.BigEndian.PutUint16(udp[6:], udpChecksum(ip[8:24], ip[24:40], udp))
		b = append(b, ip...)
	}
	return append(b, udp...)
}

func sum16(acc uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// udpChecksum computes the UDP checksum over the pseudo header; udp's own
// checksum field must be zero or the value to verify (then the result is 0
// or 0xffff... see validUDP).
func udpChecksum(src, dst, udp []byte) uint16 {
	var acc uint32
	acc += uint32(sum16(0, src))
	acc += uint32(sum16(0, dst))
	acc += 17
	acc += uint32(len(udp))
	c := ^sum16(acc, udp)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// checksumsValid verifies the IPv4 header checksum (if any) and the UDP
// checksum of an Ethernet frame.
func checksumsValid(b []byte) (ipOK, udpOK bool) {
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		ip := b[14:34]
		ipOK = sum16(0, ip) == 0xffff
		udp := b[34 : 34+int(binary.BigEndian.Uint16(b[38:]))]
		if binary.BigEndian.Uint16(udp[6:]) == 0 {
			return ipOK, true
		}
		var acc uint32
		acc += uint32(sum16(0, ip[12:16])) + uint32(sum16(0, ip[16:20])) + 17 + uint32(len(udp))
		return ipOK, sum16(acc, udp) == 0xffff
	case 0x86dd:
		ip := b[14:54]
		udp := b[54 : 54+int(binary.BigEndian.Uint16(b[58:]))]
		var acc uint32
		acc += uint32(sum16(0, ip[8:24])) + uint32(sum16(0, ip[24:40])) + 17 + uint32(len(udp))
		return true, sum16(acc, udp) == 0xffff
	}
	return false, false
}

// rtp is a minimal RTP packet (PT, seq) with a 160-byte payload.
func rtp(pt uint8, seq uint16) []byte {
	b := make([]byte, 12+160)
	b[0] = 0x80
	b[1] = pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], 0xdecafbad)
	for i := 12; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func rtcpSR() []byte {
	b := make([]byte, 28)
	b[0] = 0x80
	b[1] = 200
	binary.BigEndian.PutUint16(b[2:], 6)
	binary.BigEndian.PutUint32(b[4:], 0xdecafbad)
	return b
}
