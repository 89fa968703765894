package media

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// XDP actions.
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	macC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	macD = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0d}
)

func monoNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// rtpFrame builds an Ethernet/IPv4/UDP frame with an RTP packet whose first
// payload bytes carry stamp, the way xm_gen does.
func rtpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.AddrPort, stamp uint64, rtpLen int) []byte {
	b := make([]byte, 14+20+8+rtpLen)
	copy(b[0:], dstMAC)
	copy(b[6:], srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+rtpLen))
	ip[8], ip[9] = 64, 17
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+rtpLen))
	if rtpLen >= 20 {
		b[42] = 0x80
		binary.NativeEndian.PutUint64(b[54:], stamp)
	}
	return b
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func loadObjects(t *testing.T, to any) {
	t.Helper()
	labtest.RequirePrivileged(t)
	spec, err := loadXm()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.LoadAndAssign(to, nil); err != nil {
		t.Fatal(err)
	}
}

func closeAll(t *testing.T, cs ...interface{ Close() error }) {
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
}

// TestGenFrames runs xm_gen (without live frames) and checks every field
// of the frames it builds: round robin over calls, RTP sequence and
// timestamp per call, SSRC per call, a valid IP checksum, the stamp.
func TestGenFrames(t *testing.T) {
	var o genObjects
	loadObjects(t, &o)
	closeAll(t, o.Prog, o.Cfg, o.Calls, o.State)

	calls := []xmXmGenCall{
		{Sport: 10000, Dport: 30000, Daddr: be32(relayCallerIP)},
		{Sport: 10002, Dport: 30010, Daddr: be32(relayCallerIP)},
		{Sport: 10004, Dport: 30020, Daddr: be32(netip.MustParseAddr("198.18.1.9"))},
	}
	for i, c := range calls {
		if err := o.Calls.Put(uint32(i), c); err != nil {
			t.Fatal(err)
		}
	}
	cfg := xmXmGenCfg{Saddr: be32(callerIP), Ncalls: uint32(len(calls)), SsrcBase: 0x0a000000}
	copy(cfg.Smac[:], macA)
	copy(cfg.Dmac[:], macB)
	if err := o.Cfg.Put(uint32(0), cfg); err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Repeat([]byte{0xee}, frameLen) // whatever the page held before
	for seq := 0; seq < 7; seq++ {
		before := monoNs()
		out := make([]byte, frameLen)
		ret, err := o.Prog.Run(&ebpf.RunOptions{Data: garbage, DataOut: out})
		if err != nil {
			t.Fatal(err)
		}
		after := monoNs()
		if ret != xdpTX {
			t.Fatalf("packet %d: action %d, want XDP_TX", seq, ret)
		}
		i, round := seq%len(calls), seq/len(calls)
		c := calls[i]
		var dst [4]byte
		binary.LittleEndian.PutUint32(dst[:], c.Daddr)
		want := rtpFrame(macB, macA, netip.AddrPortFrom(callerIP, c.Sport), netip.AddrPortFrom(netip.AddrFrom4(dst), c.Dport), 0, RTPBytes)
		want[14+1] = 0xb8                               // DSCP EF
		binary.BigEndian.PutUint16(want[14+6:], 0x4000) // DF
		binary.BigEndian.PutUint16(want[24:], ipChecksum(want[14:34]))
		binary.BigEndian.PutUint16(want[44:], uint16(round))
		binary.BigEndian.PutUint32(want[46:], uint32(round*160))
		binary.BigEndian.PutUint32(want[50:], 0x0a000000+uint32(i))
		stamp := binary.NativeEndian.Uint64(out[54:])
		if stamp < before || stamp > after {
			t.Errorf("packet %d: stamp %d outside [%d, %d]", seq, stamp, before, after)
		}
		copy(want[54:], out[54:62])
		copy(want[62:], garbage[62:]) // audio bytes are left as they were
		if !bytes.Equal(out, want) {
			t.Errorf("packet %d:\n got %x\nwant %x", seq, out[:62], want[:62])
		}
	}
	var st xmXmGenState
	if err := o.State.Lookup(uint32(0), &st); err != nil || st.Seq != 7 {
		t.Errorf("state seq %d (%v), want 7", st.Seq, err)
	}
}

