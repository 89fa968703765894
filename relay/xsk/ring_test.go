package xsk

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests run the ring logic without a kernel: each ring lives in a
// plain byte slice laid out as the kernel lays out its mmap'd rings, and a
// "kernel view" of the same memory (a ring with the roles swapped) plays
// the other side.

// fakeOffsets puts the indexes on separate cache lines, as the kernel does.
var fakeOffsets = unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

// newRingAt makes a ring over fresh memory whose producer and consumer
// indexes both start at start (to test the wrap at 2^32).
func newRingAt(size, start uint32, desc, producer bool) (*ring, []byte) {
	mem := make([]byte, ringBytes(fakeOffsets, size, desc))
	binary.NativeEndian.PutUint32(mem[fakeOffsets.Producer:], start)
	binary.NativeEndian.PutUint32(mem[fakeOffsets.Consumer:], start)
	return newRing(mem, fakeOffsets, size, desc, true, producer), mem
}

// kernelView is the kernel's side of a ring over the same memory.
func kernelView(mem []byte, size uint32, desc, kernelProduces bool) *ring {
	return newRing(mem, fakeOffsets, size, desc, true, kernelProduces)
}

func TestRingWrapAround(t *testing.T) {
	const size = 8
	for _, start := range []uint32{0, 1<<31 - 3, 1<<32 - 5, 1<<32 - 1} {
		user, mem := newRingAt(size, start, false, true)
		kern := kernelView(mem, size, false, false)
		if got := kern.available(size); got != 0 {
			t.Fatalf("start %#x: new ring has %d entries", start, got)
		}
		if got := user.free(size); got != size {
			t.Fatalf("start %#x: new ring has %d free, want %d", start, got, size)
		}
		next, want := uint64(0), uint64(0)
		rng := rand.New(rand.NewPCG(uint64(start), 1))
		for range 1000 {
			// Produce a random batch, as much as fits.
			n := min(user.free(size), uint32(rng.IntN(size+1)))
			idx := user.reserve(n)
			for i := range n {
				user.addrs[(idx+i)&user.mask] = next
				next++
			}
			user.submit()
			if user.free(size+1) > size {
				t.Fatalf("start %#x: more than a ring free", start)
			}
			// Consume a random batch and check order.
			m := kern.available(uint32(rng.IntN(size + 1)))
			idx = kern.peek(m)
			for i := range m {
				if got := kern.addrs[(idx+i)&kern.mask]; got != want {
					t.Fatalf("start %#x: entry %d is %d", start, want, got)
				}
				want++
			}
			kern.release()
		}
		// Drain, then fill to the brim: full means exactly size entries.
		m := kern.available(size)
		kern.peek(m)
		want += uint64(m)
		kern.release()
		if want != next {
			t.Fatalf("start %#x: consumed %d of %d", start, want, next)
		}
		if f := user.free(size); f != size {
			t.Fatalf("start %#x: drained ring has %d free", start, f)
		}
		user.reserve(size)
		user.submit()
		if f := user.free(1); f != 0 {
			t.Fatalf("start %#x: full ring has %d free", start, f)
		}
		if a := kern.available(size + 5); a != size {
			t.Fatalf("start %#x: full ring has %d available", start, a)
		}
		if start >= 1<<32-5 && atomic.LoadUint32(user.producer) >= start {
			t.Fatalf("start %#x: producer %#x did not wrap", start, atomic.LoadUint32(user.producer))
		}
	}
}

func TestRingCorruptProducerClamped(t *testing.T) {
	user, mem := newRingAt(8, 10, true, false)
	atomic.StoreUint32(user.producer, 10+1000) // a kernel claiming more than a ring
	if got := user.available(100); got != 8 {
		t.Fatalf("available %d, want the ring size", got)
	}
	_ = mem
}

// fakeSocket is a Socket whose four rings and UMEM are plain memory,
// with every index starting at start, and the kernel's views of them.
type fakeSocket struct {
	*Socket
	kFill, kComp, kRx, kTx *ring
}

