// Package bpf loads and drives xtrunk's XDP fast path: the program in
// relay.bpf.c, its pinned maps and links, and a typed API over them.
//
// The relay process is the only writer of these maps. Maps and XDP links are
// pinned under one directory on a bpffs, so a relay that restarts (or is
// upgraded) with the same pin directory re-adopts every live session while
// the kernel keeps forwarding media the whole time.
package bpf

import (
	"net/netip"
)

// Action is what the fast path does with packets arriving at a relay port.
type Action uint8

// Actions, mirroring enum xtr_action.
const (
	ActionPass    Action = Action(relayXtrActionXTR_ACT_PASS)
	ActionForward Action = Action(relayXtrActionXTR_ACT_FORWARD)
	ActionDrop    Action = Action(relayXtrActionXTR_ACT_DROP)
)

func (a Action) String() string {
	switch a {
	case ActionPass:
		return "pass"
	case ActionForward:
		return "forward"
	case ActionDrop:
		return "drop"
	}
	return "unknown"
}

// Key names a relay socket address: a local address and UDP port.
type Key = netip.AddrPort

// Session is the fast-path entry for one relay address:port (one direction
// of one leg).
type Session struct {
	Action Action
	// Expect, when valid, is the only source accepted; others are dropped
	// (the latched or SDP-given peer).
	Expect netip.AddrPort
	// OutSrc is the relay's own address:port on the other leg and OutDst
	// the peer there.
	OutSrc, OutDst netip.AddrPort
	// RTCPDemux sends RTCP arriving here (rtcp-mux) to RTCPSrcPort→RTCPDst.
	RTCPDemux   bool
	RTCPSrcPort uint16
	RTCPDst     netip.AddrPort
	// ClockRate is the RTP clock (Hz) for loss/jitter tracking; 0 = none.
	ClockRate uint32
	// Record copies every forwarded packet to the recorder (RecordReader).
	Record bool
	// LocalSource says Expect is an address of the relay's host: its
	// packets come over lo, so one arriving at another device's XDP
	// claiming it is forged and dropped (ReasonDropSpoofed).
	LocalSource bool
}

// Quality is a leg's RFC 3550 reception statistics from the fast path.
type Quality struct {
	SSRC      uint32
	ClockRate uint32
	Received  uint64
	Expected  uint64 // extended highest sequence number - first + 1
	Lost      int64  // expected - received (negative with duplicates)
	Jitter    uint64 // RFC 3550 interarrival jitter in RTP clock units
	BaseSeq   uint32
	MaxSeqExt uint32 // extended highest sequence number
}

// LegStats are the fast path's counters for one relay address:port, summed
// over CPUs.
type LegStats struct {
	Packets uint64 // forwarded by XDP
	Bytes   uint64 // UDP payload bytes forwarded by XDP
	Drops   uint64 // dropped: foreign source or a drop session
	RecLost uint64 // recording copies the perf buffer could not take
	LastNs  uint64 // CLOCK_MONOTONIC (bpf_ktime_get_ns) of the last packet; 0 = none
}

func addr16(a netip.Addr) [16]uint8 {
	if !a.IsValid() {
		return [16]uint8{}
	}
	return netip.AddrFrom16(a.As16()).As16()
}

func fromAddr16(b [16]uint8) netip.Addr {
	if b == ([16]uint8{}) {
		return netip.Addr{}
	}
	return netip.AddrFrom16(b).Unmap()
}

func addrPort(b [16]uint8, port uint16) netip.AddrPort {
	a := fromAddr16(b)
	if !a.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, port)
}

func toKey(k Key) relayXtrSessKey {
	return relayXtrSessKey{Addr: addr16(k.Addr()), Port: k.Port()}
}

func fromKey(k relayXtrSessKey) Key {
	return netip.AddrPortFrom(fromAddr16(k.Addr), k.Port)
}

func (s Session) raw() relayXtrSess {
	r := relayXtrSess{
		Action:      uint8(s.Action),
		OutSrcPort:  s.OutSrc.Port(),
		OutDstPort:  s.OutDst.Port(),
		OutSrcAddr:  addr16(s.OutSrc.Addr()),
		OutDstAddr:  addr16(s.OutDst.Addr()),
		RtcpSrcPort: s.RTCPSrcPort,
		RtcpDstPort: s.RTCPDst.Port(),
		RtcpDstAddr: addr16(s.RTCPDst.Addr()),
		ClockRate:   s.ClockRate,
	}
	if s.Expect.IsValid() {
		r.Flags |= uint8(relayXtrSessFlagsXTR_F_CHECK_SRC)
		r.ExpectAddr = addr16(s.Expect.Addr())
		r.ExpectPort = s.Expect.Port()
	}
	if s.RTCPDemux {
		r.Flags |= uint8(relayXtrSessFlagsXTR_F_RTCP_DEMUX)
	}
	if s.Record {
		r.Flags |= uint8(relayXtrSessFlagsXTR_F_RECORD)
	}
	if s.LocalSource && s.Expect.IsValid() {
		r.Flags |= uint8(relayXtrSessFlagsXTR_F_LOCAL_SRC)
	}
	return r
}

func sessionFromRaw(r relayXtrSess) Session {
	s := Session{
		ClockRate: r.ClockRate,
		Action:    Action(r.Action),
		OutSrc:    addrPort(r.OutSrcAddr, r.OutSrcPort),
		OutDst:    addrPort(r.OutDstAddr, r.OutDstPort),
	}
	if r.Flags&uint8(relayXtrSessFlagsXTR_F_CHECK_SRC) != 0 {
		s.Expect = addrPort(r.ExpectAddr, r.ExpectPort)
	}
	s.Record = r.Flags&uint8(relayXtrSessFlagsXTR_F_RECORD) != 0
	s.LocalSource = s.Expect.IsValid() && r.Flags&uint8(relayXtrSessFlagsXTR_F_LOCAL_SRC) != 0
	if r.Flags&uint8(relayXtrSessFlagsXTR_F_RTCP_DEMUX) != 0 {
		s.RTCPDemux = true
		s.RTCPSrcPort = r.RtcpSrcPort
		s.RTCPDst = addrPort(r.RtcpDstAddr, r.RtcpDstPort)
	}
	return s
}
