package testbed

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// xdpPass is the action XDP_PASS.
const xdpPass = 2

// NewXDPPassProgram loads a program that returns XDP_PASS for every frame. It
// is marked frags-aware, so it also attaches to veths with an MTU above a page.
func NewXDPPassProgram() (*ebpf.Program, error) {
	// Only needed on kernels before 5.11, which charge BPF memory to RLIMIT_MEMLOCK.
	_ = rlimit.RemoveMemlock()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xtb_pass",
		Type:    ebpf.XDP,
		License: "Apache-2.0",
		Flags:   unix.BPF_F_XDP_HAS_FRAGS,
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, xdpPass),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: load XDP_PASS program: %w", err)
	}
	return prog, nil
}

// AttachXDPPass attaches the lab's XDP_PASS program (loaded once per lab) to e,
// so that e receives frames redirected into its veth pair.
func (l *Lab) AttachXDPPass(e *End) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.passFn == nil {
		p, err := NewXDPPassProgram()
		if err != nil {
			l.mu.Unlock()
			return err
		}
		l.passFn = p
	}
	prog := l.passFn
	l.mu.Unlock()
	_, err := l.AttachXDP(e, prog, link.XDPDriverMode)
	return err
}

// AttachXDP attaches prog to e in the given mode (0 lets the kernel choose;
// veths support link.XDPDriverMode). The attachment is made from a thread in
// e's namespace, because the kernel resolves the ifindex in the caller's
// namespace. The lab detaches it at Close; closing the returned link earlier
// detaches it sooner.
func (l *Lab) AttachXDP(e *End, prog *ebpf.Program, mode link.XDPAttachFlags) (link.Link, error) {
	if e.NS.lab != l {
		return nil, ErrForeignNS
	}
	var xl link.Link
	err := e.NS.Do(func() error {
		var err error
		xl, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: e.Index, Flags: mode})
		if err != nil {
			return fmt.Errorf("testbed: attach XDP to %s: %w", e, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		xl.Close()
		return nil, ErrClosed
	}
	l.xdp = append(l.xdp, xl)
	return xl, nil
}
