package media

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// liveFrames reports whether this kernel runs XDP programs in
// BPF_F_TEST_XDP_LIVE_FRAMES mode for us: nil if it does, else why not.
// Some kernels refuse it (EPERM on a locked-down or sandboxed kernel,
// EINVAL before 5.18); the generator then falls back to packetTx. The
// probe runs a program that drops its one frame, so nothing is sent.
var liveFrames = sync.OnceValue(func() error {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "Dual BSD/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1 /* XDP_DROP */), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("load probe: %w", err)
	}
	defer p.Close()
	_, err = p.Run(&ebpf.RunOptions{Data: make([]byte, frameLen), Repeat: 1, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES})
	return err
})

// packetTxKind starts the results' generator when packetTx sends.
const packetTxKind = "sendmmsg on AF_PACKET"

// generatorKind describes how the generators send on this kernel, for
// the results.
func generatorKind() string {
	if err := liveFrames(); err != nil {
		return fmt.Sprintf(packetTxKind+", frames built in Go (this kernel refuses XDP live frames: %v; rates above ~1 Mpps per generator are the generator's limit, not the relay's)", err)
	}
	return "XDP live frames (BPF_PROG_TEST_RUN)"
}

// packetTx is the generator's fallback where the kernel refuses live
// frames: the same frames xm_gen builds (round robin over the calls, the
// same headers, sequence, timestamp, SSRC and send stamp), built in Go
// and sent with sendmmsg on an AF_PACKET socket bound to the generator's
// veth. A frame the veth drops (its peer's ring full) counts as sent, as
// it does for xm_gen: it is loss between the generator and the relay.
type packetTx struct {
	fd       int
	ssrcBase uint32
	hdrs     [][42]byte // per call: Ethernet, IPv4, UDP
	ncalls   int
	seq      uint64 // frames sent so far, as xm_gen's gen_state

	frames [genBatch][frameLen]byte
	msgs   [genBatch]unix.Mmsghdr
	iovs   [genBatch]unix.Iovec
}

// newPacketTx opens the socket in end's namespace.
func newPacketTx(end *testbed.End, ssrcBase uint32) (*packetTx, error) {
	fd, err := packetSocket(end)
	if err != nil {
		return nil, fmt.Errorf("media: generator: %w", err)
	}
	t := &packetTx{fd: fd, ssrcBase: ssrcBase}
	for i := range t.msgs {
		t.iovs[i].Base = &t.frames[i][0]
		t.iovs[i].SetLen(frameLen)
		t.msgs[i].Hdr.Iov = &t.iovs[i]
		t.msgs[i].Hdr.SetIovlen(1)
	}
	return t, nil
}

// Close closes the socket.
func (t *packetTx) Close() error {
	if t == nil || t.fd < 0 {
		return nil
	}
	err := unix.Close(t.fd)
	t.fd = -1
	if err != nil {
		return fmt.Errorf("media: generator socket: %w", err)
	}
	return nil
}

// setCalls installs calls[from:] and cycles over all len(calls) of them.
func (t *packetTx) setCalls(end, peer *testbed.End, calls []genCall, from int) {
	t.hdrs = t.hdrs[:min(from, len(t.hdrs))]
	for i := len(t.hdrs); i < len(calls); i++ {
		var h [42]byte
		buildFrameHeader(h[:], end.MAC, peer.MAC, end.IPv4(), calls[i].Dst.Addr(), calls[i].SrcPort, calls[i].Dst.Port(), 8+RTPBytes)
		t.hdrs = append(t.hdrs, h)
	}
	t.ncalls = len(calls)
}

// frame writes frame number seq into b, as xm_gen does.
func (t *packetTx) frame(b *[frameLen]byte, seq uint64, now uint64) {
	n := uint64(t.ncalls)
	idx, round := seq%n, seq/n
	copy(b[:42], t.hdrs[idx][:])
	r := b[42:]
	r[0], r[1] = 0x80, 0
	binary.BigEndian.PutUint16(r[2:], uint16(round))
	binary.BigEndian.PutUint32(r[4:], uint32(round)*160)
	binary.BigEndian.PutUint32(r[8:], t.ssrcBase+uint32(idx))
	binary.NativeEndian.PutUint64(r[12:], now) // bpf_ktime_get_ns's clock, as xm_sink reads it
}

// send sends n frames back to back.
func (t *packetTx) send(n uint32) error {
	if t.ncalls == 0 {
		return nil // xm_gen drops every frame without calls
	}
	for left := int(n); left > 0; {
		k := min(left, genBatch)
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		now := uint64(ts.Nano())
		for i := 0; i < k; i++ {
			t.frame(&t.frames[i], t.seq+uint64(i), now)
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(t.fd), uintptr(unsafe.Pointer(&t.msgs[0])), uintptr(k), 0, 0, 0)
		runtime.KeepAlive(t)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.ENOBUFS:
			r = 1 // the first frame was dropped at the veth: sent and lost
		case errno != 0:
			return fmt.Errorf("media: generator sendmmsg: %w", errno)
		case r == 0:
			return fmt.Errorf("media: generator sendmmsg took nothing")
		}
		t.seq += uint64(r)
		left -= int(r)
	}
	return nil
}

// packetSocket opens an AF_PACKET socket bound to end, in end's
// namespace, with room for a few batches in flight (the veth frees each
// frame as the relay's side takes it). protocol 0: it sends only.
func packetSocket(end *testbed.End) (int, error) {
	fd := -1
	err := end.NS.Do(func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: end.Index}); err != nil {
			return fmt.Errorf("bind %s: %w", end, err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		return nil
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
	}
	return fd, err
}
