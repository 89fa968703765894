package testbed

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// newRedirectProgram loads a program that sends every IPv4 frame out of
// ifindex with the given MACs, like the relay does once a flow is set up, and
// passes everything else (ARP).
func newRedirectProgram(t *testing.T, ifindex int, src, dst []byte) *ebpf.Program {
	t.Helper()
	u32 := func(b []byte) int64 { return int64(int32(binary.LittleEndian.Uint32(b))) }
	u16 := func(b []byte) int64 { return int64(binary.LittleEndian.Uint16(b)) }
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.XDP,
		License: "Apache-2.0",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 14),
			asm.JGT.Reg(asm.R4, asm.R3, "pass"),
			asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
			asm.JNE.Imm(asm.R5, 0x0008, "pass"), // ETH_P_IP in network order
			asm.StoreImm(asm.R2, 0, u32(dst[0:4]), asm.Word),
			asm.StoreImm(asm.R2, 4, u16(dst[4:6]), asm.Half),
			asm.StoreImm(asm.R2, 6, u32(src[0:4]), asm.Word),
			asm.StoreImm(asm.R2, 10, u16(src[4:6]), asm.Half),
			asm.Mov.Imm(asm.R1, int32(ifindex)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
			asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestRedirectReachesPeer pins down the kernel rules the lab's defaults
// exist for: a frame an XDP program redirects into a veth pair only reaches
// the far end if that end has an XDP program (or GRO), and a datagram sent
// with TX checksum offload on arrives with a partial checksum that the
// receiver rejects.
func TestRedirectReachesPeer(t *testing.T) {
	for _, c := range []struct {
		name              string
		xdpPass, gro      bool
		txChecksumOffload bool
		want              bool
	}{
		{name: "xdp pass on peer", xdpPass: true, want: true},
		{name: "gro on peer", gro: true, want: true},
		{name: "nothing on peer", want: false},
		{name: "tx checksum offload on", xdpPass: true, txChecksumOffload: true, want: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := NewT(t)
			var caller, relay, callee *NS
			for _, p := range []struct {
				ns   **NS
				name string
			}{{&caller, "caller"}, {&relay, "relay"}, {&callee, "callee"}} {
				var err error
				if *p.ns, err = l.AddNS(p.name); err != nil {
					t.Fatal(err)
				}
			}
			in, err := l.Link(caller, relay, LinkOptions{
				AAddrs:        []netip.Prefix{netip.PrefixFrom(TriangleCallerIP, 24)},
				BAddrs:        []netip.Prefix{netip.PrefixFrom(TriangleRelayCallerIP, 24)},
				TxChecksumOff: !c.txChecksumOffload,
			})
			if err != nil {
				t.Fatal(err)
			}
			out, err := l.Link(relay, callee, LinkOptions{
				AAddrs:        []netip.Prefix{netip.PrefixFrom(TriangleRelayCalleeIP, 24)},
				BAddrs:        []netip.Prefix{netip.PrefixFrom(TriangleCalleeIP, 24)},
				XDPPassB:      c.xdpPass,
				GRO:           c.gro,
				TxChecksumOff: !c.txChecksumOffload,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := caller.AddRoute(netip.MustParsePrefix("198.18.2.0/24"), TriangleRelayCallerIP); err != nil {
				t.Fatal(err)
			}
			if err := callee.AddRoute(netip.MustParsePrefix("198.18.1.0/24"), TriangleRelayCalleeIP); err != nil {
				t.Fatal(err)
			}
			prog := newRedirectProgram(t, out.A.Index, out.A.MAC, out.B.MAC)
			if _, err := l.AttachXDP(in.B, prog, link.XDPDriverMode); err != nil {
				t.Fatal(err)
			}
			// No ip_forward on the relay: only the XDP program can deliver.
			err = trySendRecvN(caller, callee, netip.AddrPortFrom(TriangleCalleeIP, 8000), TriangleCallerIP, 5)
			if got := err == nil; got != c.want {
				t.Errorf("delivered = %v (%v), want %v", got, err, c.want)
			}
		})
	}
}
