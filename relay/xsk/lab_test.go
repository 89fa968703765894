package xsk

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// The lab: two namespaces joined by a veth pair. The receiving end ("rcv")
// runs a small XDP program that redirects UDP to xskPort into the XSKMAP
// entry of the RX queue and passes everything else (ARP keeps working);
// the other end ("snd") has ordinary sockets.

const (
	xskPort  = 40000 // UDP port the program redirects
	peerPort = 40001 // UDP port the sender's socket listens on for our TX
	xdpPass  = 2
)

var (
	sndAddr = netip.MustParsePrefix("198.18.0.1/24")
	rcvAddr = netip.MustParsePrefix("198.18.0.2/24")
)

type xskLab struct {
	lab     *testbed.Lab
	snd     *testbed.NS
	rcv     *testbed.NS
	link    *testbed.Link
	xskmap  *ebpf.Map
	attach  link.Link
	ifindex int // of the receiving end, inside rcv
}

// redirectProgram is `if UDP to port: return bpf_redirect_map(xskmap,
// ctx->rx_queue_index, XDP_PASS); return XDP_PASS;` for IPv4 without
// options, in eBPF assembly so the test needs no C toolchain.
func redirectProgram(m *ebpf.Map, port uint16) (*ebpf.Program, error) {
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], port)
	portLE := int32(binary.LittleEndian.Uint16(be[:])) // the u16 load is little-endian
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xsk_test_redir",
		Type:    ebpf.XDP,
		License: "Apache-2.0",
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, hdrLen),
			asm.JGT.Reg(asm.R4, asm.R3, "pass"),
			asm.LoadMem(asm.R4, asm.R2, 12, asm.Half), // EtherType
			asm.JNE.Imm(asm.R4, 0x0008, "pass"),       // 0x0800 read little-endian
			asm.LoadMem(asm.R4, asm.R2, ethLen, asm.Byte),
			asm.JNE.Imm(asm.R4, 0x45, "pass"), // IPv4, no options
			asm.LoadMem(asm.R4, asm.R2, ethLen+9, asm.Byte),
			asm.JNE.Imm(asm.R4, 17, "pass"), // UDP
			asm.LoadMem(asm.R4, asm.R2, ethLen+ipv4Len+2, asm.Half),
			asm.JNE.Imm(asm.R4, portLE, "pass"),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // rx_queue_index
			asm.Mov.Imm(asm.R3, xdpPass),
			asm.FnRedirectMap.Call(),
			asm.Return(),
			asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
			asm.Return(),
		},
	})
}

