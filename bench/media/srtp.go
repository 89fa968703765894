package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// The --srtp mode: each call's customer leg (the caller's) is SDES-SRTP
// with this suite, its carrier leg plain RTP, so the relay decrypts
// caller→callee and encrypts callee→caller.
const (
	SRTPSuite   = "AES_CM_128_HMAC_SHA1_80"
	srtpKeyLen  = 30 // 128-bit master key || 112-bit master salt
	srtpTagLen  = 10 // HMAC-SHA1-80
	SRTPBytes   = RTPBytes + srtpTagLen
	srtpProfile = srtp.ProtectionProfileAes128CmHmacSha1_80
)

// srtpFrameLen is one pre-built frame of the caller's SRTP sender:
// Ethernet, IPv4, UDP, SRTP.
const srtpFrameLen = 14 + 20 + 8 + SRTPBytes

// srtpTick is the SRTP sender's pacing interval. Finer than the XDP
// generator's chunks: a sendmmsg costs no setup, so there is no reason to
// burst.
const srtpTick = time.Millisecond

// srtpBatch is how many frames one sendmmsg carries.
const srtpBatch = 64

// maxSRTPBuffer bounds the memory one step's pre-encrypted frames take
// (about 224 bytes a packet: 4,900 calls × 50 pps × 10 s is 550 MB).
const maxSRTPBuffer = 4 << 30

// srtpStream is the caller's side of one call in --srtp: its SRTP stream
// toward the relay and the key the relay encrypts with toward it.
type srtpStream struct {
	ctx      *srtp.Context // the caller's key: encrypts what the caller sends
	relayKey []byte        // the relay's key (its answer's a=crypto)
	frame    [42]byte      // Ethernet, IPv4 and UDP headers toward the relay
	ssrc     uint32
	seq      uint16 // next
	ts       uint32 // next
}

// srtpSender is the caller's generator in --srtp. The XDP live-frames
// generator rewrites every header in the kernel, which SRTP's auth tag
// forbids, so this one encrypts ahead: for each step it builds and
// encrypts all of the step's frames (round robin over the calls, like
// xm_gen) before the step is measured, then paces them out with sendmmsg
// on an AF_PACKET socket bound to the caller's veth. What it sent is what
// sendmmsg accepted.
type srtpSender struct {
	end, peer *testbed.End
	ssrcBase  uint32
	fd        int

	streams []*srtpStream // by call index
	frames  []byte        // the prepared frames, srtpFrameLen each
	nframes int

	hdrs [srtpBatch]unix.Mmsghdr
	iovs [srtpBatch]unix.Iovec
}

// newSRTPSender opens the sender's socket in end's namespace.
func newSRTPSender(end, peer *testbed.End, ssrcBase uint32) (*srtpSender, error) {
	fd, err := packetSocket(end)
	if err != nil {
		return nil, fmt.Errorf("media: srtp sender: %w", err)
	}
	s := &srtpSender{end: end, peer: peer, ssrcBase: ssrcBase, fd: fd}
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
	return s, nil
}

// Close closes the socket and drops the frames.
func (s *srtpSender) Close() error {
	s.frames, s.streams = nil, nil
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	if err != nil {
		return fmt.Errorf("media: srtp sender: %w", err)
	}
	return nil
}

// setCalls adds the streams of calls[from:] (each with its key) and makes
// the sender cycle over all of them.
func (s *srtpSender) setCalls(calls []genCall, from int) error {
	if len(calls) > maxCalls {
		return fmt.Errorf("%w: %d > %d", ErrTooManyCalls, len(calls), maxCalls)
	}
	s.streams = s.streams[:min(from, len(s.streams))]
	for i := from; i < len(calls); i++ {
		c := calls[i]
		if len(c.Key) != srtpKeyLen {
			return fmt.Errorf("%w: call %d has no SRTP key", ErrConfig, i)
		}
		ctx, err := srtp.CreateContext(c.Key[:16], c.Key[16:], srtpProfile)
		if err != nil {
			return fmt.Errorf("media: srtp context: %w", err)
		}
		st := &srtpStream{ctx: ctx, relayKey: c.RelayKey, ssrc: s.ssrcBase + uint32(i)}
		buildFrameHeader(st.frame[:], s.end.MAC, s.peer.MAC, s.end.IPv4(), c.Dst.Addr(), c.SrcPort, c.Dst.Port(), 8+SRTPBytes)
		s.streams = append(s.streams, st)
	}
	return nil
}