// TestGenNoCalls: a generator without calls sends nothing.
func TestGenNoCalls(t *testing.T) {
	var o genObjects
	loadObjects(t, &o)
	closeAll(t, o.Prog, o.Cfg, o.Calls, o.State)
	ret, err := o.Prog.Run(&ebpf.RunOptions{Data: make([]byte, frameLen)})
	if err != nil || ret != xdpDrop {
		t.Fatalf("action %d (%v), want XDP_DROP", ret, err)
	}
	ret, err = o.Prog.Run(&ebpf.RunOptions{Data: make([]byte, 60)})
	if err != nil || ret != xdpDrop {
		t.Fatalf("short frame: action %d (%v), want XDP_DROP", ret, err)
	}
}

// TestSinkPaths feeds xm_sink frames and checks the action and which
// counters moved: per-call counts by port, the latency bucket (its edges
// must match hist.go), everything else passed.
func TestSinkPaths(t *testing.T) {
	var o sinkObjects
	loadObjects(t, &o)
	closeAll(t, o.Prog, o.Cfg, o.Calls, o.Hist, o.Counters)
	s := &sink{prog: o.Prog, cfg: o.Cfg, calls: o.Calls, hist: o.Hist, counters: o.Counters, ncpu: ebpf.MustPossibleCPU()}
	if err := s.setCalls(10); err != nil {
		t.Fatal(err)
	}
	src := netip.AddrPortFrom(relayCalleeIP, 30000)
	to := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(calleeIP, port) }
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	for _, tc := range []struct {
		name     string
		frame    func(now uint64) []byte
		action   uint32
		call     int           // -1: no per-call count
		latency  time.Duration // expected, for counted packets
		rtp, bad uint64
		other    uint64
	}{
		{"call 0, 500 µs", func(now uint64) []byte { return rtpFrame(macD, macC, src, to(portBase), now-500_000, RTPBytes) }, xdpDrop, 0, 500 * time.Microsecond, 1, 0, 0},
		{"call 9, 50 ms", func(now uint64) []byte { return rtpFrame(macD, macC, src, to(portBase+18), now-50_000_000, RTPBytes) }, xdpDrop, 9, 50 * time.Millisecond, 1, 0, 0},
		{"call 3, 5 s", func(now uint64) []byte { return rtpFrame(macD, macC, src, to(portBase+6), now-5_000_000_000, RTPBytes) }, xdpDrop, 3, 5 * time.Second, 1, 0, 0},
		{"call 4, 20 s: overflow", func(now uint64) []byte {
			return rtpFrame(macD, macC, src, to(portBase+8), now-20_000_000_000, RTPBytes)
		}, xdpDrop, 4, 10 * time.Second, 1, 0, 0},
		{"odd port: RTCP", func(now uint64) []byte { return rtpFrame(macD, macC, src, to(portBase+1), now, RTPBytes) }, xdpPass, -1, 0, 0, 0, 1},
		{"past the calls", func(now uint64) []byte { return rtpFrame(macD, macC, src, to(portBase+20), now, RTPBytes) }, xdpPass, -1, 0, 0, 0, 1},
		{"below the base", func(now uint64) []byte { return rtpFrame(macD, macC, src, to(2223), now, RTPBytes) }, xdpPass, -1, 0, 0, 0, 1},
		{"call port, too short", func(now uint64) []byte { return rtpFrame(macD, macC, src, to(portBase+2), now, 12) }, xdpDrop, -1, 0, 0, 1, 0},
		{"ARP", func(uint64) []byte { return arp }, xdpPass, -1, 0, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := s.snap(10)
			if err != nil {
				t.Fatal(err)
			}
			t0 := monoNs()
			ret, err := s.prog.Run(&ebpf.RunOptions{Data: tc.frame(t0)})
			slack := time.Duration(monoNs() - t0)
			if err != nil {
				t.Fatal(err)
			}
			if ret != tc.action {
				t.Errorf("action %d, want %d", ret, tc.action)
			}
			after, err := s.snap(10)
			if err != nil {
				t.Fatal(err)
			}
			d := after.sub(before)
			if d.RTP != tc.rtp || d.Bad != tc.bad || d.Other != tc.other {
				t.Errorf("counters rtp %d bad %d other %d, want %d %d %d", d.RTP, d.Bad, d.Other, tc.rtp, tc.bad, tc.other)
			}
			var sum uint64
			for i, v := range d.PerCall {
				sum += v
				if want := uint64(0); i == tc.call {
					if v != 1 {
						t.Errorf("call %d counted %d, want 1", i, v)
					}
				} else if v != want {
					t.Errorf("call %d counted %d, want 0", i, v)
				}
			}
			if sum != d.RTP {
				t.Errorf("per-call sum %d != rtp %d", sum, d.RTP)
			}
			if tc.rtp == 0 {
				return
			}
			got, ok := percentile(d.Hist, 1)
			// The sink saw tc.latency plus the time until the program ran
			// (at most slack): the bucket's upper edge lies above that,
			// by at most one bucket.
			if tc.latency >= 10*time.Second {
				if got != 10*time.Second {
					t.Errorf("latency bucket %v, want the overflow bucket (10s)", got)
				}
				return
			}
			if !ok || got <= tc.latency || got > tc.latency+slack+bucketWidth(tc.latency) {
				t.Errorf("latency bucket upper edge %v, want in (%v, %v]", got, tc.latency, tc.latency+slack+bucketWidth(tc.latency))
			}
		})
	}
}