func newFakeSocket(t *testing.T, frames, frameSize, ringSize int, start uint32) *fakeSocket {
	t.Helper()
	size := uint32(ringSize)
	s := &Socket{fd: -1, where: "fake queue", frameSize: uint64(frameSize), mode: ModeCopy}
	s.frameShift = uint(bits.TrailingZeros64(s.frameSize))
	s.umem = make([]byte, frames*frameSize)
	var fm, cm, rm, tm []byte
	s.fill, fm = newRingAt(size, start, false, true)
	s.comp, cm = newRingAt(size, start, false, false)
	s.rx, rm = newRingAt(size, start, true, false)
	s.tx, tm = newRingAt(size, start, true, true)
	s.initFrames(uint32(frames))
	f := &fakeSocket{
		Socket: s,
		kFill:  kernelView(fm, size, false, false),
		kComp:  kernelView(cm, size, false, true),
		kRx:    kernelView(rm, size, true, true),
		kTx:    kernelView(tm, size, true, false),
	}
	// The fake kernel never asks for wakeups unless a test says so.
	atomic.StoreUint32(s.tx.flags, 0)
	atomic.StoreUint32(s.fill.flags, 0)
	t.Cleanup(func() { s.closed = true })
	return f
}

// deliver plays the kernel receiving up to n packets: fill ring entries
// become RX descriptors 256 bytes into the frame, each payload the
// packet's sequence number. It returns how many it delivered.
func (f *fakeSocket) deliver(n int, seq *uint32) int {
	m := min(f.kFill.available(uint32(n)), f.kRx.free(uint32(n)))
	fi := f.kFill.peek(m)
	ri := f.kRx.reserve(m)
	for i := range m {
		addr := f.kFill.addrs[(fi+i)&f.kFill.mask] + unix.XDP_PACKET_HEADROOM
		binary.BigEndian.PutUint32(f.umem[addr:], *seq)
		*seq++
		f.kRx.descs[(ri+i)&f.kRx.mask] = unix.XDPDesc{Addr: addr, Len: 4}
	}
	f.kFill.release()
	f.kRx.submit()
	return int(m)
}

// transmit plays the kernel sending every TX descriptor and completing it.
func (f *fakeSocket) transmit() int {
	m := min(f.kTx.available(f.kTx.size), f.kComp.free(f.kTx.size))
	ti := f.kTx.peek(m)
	ci := f.kComp.reserve(m)
	for i := range m {
		f.kComp.addrs[(ci+i)&f.kComp.mask] = f.kTx.descs[(ti+i)&f.kTx.mask].Addr
	}
	f.kTx.release()
	f.kComp.submit()
	return int(m)
}

// census counts frames by owner.
func (s *Socket) census() (counts [frameKernelTx + 1]int) {
	for _, st := range s.state {
		counts[st]++
	}
	return counts
}