// buildFrameHeader writes Ethernet, IPv4 (DSCP EF, DF, checksum) and UDP
// (checksum 0) headers for a udpLen-byte datagram, as xm_gen does.
func buildFrameHeader(b []byte, smac, dmac []byte, src, dst netip.Addr, sport, dport uint16, udpLen int) {
	copy(b[0:6], dmac)
	copy(b[6:12], smac)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0], ip[1] = 0x45, 0xb8
	binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
	binary.BigEndian.PutUint16(ip[4:], 0)
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8], ip[9] = 64, 17
	ip[10], ip[11] = 0, 0
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	binary.BigEndian.PutUint16(udp[6:], 0)
}

// rtpPlain writes the plain RTP packet the caller encrypts: the same
// layout as xm_gen's (V=2, PT 0, 160 bytes of audio), but the 8 bytes
// where xm_gen puts its send stamp are zero: they are encrypted ahead of
// sending, so no stamp could be true. The rest of the payload is a
// pattern, so a check can compare what arrives byte for byte.
func rtpPlain(b []byte, ssrc uint32, seq uint16, ts uint32) []byte {
	b = b[:RTPBytes]
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	clear(b[12:20])
	for i := 20; i < RTPBytes; i++ {
		b[i] = byte(i) ^ byte(seq)
	}
	return b
}