func bucketWidth(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return time.Microsecond
	case d < 100*time.Millisecond:
		return 100 * time.Microsecond
	}
	return 10 * time.Millisecond
}

// TestCeilingRewrite: xm_ceiling rewrites MACs and addresses, keeps the
// ports, fixes the IP checksum and redirects; other frames pass. It runs
// in the test's namespace with the loopback's ifindex (a test run needs a
// real device; nothing is transmitted).
func TestCeilingRewrite(t *testing.T) {
	var o ceilObjects
	loadObjects(t, &o)
	closeAll(t, o.Prog, o.Dirs, o.Tx)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	idx := uint32(lo.Index)
	d := xmXmCeilDir{OutIfindex: idx, Match: be32(relayCallerIP), Saddr: be32(relayCalleeIP), Daddr: be32(calleeIP)}
	copy(d.Smac[:], macC)
	copy(d.Dmac[:], macD)
	if err := o.Dirs.Put(idx, d); err != nil {
		t.Fatal(err)
	}
	if err := o.Tx.Put(idx, idx); err != nil {
		t.Fatal(err)
	}
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	src, dst := netip.AddrPortFrom(callerIP, 10002), netip.AddrPortFrom(relayCallerIP, 10002)
	for _, tc := range []struct {
		name   string
		frame  []byte
		action uint32
		want   []byte // nil: unchanged
	}{
		{"to the relay", rtpFrame(macB, macA, src, dst, 7, RTPBytes), xdpRedirect,
			rtpFrame(macD, macC, netip.AddrPortFrom(relayCalleeIP, 10002), netip.AddrPortFrom(calleeIP, 10002), 7, RTPBytes)},
		{"to another address", rtpFrame(macB, macA, src, netip.AddrPortFrom(callerIP, 1), 7, RTPBytes), xdpPass, nil},
		{"ARP", arp, xdpPass, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, len(tc.frame)+256)
			ret, err := o.Prog.Run(&ebpf.RunOptions{Data: tc.frame, DataOut: out,
				Context: xdpMD{DataEnd: uint32(len(tc.frame)), IngressIfindex: idx}})
			if err != nil {
				t.Fatal(err)
			}
			out = out[:len(tc.frame)]
			if ret != tc.action {
				t.Errorf("action %d, want %d", ret, tc.action)
			}
			want := tc.want
			if want == nil {
				want = tc.frame
			}
			if !bytes.Equal(out, want) {
				t.Errorf("frame\n got %x\nwant %x", out[:42], want[:42])
			}
		})
	}
}
