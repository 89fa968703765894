package xsk

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTxWakeupLab shows FlushTx making the sendto only when the TX ring
// asks for it. In copy mode the kernel keeps NEED_WAKEUP set on the TX
// ring (sendto is what transmits), so the test clears the flag itself to
// play a zero-copy driver that is already busy: then FlushTx publishes
// the descriptors without a system call, and in copy mode nothing is
// sent until the flag is back and the next FlushTx kicks.
func TestTxWakeupLab(t *testing.T) {
	l := newXSKLab(t)
	s := l.open(t, Config{Frames: 256, RingSize: 128})
	if s.tx.flags == nil || s.fill.flags == nil {
		t.Fatal("kernel without need_wakeup (XDP_MMAP_OFFSETS v1)")
	}
	if !s.tx.needWakeup() {
		t.Fatal("copy mode TX ring without NEED_WAKEUP")
	}
	ch := l.listen(t)
	const n = 8

	atomic.StoreUint32(s.tx.flags, 0)
	for i := range n {
		if !l.sendTx(t, s, fmt.Appendf(nil, "wake %d", i)) {
			t.Fatal("no TX frame")
		}
	}
	if err := s.FlushTx(); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Stats()
	if st.Kicks != 0 || st.KicksSkipped != 1 {
		t.Fatalf("flag clear: kicks %d, skipped %d", st.Kicks, st.KicksSkipped)
	}
	// Published but not sent: the kernel has not consumed the descriptors.
	if p := s.tx.pending(); p != n {
		t.Fatalf("TX ring holds %d descriptors, want %d", p, n)
	}
	select {
	case b := <-ch:
		t.Fatalf("peer received %q without a kick", b)
	case <-time.After(200 * time.Millisecond):
	}

	atomic.StoreUint32(s.tx.flags, unix.XDP_RING_NEED_WAKEUP)
	flushes := 1 + drainTx(t, s)
	seen := map[string]int{}
	expect(t, ch, seen, n)
	st, _ = s.Stats()
	if st.Kicks == 0 || st.Kicks+st.KicksSkipped > uint64(flushes) || len(seen) != n {
		t.Fatalf("flag set: kicks %d, skipped %d, flushes %d, delivered %d", st.Kicks, st.KicksSkipped, flushes, len(seen))
	}
	if !s.tx.needWakeup() {
		t.Fatal("kernel cleared NEED_WAKEUP on a copy-mode TX ring")
	}
	t.Logf("stats: %+v", st)
}

// TestTxFromRxLab echoes datagrams back to the sender without copying
// them: each received frame is rewritten in place (addresses swapped,
// checksums recomputed) and transmitted with TxFromRx.
func TestTxFromRxLab(t *testing.T) {
	l := newXSKLab(t)
	const frames, total = 256, 1024
	s := l.open(t, Config{Frames: frames, RingSize: frames / 2})
	ch := l.listen(t)
	conn, err := l.snd.DialUDPFrom(netip.AddrPortFrom(sndAddr.Addr(), 0).String(), netip.AddrPortFrom(rcvAddr.Addr(), xskPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out := make([]Desc, 64)
	seen := map[string]int{}
	const window = 32
	for i := 0; i < total; i += window {
		for j := i; j < i+window; j++ {
			if _, err := fmt.Fprintf(conn, "echo %d", j); err != nil {
				t.Fatal(err)
			}
		}
		echoed := 0
		deadline := time.Now().Add(20 * time.Second)
		for echoed < window {
			k := s.Receive(out)
			if k == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("echoed %d of %d", echoed, window)
				}
				s.Wait(50 * time.Millisecond)
				continue
			}
			for _, d := range out[:k] {
				f := s.Frame(d)
				u, err := parseUDP4(f)
				if err != nil {
					t.Fatal(err)
				}
				n := buildUDP4(f[:cap(f)], l.link.B.MAC, l.link.A.MAC,
					u.dst, netip.AddrPortFrom(u.src.Addr(), peerPort), u.payload)
				if !s.TxFromRx(Desc{Addr: d.Addr, Len: uint32(n)}) {
					t.Fatalf("TxFromRx refused %+v (free list %d)", d, len(s.free))
				}
			}
			echoed += k
			if err := s.FlushTx(); err != nil {
				t.Fatal(err)
			}
		}
		drainTx(t, s)
		expect(t, ch, seen, window)
	}
	for i := range total {
		if c := seen[fmt.Sprintf("echo %d", i)]; c != 1 {
			t.Fatalf("echo %d arrived %d times", i, c)
		}
	}
	// Frames changed sides but neither side shrank.
	c := s.census()
	if c[frameKernelRx] != frames/2 || c[frameTxFree] != frames/2 || len(s.free) != frames/2 {
		t.Fatalf("census %v, free list %d", c, len(s.free))
	}
	st, _ := s.Stats()
	if st.Received != total || st.Completed != total || st.Refused != 0 || st.RxDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}