// prepare builds and encrypts the next total frames, round robin over
// calls [0, ncalls) (frame k belongs to call k % ncalls), each call's
// sequence and timestamp continuing from its last frame. Calls are split
// over the CPUs (each call's SRTP context is used by one goroutine).
func (s *srtpSender) prepare(ncalls int, total uint64) error {
	if ncalls <= 0 || ncalls > len(s.streams) {
		return fmt.Errorf("%w: srtp sender has %d calls, asked for %d", ErrConfig, len(s.streams), ncalls)
	}
	size := total * srtpFrameLen
	if size > maxSRTPBuffer {
		return fmt.Errorf("%w: %d pre-encrypted SRTP frames need %d MB (at most %d MB): fewer calls or a shorter --duration",
			ErrConfig, total, size>>20, maxSRTPBuffer>>20)
	}
	if uint64(cap(s.frames)) < size {
		s.frames = nil // let the old one go first
		s.frames = make([]byte, size)
	}
	s.frames = s.frames[:size]
	s.nframes = int(total)
	workers := min(runtime.NumCPU(), ncalls)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var plain [RTPBytes]byte
			var hdr rtp.Header
			for c := w; c < ncalls; c += workers {
				st := s.streams[c]
				n := uint64(0)
				for k := uint64(c); k < total; k += uint64(ncalls) {
					f := s.frames[k*srtpFrameLen : (k+1)*srtpFrameLen]
					copy(f, st.frame[:])
					p := rtpPlain(plain[:], st.ssrc, st.seq+uint16(n), st.ts+uint32(n)*160)
					out, err := st.ctx.EncryptRTP(f[42:42:srtpFrameLen], p, &hdr)
					if err != nil {
						errs[w] = fmt.Errorf("media: srtp encrypt call %d: %w", c, err)
						return
					}
					if len(out) != SRTPBytes || &out[0] != &f[42] {
						errs[w] = fmt.Errorf("media: srtp encrypt call %d: %d bytes out of place", c, len(out))
						return
					}
					n++
				}
				// Frames the step does not get to send are lost to the
				// relay, like loss on the wire: the next ones go on from
				// here, so sequence numbers never repeat.
				st.seq += uint16(n)
				st.ts += uint32(n) * 160
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// burst sends prepared frames [from, to) as fast as sendmmsg takes them and
// returns how many it took. A full socket buffer blocks (the veth gives
// room back as the relay's side takes frames); ENOBUFS ends the burst early.
func (s *srtpSender) burst(from, to int) (int, error) {
	sent := from
	for sent < to {
		n := min(to-sent, srtpBatch)
		for i := 0; i < n; i++ {
			s.iovs[i].Base = &s.frames[(sent+i)*srtpFrameLen]
			s.iovs[i].SetLen(srtpFrameLen)
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(n), 0, 0, 0)
		runtime.KeepAlive(s.frames)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.ENOBUFS || errno == unix.EAGAIN:
			return sent - from, nil
		case errno != 0:
			return sent - from, fmt.Errorf("media: srtp sendmmsg: %w", errno)
		case r == 0:
			return sent - from, nil
		}
		sent += int(r)
	}
	return sent - from, nil
}

// sendRound encrypts and sends k packets of every call, back to back.
func (s *srtpSender) sendRound(k int) error {
	if len(s.streams) == 0 || k <= 0 {
		return nil
	}
	if err := s.prepare(len(s.streams), uint64(k*len(s.streams))); err != nil {
		return err
	}
	if _, err := s.burst(0, s.nframes); err != nil {
		return err
	}
	return nil
}

// run sends the prepared frames at rate packets per second, paced every
// srtpTick, over d, and returns what sendmmsg took and over how long, with
// the XDP generator's rules: each tick sends what the rate owes up to the
// end of the tick (at most two ticks' worth more, to catch up), the run
// ends when all was sent or at d plus one chunk, and a shortfall is the
// result, not an error.
func (s *srtpSender) run(ctx context.Context, rate float64, d time.Duration, p pacing) (genResult, error) {
	var res genResult
	total := min(uint64(rate*d.Seconds()), uint64(s.nframes))
	maxRun := uint64(2*rate*srtpTick.Seconds()) + srtpBatch
	var done uint64
	t0 := time.Now()
	deadline := t0.Add(d + p.Chunk)
	for {
		now := time.Now()
		if done >= total || now.After(deadline) || ctx.Err() != nil {
			res.Sent, res.Elapsed = done, now.Sub(t0)
			if done >= total {
				res.Elapsed = d
			}
			return res, nil
		}
		owed := min(total, uint64(rate*(now.Sub(t0)+srtpTick).Seconds()))
		if owed > done {
			n, err := s.burst(int(done), int(done+min(owed-done, maxRun)))
			done += uint64(n)
			if err != nil {
				return res, err
			}
		}
		next := t0.Add(now.Sub(t0).Truncate(srtpTick) + srtpTick)
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
	}
}

// newSRTPKey returns a fresh master key and salt for a caller.
func newSRTPKey() ([]byte, error) {
	k := make([]byte, srtpKeyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("media: srtp key: %w", err)
	}
	return k, nil
}

// savpSDP is the caller's offer in --srtp: benchSDP's audio line as
// RTP/SAVP with one a=crypto line.
func savpSDP(a netip.AddrPort, key []byte) string {
	return fmt.Sprintf("v=0\r\no=- %[2]d 1 IN IP4 %[1]s\r\ns=xtrunk bench\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\na=crypto:1 %[3]s inline:%[4]s\r\n",
		a.Addr(), a.Port(), SRTPSuite, base64.StdEncoding.EncodeToString(key))
}

// answerKey checks that the relay's answer to the caller is RTP/SAVP with
// one usable a=crypto line of the offered suite, and returns its key: the
// one the relay encrypts with toward the caller.
func answerKey(body string) ([]byte, error) {
	s, err := sdp.Parse([]byte(body))
	if err != nil {
		return nil, err
	}
	if len(s.Media) == 0 || !isSAVP(s.Media[0].Proto) {
		return nil, fmt.Errorf("%w: the answer to the caller is not RTP/SAVP:\n%s", ErrSRTP, body)
	}
	cs, err := s.Media[0].Cryptos()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSRTP, err)
	}
	for _, c := range cs {
		if c.Suite == SRTPSuite && len(c.KeyParams) == 1 && len(c.KeyParams[0].Key) == srtpKeyLen && !c.KeyParams[0].HasMKI {
			return c.KeyParams[0].Key, nil
		}
	}
	return nil, fmt.Errorf("%w: no %s key in the answer to the caller:\n%s", ErrSRTP, SRTPSuite, body)
}

