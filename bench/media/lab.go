package media

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// Lab addresses: the testbed triangle's.
var (
	callerIP      = testbed.TriangleCallerIP      // 198.18.1.2, generator + sink A
	relayCallerIP = testbed.TriangleRelayCallerIP // 198.18.1.1, "customer" interface
	relayCalleeIP = testbed.TriangleRelayCalleeIP // 198.18.2.1, "carrier" interface
	calleeIP      = testbed.TriangleCalleeIP      // 198.18.2.2, generator + sink B
)

// lab is the triangle one mode runs in:
//
//	caller (gen A, sink A) ⇄ relay ⇄ callee (gen B, sink B)
//
// Like labtest.NewTriangle, but IPv4 only, static neighbours, and with the
// benchmark's sink (not an XDP_PASS program) on the caller's and callee's
// veth ends, so frames redirected to them arrive and are counted.
type lab struct {
	tl                     *testbed.Lab
	caller, relay, callee  *testbed.NS
	callerLink, calleeLink *testbed.Link // A: caller / relay, B: relay / callee
	sinkA, sinkB           *sink         // on the caller's / the callee's end
	genA, genB             *generator    // sending from the caller / the callee
	// srtpA sends the caller's SRTP in --srtp (instead of genA); nil otherwise.
	srtpA *srtpSender
}

// newLab builds the triangle and loads the generators and sinks, and with
// srtp the caller's SRTP sender. On error everything built so far is torn
// down.
func newLab(srtp bool) (l *lab, err error) {
	tl, err := testbed.New()
	if err != nil {
		return nil, err
	}
	l = &lab{tl: tl}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.close())
			l = nil
		}
	}()
	for _, ns := range []struct {
		p    **testbed.NS
		name string
	}{{&l.caller, "caller"}, {&l.relay, "relay"}, {&l.callee, "callee"}} {
		if *ns.p, err = tl.AddNS(ns.name); err != nil {
			return l, err
		}
	}
	p24 := func(a netip.Addr) []netip.Prefix { return []netip.Prefix{netip.PrefixFrom(a, 24)} }
	// TX checksum offload off: datagrams the userspace relays send would
	// otherwise carry partial checksums (harmless here: the sink does not
	// check them, but it keeps the lab identical to the relay's tests).
	if l.callerLink, err = tl.Link(l.caller, l.relay, testbed.LinkOptions{
		AAddrs: p24(callerIP), BAddrs: p24(relayCallerIP), TxChecksumOff: true,
	}); err != nil {
		return l, err
	}
	if l.calleeLink, err = tl.Link(l.relay, l.callee, testbed.LinkOptions{
		AAddrs: p24(relayCalleeIP), BAddrs: p24(calleeIP), TxChecksumOff: true,
	}); err != nil {
		return l, err
	}
	if err = l.caller.AddRoute(netip.MustParsePrefix("198.18.2.0/24"), relayCallerIP); err != nil {
		return l, err
	}
	if err = l.callee.AddRoute(netip.MustParsePrefix("198.18.1.0/24"), relayCalleeIP); err != nil {
		return l, err
	}
	// Permanent neighbours everywhere: no ARP during a step, and the XDP
	// relay's FIB lookups succeed from the first packet.
	for _, k := range []*testbed.Link{l.callerLink, l.calleeLink} {
		for _, pair := range [][2]*testbed.End{{k.A, k.B}, {k.B, k.A}} {
			local, peer := pair[0], pair[1]
			if err = local.NS.AddNeighbor(local.Name, peer.IPv4(), peer.MAC); err != nil {
				return l, err
			}
		}
	}
	if l.sinkA, err = newSink(tl, l.callerLink.A); err != nil {
		return l, err
	}
	if l.sinkB, err = newSink(tl, l.calleeLink.B); err != nil {
		return l, err
	}
	if l.genA, err = newGenerator(l.callerLink.A, l.callerLink.B, 0x0a000000); err != nil {
		return l, err
	}
	if l.genB, err = newGenerator(l.calleeLink.B, l.calleeLink.A, 0x0b000000); err != nil {
		return l, err
	}
	if srtp {
		if l.srtpA, err = newSRTPSender(l.callerLink.A, l.callerLink.B, 0x0a000000); err != nil {
			return l, err
		}
	}
	return l, nil
}

// relayEnds are the relay's two veth ends: toward the caller and the callee.
func (l *lab) relayEnds() (*testbed.End, *testbed.End) { return l.callerLink.B, l.calleeLink.A }

// attachPass puts an XDP_PASS program on the relay's veth ends, for the
// modes whose relay has none: a veth drops frames redirected (XDP_TX by the
// generator) into a peer without an XDP program.
func (l *lab) attachPass() error {
	a, b := l.relayEnds()
	return errors.Join(l.tl.AttachXDPPass(a), l.tl.AttachXDPPass(b))
}

// attach attaches prog to e in driver mode; the lab detaches it at close.
func (l *lab) attach(e *testbed.End, prog *ebpf.Program) error {
	_, err := l.tl.AttachXDP(e, prog, link.XDPDriverMode)
	return err
}

// close kills the lab's processes, detaches its programs, deletes its
// veths and namespaces, and closes the BPF objects.
func (l *lab) close() error {
	err := l.tl.Close()
	if l.sinkA != nil {
		err = errors.Join(err, l.sinkA.Close())
	}
	if l.sinkB != nil {
		err = errors.Join(err, l.sinkB.Close())
	}
	if l.genA != nil {
		err = errors.Join(err, l.genA.Close())
	}
	if l.genB != nil {
		err = errors.Join(err, l.genB.Close())
	}
	if l.srtpA != nil {
		err = errors.Join(err, l.srtpA.Close())
	}
	if err != nil {
		return fmt.Errorf("closing lab %s: %w", l.tl.Prefix, err)
	}
	return nil
}
