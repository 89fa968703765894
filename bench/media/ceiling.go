package media

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// ceiling is the "relay" of the ceiling mode: xm_ceiling on the relay's
// two veths rewrites addresses and MACs and redirects to the other veth.
// No NG, no sessions, no latching: the most this lab can forward.
//
// Its rewrite keeps the ports, so the generators send to the relay address
// with the far side's port: call i goes to relay:portBase+2i and arrives at
// the other sink on portBase+2i, like a relayed call would.
type ceiling struct {
	prog *ebpf.Program
	dirs *ebpf.Map
	tx   *ebpf.Map
}

type ceilObjects struct {
	Prog *ebpf.Program `ebpf:"xm_ceiling"`
	Dirs *ebpf.Map     `ebpf:"ceil_dirs"`
	Tx   *ebpf.Map     `ebpf:"ceil_tx"`
}

func startCeiling(l *lab) (c *ceiling, err error) {
	var o ceilObjects // only the objects named in o are loaded
	if err := loadXmObjects(&o, nil); err != nil {
		return nil, fmt.Errorf("media: load ceiling: %w", err)
	}
	c = &ceiling{prog: o.Prog, dirs: o.Dirs, tx: o.Tx}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.stop())
			c = nil
		}
	}()
	a, b := l.relayEnds() // toward the caller, toward the callee
	dir := func(out, outPeerMAC []byte, outIndex int, match, saddr, daddr netip.Addr) xmXmCeilDir {
		d := xmXmCeilDir{OutIfindex: uint32(outIndex), Match: be32(match), Saddr: be32(saddr), Daddr: be32(daddr)}
		copy(d.Smac[:], out)
		copy(d.Dmac[:], outPeerMAC)
		return d
	}
	if err := c.dirs.Put(uint32(a.Index), dir(b.MAC, l.calleeLink.B.MAC, b.Index, relayCallerIP, relayCalleeIP, calleeIP)); err != nil {
		return c, fmt.Errorf("media: ceiling: %w", err)
	}
	if err := c.dirs.Put(uint32(b.Index), dir(a.MAC, l.callerLink.A.MAC, a.Index, relayCalleeIP, relayCallerIP, callerIP)); err != nil {
		return c, fmt.Errorf("media: ceiling: %w", err)
	}
	// A devmap resolves ifindexes in the namespace of the thread that
	// updates it.
	if err := l.relay.Do(func() error {
		return errors.Join(c.tx.Put(uint32(a.Index), uint32(a.Index)), c.tx.Put(uint32(b.Index), uint32(b.Index)))
	}); err != nil {
		return c, fmt.Errorf("media: ceiling devmap: %w", err)
	}
	if err := l.attach(a, c.prog); err != nil {
		return c, err
	}
	if err := l.attach(b, c.prog); err != nil {
		return c, err
	}
	return c, nil
}

func (c *ceiling) setup(_ context.Context, from, to int, done func(int)) (a, b []genCall, err error) {
	for i := from; i < to; i++ {
		port := uint16(portBase + 2*i)
		a = append(a, genCall{SrcPort: port, Dst: netip.AddrPortFrom(relayCallerIP, port)})
		b = append(b, genCall{SrcPort: port, Dst: netip.AddrPortFrom(relayCalleeIP, port)})
	}
	if done != nil {
		done(to - from)
	}
	return a, b, nil
}

func (c *ceiling) teardown(context.Context) error      { return nil }
func (c *ceiling) pids() []int                         { return nil }
func (c *ceiling) reasons() (map[string]uint64, error) { return nil, nil }
func (c *ceiling) xdpProgs() ([]*ebpf.Program, error)  { return []*ebpf.Program{c.prog}, nil }
func (c *ceiling) stop() error {
	return errors.Join(c.prog.Close(), c.dirs.Close(), c.tx.Close())
}
