// Package rtpgen generates and checks G.711-shaped RTP streams for the demo,
// the tests and the benchmarks: every packet's payload is derived from its
// SSRC and sequence number, so a sink can tell an intact packet of the
// expected stream from a corrupted or foreign one.
package rtpgen

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"
)

// PayloadLen is a 20 ms G.711 frame.
const PayloadLen = 160

// Packet writes RTP packet seq of stream ssrc (PT 0) into b[:172].
func Packet(b []byte, ssrc uint32, seq uint16) []byte {
	b = b[:12+PayloadLen]
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*PayloadLen)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = byte(uint32(seq)*7 + uint32(i) + ssrc)
	}
	return b
}

// Intact reports whether p is an unmodified packet made by Packet, and its
// SSRC and sequence number.
func Intact(p []byte) (ssrc uint32, seq uint16, ok bool) {
	if len(p) != 12+PayloadLen || p[0] != 0x80 {
		return 0, 0, false
	}
	seq = binary.BigEndian.Uint16(p[2:])
	ssrc = binary.BigEndian.Uint32(p[8:])
	for i := 12; i < len(p); i++ {
		if p[i] != byte(uint32(seq)*7+uint32(i)+ssrc) {
			return 0, 0, false
		}
	}
	return ssrc, seq, true
}

// Send paces n packets of stream ssrc at pps from conn to dst.
func Send(ctx context.Context, conn *net.UDPConn, dst netip.AddrPort, ssrc uint32, n, pps int) (sent int, err error) {
	return SendWith(ctx, conn, dst, ssrc, n, pps, nil)
}

// Transform turns a packet into what goes on the wire (SRTP encryption)
// or back (decryption), appending to dst.
type Transform func(dst, pkt []byte) ([]byte, error)

// SendWith is Send with every packet passed through seal (nil: none).
func SendWith(ctx context.Context, conn *net.UDPConn, dst netip.AddrPort, ssrc uint32, n, pps int, seal Transform) (sent int, err error) {
	buf := make([]byte, 12+PayloadLen)
	var out []byte
	tick := time.NewTicker(time.Second / time.Duration(pps))
	defer tick.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-tick.C:
		}
		pkt := Packet(buf, ssrc, uint16(i))
		if seal != nil {
			if out, err = seal(out[:0], pkt); err != nil {
				return sent, err
			}
			pkt = out
		}
		if _, err := conn.WriteToUDPAddrPort(pkt, dst); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

// Sink reads a socket and counts intact packets of one stream.
type Sink struct {
	ssrc uint32
	mu   sync.Mutex
	got  map[uint16]bool
	bad  int
	from map[netip.AddrPort]int
	done chan struct{}
}

// NewSink starts reading conn until it is closed.
func NewSink(conn *net.UDPConn, ssrc uint32) *Sink { return NewSinkWith(conn, ssrc, nil) }

// NewSinkWith is NewSink with every datagram passed through open first
// (nil: none); one open fails on counts as bad.
func NewSinkWith(conn *net.UDPConn, ssrc uint32, open Transform) *Sink {
	s := &Sink{ssrc: ssrc, got: map[uint16]bool{}, from: map[netip.AddrPort]int{}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 2048)
		var plain []byte
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pkt := buf[:n]
			if open != nil {
				plain, err = open(plain[:0], pkt)
				pkt = plain
			}
			ssrc, seq, ok := Intact(pkt)
			s.mu.Lock()
			s.from[from]++
			if err == nil && ok && ssrc == s.ssrc {
				s.got[seq] = true
			} else {
				s.bad++
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// Counts returns intact packets of the stream (distinct sequence numbers)
// and everything else received.
func (s *Sink) Counts() (good, bad int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got), s.bad
}

// Drain waits until the sink holds at least n intact packets, or for
// within at most, and returns Counts then. The packets sent last may still
// be on their way through a relay: on a loaded machine a fixed pause
// before counting them misses some, while a lost packet only costs the
// wait.
func (s *Sink) Drain(n int, within time.Duration) (good, bad int) {
	deadline := time.Now().Add(within)
	for {
		good, bad = s.Counts()
		if good >= n || !time.Now().Before(deadline) {
			return good, bad
		}
		select {
		case <-s.done: // the conn is closed: nothing more comes
			return s.Counts()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Sources lists who sent to the sink and how much.
func (s *Sink) Sources() map[netip.AddrPort]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.AddrPort]int, len(s.from))
	for k, v := range s.from {
		out[k] = v
	}
	return out
}