func TestSocketRingsNoLeak(t *testing.T) {
	const frames, ringSize = 32, 16
	for _, start := range []uint32{0, 1<<32 - 7} {
		f := newFakeSocket(t, frames, 2048, ringSize, start)
		var sent, got uint32
		out := make([]Desc, 8)
		txQueued := 0
		for cycle := range 2000 {
			f.deliver(1+cycle%ringSize, &sent)
			for {
				n := f.Receive(out)
				if n == 0 {
					break
				}
				for i, d := range out[:n] {
					if v := binary.BigEndian.Uint32(f.Frame(d)); v != got {
						t.Fatalf("start %#x: packet %d carries %d", start, got, v)
					}
					got++
					// Every third packet goes back out without a copy.
					if got%3 == 0 && f.TxFromRx(d) {
						out[i] = Desc{} // no longer ours to release
						txQueued++
					}
				}
				kept := out[:0]
				for _, d := range out[:n] {
					if d != (Desc{}) {
						kept = append(kept, d)
					}
				}
				f.Release(kept)
			}
			for range cycle % 5 {
				addr, buf, ok := f.NextTx()
				if !ok {
					break
				}
				buf[0] = byte(cycle)
				f.SubmitTx(addr, 60)
				txQueued++
			}
			if err := f.FlushTx(); err != nil {
				t.Fatal(err)
			}
			if cycle%2 == 0 {
				f.transmit()
				f.Reap()
			}
		}
		f.transmit()
		f.Reap()
		if got != sent {
			t.Fatalf("start %#x: received %d of %d", start, got, sent)
		}
		c := f.census()
		if c[frameKernelRx] != frames/2 || c[frameTxFree] != frames/2 || len(f.free) != frames/2 || f.TxInFlight() != 0 {
			t.Fatalf("start %#x: frames leaked: census %v, free list %d, in flight %d", start, c, len(f.free), f.TxInFlight())
		}
		if got := f.fill.free(ringSize); got != ringSize-frames/2 {
			t.Fatalf("start %#x: fill ring has %d free, want %d (every receive frame back in it)", start, got, ringSize-frames/2)
		}
		if r := f.c.refused.Load(); r != 0 {
			t.Fatalf("start %#x: %d descriptors refused", start, r)
		}
		if uint64(txQueued) != f.c.completed.Load() || f.c.transmitted.Load() != f.c.completed.Load() {
			t.Fatalf("start %#x: queued %d, transmitted %d, completed %d", start, txQueued, f.c.transmitted.Load(), f.c.completed.Load())
		}
		if start != 0 && atomic.LoadUint32(f.rx.producer) >= start {
			t.Fatalf("start %#x: RX producer %#x did not wrap", start, atomic.LoadUint32(f.rx.producer))
		}
	}
}

func TestSocketRefusesMisuse(t *testing.T) {
	f := newFakeSocket(t, 16, 2048, 8, 0)
	var seq uint32
	f.deliver(2, &seq)
	out := make([]Desc, 4)
	if n := f.Receive(out); n != 2 {
		t.Fatalf("received %d", n)
	}
	f.Release(out[:1])
	f.Release(out[:1])                                 // twice
	f.Release([]Desc{{Addr: 1 << 40}})                 // not in the UMEM
	f.Release([]Desc{{Addr: 15 * 2048}})               // a TX frame
	if f.Frame(Desc{Addr: 16 * 2048, Len: 1}) != nil { // past the UMEM
		t.Fatal("Frame past the UMEM")
	}
	if f.Frame(Desc{Addr: 2047, Len: 2}) != nil { // across two frames
		t.Fatal("Frame across frames")
	}
	if f.TxFromRx(Desc{Addr: out[1].Addr, Len: 4000}) { // too long
		t.Fatal("TxFromRx of an oversized packet")
	}
	f.SubmitTx(0, 60) // an RX frame
	addr, _, ok := f.NextTx()
	if !ok {
		t.Fatal("no TX frame")
	}
	f.SubmitTx(addr, 4096) // too long: refused, frame back on the free list
	f.SubmitTx(addr, 60)   // no longer handed out
	f.DropTx(addr)         // neither
	if got := f.c.refused.Load(); got != 8 {
		t.Fatalf("refused %d, want 8", got)
	}
	f.Release(out[1:2])
	c := f.census()
	if c[frameKernelRx] != 8 || c[frameTxFree] != 8 {
		t.Fatalf("census after misuse %v", c)
	}
	if f.tx.pending() != 0 || f.tx.unpublished() != 0 {
		t.Fatal("a refused descriptor reached the TX ring")
	}
}