// plainOffer checks that the offer the relay passes on to the callee is
// plain RTP without keys.
func plainOffer(body string) error {
	s, err := sdp.Parse([]byte(body))
	if err != nil {
		return err
	}
	if len(s.Media) == 0 || isSAVP(s.Media[0].Proto) || len(s.Media[0].AttrValues("crypto")) > 0 {
		return fmt.Errorf("%w: the offer to the callee is not plain RTP/AVP:\n%s", ErrSRTP, body)
	}
	return nil
}

func isSAVP(proto string) bool { return strings.Contains(strings.ToUpper(proto), "SAVP") }

// checkSRTP checks one call both ways before the sinks count it: an SRTP
// packet from the caller must reach the callee decrypted, byte for byte,
// and a plain packet from the callee must reach the caller as SRTP that
// decrypts with the relay's key from its answer. It runs before the sinks
// count call 0 (they pass its frames to the stack) and sends the packets
// again until they arrive or the timeout passes.
func checkSRTP(s *srtpSender, genB *generator, caller, callee *testbed.NS, a, b genCall) error {
	atCaller, err := caller.ListenUDP(netip.AddrPortFrom(callerIP, a.SrcPort).String())
	if err != nil {
		return err
	}
	defer atCaller.Close()
	atCallee, err := callee.ListenUDP(netip.AddrPortFrom(calleeIP, b.SrcPort).String())
	if err != nil {
		return err
	}
	defer atCallee.Close()
	if err := genB.setCalls([]genCall{b}, 0); err != nil {
		return err
	}
	dec, err := srtp.CreateContext(a.RelayKey[:16], a.RelayKey[16:], srtpProfile)
	if err != nil {
		return fmt.Errorf("%w: relay key: %w", ErrSRTP, err)
	}
	st := s.streams[0]
	type got struct {
		ok  bool
		err error
	}
	var toCallee, toCaller got
	buf := make([]byte, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !(toCallee.ok && toCaller.ok) {
		if !toCallee.ok {
			seq, ts := st.seq, st.ts
			if err := s.prepare(1, 1); err != nil {
				return err
			}
			if _, err := s.burst(0, 1); err != nil {
				return err
			}
			_ = atCallee.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, _, err := atCallee.ReadFromUDPAddrPort(buf); err == nil {
				var want [RTPBytes]byte
				if bytes.Equal(buf[:n], rtpPlain(want[:], st.ssrc, seq, ts)) {
					toCallee = got{ok: true}
				} else {
					toCallee.err = fmt.Errorf("the callee got %d bytes that are not the caller's packet decrypted", n)
				}
			}
		}
		if !toCaller.ok {
			if err := genB.sendRound(1); err != nil {
				return err
			}
			_ = atCaller.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, _, err := atCaller.ReadFromUDPAddrPort(buf); err == nil {
				var h rtp.Header
				p, err := dec.DecryptRTP(nil, buf[:n], &h)
				switch {
				case err != nil:
					toCaller.err = fmt.Errorf("the caller got %d bytes that do not decrypt with the relay's key: %w", n, err)
				case n != SRTPBytes || len(p) != RTPBytes || h.SSRC != genB.ssrcBase || h.PayloadType != 0:
					toCaller.err = fmt.Errorf("the caller decrypted %d bytes, SSRC %#x PT %d; want %d, %#x, 0", len(p), h.SSRC, h.PayloadType, RTPBytes, genB.ssrcBase)
				default:
					toCaller = got{ok: true}
				}
			}
		}
	}
	var errs []error
	if !toCallee.ok {
		errs = append(errs, fmt.Errorf("%w: caller→callee: %v", ErrSRTP, orNothing(toCallee.err)))
	}
	if !toCaller.ok {
		errs = append(errs, fmt.Errorf("%w: callee→caller: %v", ErrSRTP, orNothing(toCaller.err)))
	}
	return errors.Join(errs...)
}

func orNothing(err error) error {
	if err == nil {
		return errors.New("nothing arrived")
	}
	return err
}
