package media

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// TestPacketTxFramesAsXMGen checks the AF_PACKET fallback against the
// program it stands in for: xm_gen, run in plain BPF_PROG_TEST_RUN mode
// (which returns the frame it built), and packetTx.frame build the same
// bytes for the same frame numbers, over more than one round of calls and
// across the 16-bit sequence wrap. Only the 8-byte send stamp differs
// (each side's clock reading).
func TestPacketTxFramesAsXMGen(t *testing.T) {
	labtest.RequirePrivileged(t)
	var o genObjects
	if err := loadXmObjects(&o, nil); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = (&generator{prog: o.Prog, cfg: o.Cfg, calls: o.Calls, state: o.State}).Close() }()

	end := &testbed.End{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.1.2/24")}}
	peer := &testbed.End{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	calls := []genCall{
		{SrcPort: 20000, Dst: netip.MustParseAddrPort("198.18.1.1:30000")},
		{SrcPort: 20002, Dst: netip.MustParseAddrPort("198.18.1.1:30002")},
		{SrcPort: 65534, Dst: netip.MustParseAddrPort("198.18.3.7:39998")},
	}
	g := &generator{end: end, peer: peer, ssrcBase: 0x0a000000, prog: o.Prog, cfg: o.Cfg, calls: o.Calls, state: o.State,
		frame: make([]byte, frameLen)}
	if err := g.setCalls(calls, 0); err != nil {
		t.Fatal(err)
	}
	tx := &packetTx{ssrcBase: g.ssrcBase}
	tx.setCalls(end, peer, calls, 0)

	check := func(seq uint64) {
		t.Helper()
		if err := g.state.Put(uint32(0), xmXmGenState{Seq: seq}); err != nil {
			t.Fatal(err)
		}
		out := make([]byte, frameLen)
		ret, err := g.prog.Run(&ebpf.RunOptions{Data: make([]byte, frameLen), DataOut: out})
		if err != nil {
			t.Fatal(err)
		}
		if ret != 3 { // XDP_TX
			t.Fatalf("frame %d: xm_gen returned %d, want XDP_TX", seq, ret)
		}
		var got [frameLen]byte
		tx.frame(&got, seq, 0)
		clear(out[42+12 : 42+20]) // the send stamps
		if !bytes.Equal(got[:], out) {
			t.Fatalf("frame %d:\npacketTx %x\nxm_gen   %x", seq, got[:], out)
		}
	}
	for seq := range uint64(7) {
		check(seq)
	}
	wrap := uint64(len(calls)) * 65535 // round 65535, then 65536 (sequence 0 again)
	for seq := wrap - 1; seq < wrap+4; seq++ {
		check(seq)
	}

	// The stamp is the send time on the clock xm_sink reads.
	var f [frameLen]byte
	tx.frame(&f, 0, 123456789)
	if got := binary.NativeEndian.Uint64(f[42+12:]); got != 123456789 {
		t.Errorf("stamp %d", got)
	}
}