func TestFlushTxHonoursNeedWakeup(t *testing.T) {
	f := newFakeSocket(t, 16, 2048, 8, 0)
	addr, _, _ := f.NextTx()
	f.SubmitTx(addr, 60)
	// Flag clear: published, no system call.
	if err := f.FlushTx(); err != nil {
		t.Fatal(err)
	}
	if f.c.kicks.Load() != 0 || f.c.kicksSkipped.Load() != 1 || f.kTx.available(8) != 1 {
		t.Fatalf("flag clear: kicks %d skipped %d", f.c.kicks.Load(), f.c.kicksSkipped.Load())
	}
	// Flag set: the kick is made (on this fake, fd -1, it fails).
	atomic.StoreUint32(f.tx.flags, unix.XDP_RING_NEED_WAKEUP)
	if err := f.FlushTx(); !errors.Is(err, ErrKick) || f.c.kicks.Load() != 1 {
		t.Fatalf("flag set: %v, kicks %d", err, f.c.kicks.Load())
	}
	// Nothing pending: no kick whatever the flag says.
	f.transmit()
	if err := f.FlushTx(); err != nil || f.c.kicks.Load() != 1 {
		t.Fatalf("idle: %v, kicks %d", err, f.c.kicks.Load())
	}
}

func TestConfigDefaultsAndLimits(t *testing.T) {
	c, err := Config{Ifindex: 1}.withDefaults()
	if err != nil || c.Frames != DefaultFrames || c.FrameSize != DefaultFrameSize || c.RingSize != DefaultRingSize {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range []Config{
		{},
		{Ifindex: 1, Queue: -1},
		{Ifindex: 1, Frames: 3000},
		{Ifindex: 1, Frames: 1},
		{Ifindex: 1, FrameSize: 1024},
		{Ifindex: 1, FrameSize: 3000},
		{Ifindex: 1, FrameSize: 1 << 20},
		{Ifindex: 1, RingSize: 1000},
		{Ifindex: 1, Frames: 8192, RingSize: 2048}, // fill ring cannot hold 4096 receive frames
	} {
		if _, err := Open(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", bad, err)
		}
	}
}

func BenchmarkRingBatch(b *testing.B) {
	user, mem := newRingAt(2048, 0, true, true)
	kern := kernelView(mem, 2048, true, false)
	b.ReportAllocs()
	const batch = 64
	for b.Loop() {
		idx := user.reserve(min(batch, user.free(batch)))
		for i := range uint32(batch) {
			user.descs[(idx+i)&user.mask] = unix.XDPDesc{Addr: uint64(i), Len: 60}
		}
		user.submit()
		n := kern.available(batch)
		kern.peek(n)
		kern.release()
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "descs/s")
}

// TestNoAllocationPerPacket runs a whole receive/transmit cycle on the
// fake rings and counts allocations: the hot path must make none.
func TestNoAllocationPerPacket(t *testing.T) {
	f := newFakeSocket(t, 64, 2048, 32, 1<<32-100)
	out := make([]Desc, 16)
	var seq uint32
	allocs := testing.AllocsPerRun(1000, func() {
		f.deliver(16, &seq)
		n := f.Receive(out)
		_ = f.Frame(out[0])
		f.TxFromRx(out[0])
		f.Release(out[1:n])
		for range 8 {
			addr, _, ok := f.NextTx()
			if !ok {
				break
			}
			f.SubmitTx(addr, 100)
		}
		if err := f.FlushTx(); err != nil {
			t.Fatal(err)
		}
		f.transmit()
		f.Reap()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per cycle", allocs)
	}
	if r := f.c.refused.Load(); r != 0 {
		t.Fatalf("%d refused", r)
	}
}

// TestLaggingConsumerIndexes plays a kernel that publishes its consumer
// index late (after the RX descriptors or completions of the same batch,
// as net/xdp does): with rings exactly as large as each side, the frames
// given back in that window find no room and must wait in the socket's
// queues, not be lost.
func TestLaggingConsumerIndexes(t *testing.T) {
	const frames, size = 16, 8
	f := newFakeSocket(t, frames, 2048, size, 1<<32-3)
	var seq uint32
	// RX: the kernel uses every fill entry but has not released them.
	m := f.kFill.available(size)
	fi, ri := f.kFill.peek(m), f.kRx.reserve(m)
	for i := range m {
		f.kRx.descs[(ri+i)&f.kRx.mask] = unix.XDPDesc{Addr: f.kFill.addrs[(fi+i)&f.kFill.mask] + 256, Len: 4}
	}
	f.kRx.submit()
	out := make([]Desc, size)
	if n := f.Receive(out); n != size {
		t.Fatalf("received %d", n)
	}
	f.Release(out)
	if len(f.fillq) != size || f.c.refused.Load() != 0 {
		t.Fatalf("fill queue %d, refused %d", len(f.fillq), f.c.refused.Load())
	}
	f.kFill.release()
	f.Receive(out) // nothing to receive, but the queued frames move on
	if len(f.fillq) != 0 || f.kFill.available(size) != size {
		t.Fatalf("fill queue %d after the kernel caught up", len(f.fillq))
	}
	if f.deliver(size, &seq) != size {
		t.Fatal("refilled frames not usable")
	}

	// TX: completions arrive before the TX consumer index moves.
	submitAll := func() {
		for {
			addr, _, ok := f.NextTx()
			if !ok {
				return
			}
			f.SubmitTx(addr, 60)
		}
	}
	submitAll()
	if err := f.FlushTx(); err != nil {
		t.Fatal(err)
	}
	m = f.kTx.available(size)
	ti, ci := f.kTx.peek(m), f.kComp.reserve(m)
	for i := range m {
		f.kComp.addrs[(ci+i)&f.kComp.mask] = f.kTx.descs[(ti+i)&f.kTx.mask].Addr
	}
	f.kComp.submit()
	if f.Reap() != size {
		t.Fatal("completions not reaped")
	}
	submitAll()
	if err := f.FlushTx(); err != nil {
		t.Fatal(err)
	}
	if len(f.txq) != size {
		t.Fatalf("TX queue %d, want %d waiting for room", len(f.txq), size)
	}
	f.kTx.release()
	if err := f.FlushTx(); err != nil {
		t.Fatal(err)
	}
	if len(f.txq) != 0 || f.transmit() != size || f.Reap() != size {
		t.Fatalf("TX queue %d after the kernel caught up", len(f.txq))
	}
	c := f.census()
	if c[frameTxFree] != frames/2 || f.TxInFlight() != 0 || f.c.refused.Load() != 0 {
		t.Fatalf("census %v, in flight %d, refused %d", c, f.TxInFlight(), f.c.refused.Load())
	}
}

func TestReleaseHonoursFillNeedWakeup(t *testing.T) {
	f := newFakeSocket(t, 16, 2048, 8, 0)
	var seq uint32
	out := make([]Desc, 8)
	f.deliver(4, &seq)
	f.Receive(out)
	f.Release(out[:2]) // flag clear: published, no system call
	if f.c.fillWakeups.Load() != 0 || f.c.fillWakeupsSkipped.Load() != 1 {
		t.Fatalf("flag clear: wakeups %d, skipped %d", f.c.fillWakeups.Load(), f.c.fillWakeupsSkipped.Load())
	}
	atomic.StoreUint32(f.fill.flags, unix.XDP_RING_NEED_WAKEUP)
	f.Release(out[2:4]) // flag set: recvfrom (on this fake, fd -1, it fails harmlessly)
	if f.c.fillWakeups.Load() != 1 || f.c.fillWakeupsSkipped.Load() != 1 {
		t.Fatalf("flag set: wakeups %d, skipped %d", f.c.fillWakeups.Load(), f.c.fillWakeupsSkipped.Load())
	}
	f.Release(nil) // nothing published: no wakeup either way
	if f.c.fillWakeups.Load() != 1 {
		t.Fatal("wakeup without new fill entries")
	}
	if f.kFill.available(8) != 8 {
		t.Fatal("released frames not in the fill ring")
	}
}