func newXSKLab(t testing.TB) *xskLab {
	t.Helper()
	lab := labtest.NewLab(t)
	snd, err := lab.AddNS("snd")
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := lab.AddNS("rcv")
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lab.Link(snd, rcv, testbed.LinkOptions{
		AAddrs: []netip.Prefix{sndAddr}, BAddrs: []netip.Prefix{rcvAddr},
		TxChecksumOff: true, // complete checksums from the sender's socket: nothing completes them once redirected
	})
	if err != nil {
		t.Fatal(err)
	}
	// Static neighbours: no ARP needed in either direction.
	if err := snd.AddNeighbor(lk.A.Name, rcvAddr.Addr(), lk.B.MAC); err != nil {
		t.Fatal(err)
	}
	if err := rcv.AddNeighbor(lk.B.Name, sndAddr.Addr(), lk.A.MAC); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	prog, err := redirectProgram(m, xskPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	xl, err := lab.AttachXDP(lk.B, prog, link.XDPDriverMode)
	if err != nil {
		t.Fatal(err)
	}
	return &xskLab{lab: lab, snd: snd, rcv: rcv, link: lk, xskmap: m, attach: xl, ifindex: lk.B.Index}
}

// open opens a socket on the receiving end's queue 0, puts it in the
// XSKMAP and closes it when the test ends.
func (l *xskLab) open(t testing.TB, cfg Config) *Socket {
	t.Helper()
	cfg.Ifindex = l.ifindex
	var s *Socket
	err := l.rcv.Do(func() error {
		var err error
		s, err = Open(cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := l.xskmap.Put(uint32(cfg.Queue), uint32(s.FD())); err != nil {
		t.Fatal(err)
	}
	return s
}

// receiveN takes n descriptors off s, waiting at most a generous deadline,
// and hands each to fn before releasing them all (or, with hold, keeping
// them there).
func receiveN(t testing.TB, s *Socket, n int, out []Desc, fn func(Desc), hold *[]Desc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for got := 0; got < n; {
		k := s.Receive(out[:min(len(out), n-got)])
		if k == 0 {
			if time.Now().After(deadline) {
				st, _ := s.Stats()
				t.Fatalf("received %d of %d; stats %+v", got, n, st)
			}
			if _, err := s.Wait(100 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, d := range out[:k] {
			fn(d)
		}
		if hold != nil {
			*hold = append(*hold, out[:k]...)
		} else {
			s.Release(out[:k])
		}
		got += k
	}
}

func TestReceiveLab(t *testing.T) {
	// A small UMEM so 3000 datagrams wrap the fill and RX rings ~23 times,
	// and the defaults (rings of 2048) wrapped twice.
	t.Run("small", func(t *testing.T) { testReceive(t, 256, 128, 3000) })
	t.Run("defaults", func(t *testing.T) { testReceive(t, 0, 0, 5000) })
}

func testReceive(t *testing.T, frames, ring, total int) {
	l := newXSKLab(t)
	s := l.open(t, Config{Frames: frames, RingSize: ring})
	// A metrics scrape from another goroutine, as the package allows
	// (go test -race checks the claim).
	stop, scraped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				if _, err := s.Stats(); err != nil {
					t.Errorf("Stats: %v", err)
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-scraped }()
	if frames == 0 {
		frames = DefaultFrames
	}
	if s.Mode() != ModeCopy {
		t.Fatalf("mode %q on a veth, want copy", s.Mode())
	}
	conn, err := l.snd.DialUDP(netip.AddrPortFrom(rcvAddr.Addr(), xskPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seen := make([]int, total+frames/2)
	out := make([]Desc, 64)
	check := func(d Desc) {
		u, err := parseUDP4(s.Frame(d))
		if err != nil {
			t.Fatalf("desc %+v: %v", d, err)
		}
		var seq int
		if _, err := fmt.Sscanf(string(u.payload), "seq %d", &seq); err != nil || seq < 0 || seq >= len(seen) {
			t.Fatalf("payload %q", u.payload)
		}
		if u.dst.Port() != xskPort || u.src.Addr() != sndAddr.Addr() {
			t.Fatalf("datagram %s -> %s", u.src, u.dst)
		}
		seen[seq]++
	}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := fmt.Fprintf(conn, "seq %d", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Windows of half the receive frames (at most 128, half the veth's
	// ring): the fill ring never runs dry, so nothing may be dropped.
	window := min(frames/4, 128)
	for i := 0; i < total; i += window {
		n := min(window, total-i)
		send(i, i+n)
		receiveN(t, s, n, out, check, nil)
	}
	// Every receive frame must be back in the fill ring: exactly that
	// many datagrams arrive while none is released.
	var held []Desc
	for i := total; i < total+frames/2; i += window {
		send(i, i+window)
		receiveN(t, s, window, out, check, &held)
	}
	if s.Receive(out) != 0 {
		t.Fatal("more frames than the receive half")
	}
	s.Release(held)
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("datagram %d arrived %d times", i, c)
		}
	}
	c := s.census()
	if c[frameKernelRx] != frames/2 || c[frameTxFree] != frames/2 {
		t.Fatalf("frames leaked: %v", c)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != uint64(total+frames/2) || st.RxDropped != 0 || st.RxInvalidDescs != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
	// In copy mode the kernel never asks for fill ring wakeups: every
	// refill must have skipped the system call.
	if st.FillWakeups != 0 || st.FillWakeupsSkipped == 0 {
		t.Fatalf("fill wakeups %d, skipped %d", st.FillWakeups, st.FillWakeupsSkipped)
	}
	t.Logf("stats: %+v", st)
}

// listen opens the peer's UDP socket that our TX frames are addressed to
// and collects what it reads into a channel.
func (l *xskLab) listen(t testing.TB) <-chan []byte {
	t.Helper()
	c, err := l.snd.ListenUDP(netip.AddrPortFrom(sndAddr.Addr(), peerPort).String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	ch := make(chan []byte, 4096)
	t.Cleanup(func() { c.Close() })
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 2048)
			n, err := c.Read(b)
			if err != nil {
				return
			}
			ch <- b[:n]
		}
	}()
	return ch
}

// sendTx builds one datagram to the peer in a TX frame and queues it.
func (l *xskLab) sendTx(t testing.TB, s *Socket, payload []byte) bool {
	addr, buf, ok := s.NextTx()
	if !ok {
		return false
	}
	n := buildUDP4(buf, l.link.B.MAC, l.link.A.MAC,
		netip.AddrPortFrom(rcvAddr.Addr(), xskPort), netip.AddrPortFrom(sndAddr.Addr(), peerPort), payload)
	if n == 0 {
		t.Fatal("frame too small")
	}
	s.SubmitTx(addr, n)
	return true
}

// drainTx flushes and reaps until every submitted frame has completed,
// and returns how many times it called FlushTx.
func drainTx(t testing.TB, s *Socket) (flushes int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.TxInFlight() > 0 {
		if err := s.FlushTx(); err != nil {
			t.Fatal(err)
		}
		flushes++
		if s.Reap() == 0 {
			if time.Now().After(deadline) {
				st, _ := s.Stats()
				t.Fatalf("%d TX frames never completed; stats %+v", s.TxInFlight(), st)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return flushes
}

// expect reads n datagrams from ch and checks each arrives once.
func expect(t testing.TB, ch <-chan []byte, seen map[string]int, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for range n {
		select {
		case b := <-ch:
			seen[string(b)]++
		case <-timeout:
			t.Fatalf("peer received %d datagrams, %d missing", len(seen), n)
		}
	}
}

func TestTransmitLab(t *testing.T) {
	l := newXSKLab(t)
	const frames, ring, total = 256, 128, 3000
	s := l.open(t, Config{Frames: frames, RingSize: ring})
	ch := l.listen(t)
	// A poller blocked in Wait beside the transmitting goroutine, as the
	// package allows (go test -race checks the claim).
	stop, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Wait(time.Millisecond); err != nil {
				t.Errorf("Wait: %v", err)
				return
			}
		}
	}()
	defer func() { close(stop); <-polled }()
	seen := map[string]int{}
	flushes := 0
	for i := 0; i < total; {
		// A window of up to 100 datagrams (more than the 32 one copy-mode
		// sendto sends, fewer than the peer socket buffers).
		n := 0
		for ; n < 100 && i < total; n++ {
			if !l.sendTx(t, s, fmt.Appendf(nil, "tx %d", i)) {
				break
			}
			i++
			if n%16 == 15 {
				if err := s.FlushTx(); err != nil {
					t.Fatal(err)
				}
				flushes++
			}
		}
		flushes += drainTx(t, s)
		expect(t, ch, seen, n)
	}
	for i := range total {
		if c := seen[fmt.Sprintf("tx %d", i)]; c != 1 {
			t.Fatalf("datagram %d arrived %d times", i, c)
		}
	}
	if len(s.free) != frames/2 || s.TxInFlight() != 0 {
		t.Fatalf("free list %d of %d after every completion", len(s.free), frames/2)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Transmitted != total || st.Completed != total || st.TxInvalidDescs != 0 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
	// At most one system call per FlushTx, never one per frame.
	if st.Kicks == 0 || st.Kicks+st.KicksSkipped > uint64(flushes) {
		t.Fatalf("%d kicks and %d skipped for %d flushes", st.Kicks, st.KicksSkipped, flushes)
	}
	t.Logf("stats: %+v (flushes %d)", st, flushes)
}
