package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// The XSKMAP holds maxQueues entries per device; a device's first entry
// (its base) is kept in xtr_xsk_devs.
const (
	maxQueues = 64
	maxXSKs   = 1024
)

// RegisterXSK makes the AF_XDP socket fd (bound to device ifindex, RX
// queue queue) the one the program hands that queue's userspace-bound
// packets to, replacing any socket registered there before (a previous
// relay process's, which the kernel also removes when it closes).
func (d *Dataplane) RegisterXSK(ifindex, queue, fd int) error {
	if queue < 0 || queue >= maxQueues {
		return fmt.Errorf("%w: RX queue %d (max %d)", ErrXSK, queue, maxQueues-1)
	}
	base, err := d.xskBase(uint32(ifindex))
	if err != nil {
		return err
	}
	if err := d.objs.XtrXsksV3.Put(base+uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("%w: register socket of ifindex %d queue %d: %w", ErrXSK, ifindex, queue, err)
	}
	return nil
}

// UnregisterXSK removes the socket of (ifindex, queue): its packets go to
// the kernel again.
func (d *Dataplane) UnregisterXSK(ifindex, queue int) error {
	var base uint32
	if err := d.objs.XtrXskDevsV3.Lookup(uint32(ifindex), &base); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return err
	}
	err := d.objs.XtrXsksV3.Delete(base + uint32(queue))
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// xskBase returns ifindex's first XSKMAP index, allocating the lowest
// free one for a new device.
func (d *Dataplane) xskBase(ifindex uint32) (uint32, error) {
	var base uint32
	if err := d.objs.XtrXskDevsV3.Lookup(ifindex, &base); err == nil {
		return base, nil
	}
	used := map[uint32]bool{}
	var k, v uint32
	it := d.objs.XtrXskDevsV3.Iterate()
	for it.Next(&k, &v) {
		used[v] = true
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("%w: read devices: %w", ErrXSK, err)
	}
	for b := uint32(0); b < maxXSKs; b += maxQueues {
		if used[b] {
			continue
		}
		if err := d.objs.XtrXskDevsV3.Put(ifindex, b); err != nil {
			return 0, fmt.Errorf("%w: add device %d: %w", ErrXSK, ifindex, err)
		}
		return b, nil
	}
	return 0, fmt.Errorf("%w: more than %d devices", ErrXSK, maxXSKs/maxQueues)
}

// XSKStats counts the packets the program handed to userspace: to an
// AF_XDP socket, and to the kernel for want of one.
type XSKStats struct {
	Redirected, Passed uint64
}

// XSKStats reads the counters, summed over CPUs.
func (d *Dataplane) XSKStats() (XSKStats, error) {
	var s XSKStats
	var per []uint64
	for i, dst := range []*uint64{&s.Redirected, &s.Passed} {
		if err := d.objs.XtrXskStatsV3.Lookup(uint32(i), &per); err != nil {
			return s, err
		}
		for _, v := range per {
			*dst += v
		}
	}
	return s, nil
}

// HostState reads the relay's host state saved in the pins (see
// SetHostState); "" when none.
func (d *Dataplane) HostState() (string, error) {
	var v relayXtrCallBlob
	if err := d.objs.XtrHostV3.Lookup(uint32(0), &v); err != nil {
		return "", err
	}
	n := min(int(v.Len), len(v.Data))
	return string(v.Data[:n]), nil
}

// SetHostState saves a short text that must outlive the process with the
// pins: the ports the relay reserved on the host, for the relay that
// removes them at a clean exit.
func (d *Dataplane) SetHostState(s string) error {
	var v relayXtrCallBlob
	if len(s) > len(v.Data) {
		return fmt.Errorf("%w: host state of %d bytes", ErrBlobTooLarge, len(s))
	}
	v.Len = uint32(copy(v.Data[:], s))
	return d.objs.XtrHostV3.Put(uint32(0), &v)
}
