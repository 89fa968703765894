package bpf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// AddLocalAddr marks addr as the relay's own: traffic to it inside the port
// range is the relay's business.
func (d *Dataplane) AddLocalAddr(addr netip.Addr) error {
	k := relayXtrSessKey{Addr: addr16(addr)}
	return d.objs.XtrLocalAddrsV2.Put(k, uint8(1))
}

// SetSession installs or replaces the entry for key. A new key gets a
// zeroed counters slot; a replaced one keeps its slot and counters.
func (d *Dataplane) SetSession(k Key, s Session) error {
	slot, err := d.slotFor(k)
	if err != nil {
		return err
	}
	r := s.raw()
	r.Slot = slot
	// a new generation: next hops cached for the old entry are not used
	r.Gen = d.gen.Add(1)
	return d.objs.XtrSessionsV2.Put(toKey(k), r)
}

// slotFor returns key's counters slot, allocating (and zeroing) one for a
// new key.
func (d *Dataplane) slotFor(k Key) (uint32, error) {
	d.slotMu.Lock()
	defer d.slotMu.Unlock()
	if s, ok := d.slots[k]; ok {
		return s, nil
	}
	var slot uint32
	switch {
	case len(d.free) > 0:
		slot = d.free[len(d.free)-1]
		d.free = d.free[:len(d.free)-1]
	case d.nextSlot < d.objs.XtrLegsV2.MaxEntries():
		slot = d.nextSlot
		d.nextSlot++
	default:
		return 0, ErrFull
	}
	if err := d.objs.XtrLegsV2.Put(slot, make([]relayXtrLeg, NumCPU())); err != nil {
		d.free = append(d.free, slot)
		return 0, fmt.Errorf("zero counters slot: %w", err)
	}
	d.slots[k] = slot
	return slot, nil
}

// adoptSlots rebuilds the slot table from sessions pinned by an earlier
// process.
func (d *Dataplane) adoptSlots() error {
	d.slotMu.Lock()
	defer d.slotMu.Unlock()
	var k relayXtrSessKey
	var v relayXtrSess
	used := map[uint32]bool{}
	it := d.objs.XtrSessionsV2.Iterate()
	for it.Next(&k, &v) {
		d.slots[fromKey(k)] = v.Slot
		used[v.Slot] = true
		d.nextSlot = max(d.nextSlot, v.Slot+1)
	}
	for s := uint32(0); s < d.nextSlot; s++ {
		if !used[s] {
			d.free = append(d.free, s)
		}
	}
	return it.Err()
}

// Session reads the entry for key.
func (d *Dataplane) Session(k Key) (Session, error) {
	var r relayXtrSess
	if err := d.objs.XtrSessionsV2.Lookup(toKey(k), &r); err != nil {
		return Session{}, err
	}
	return sessionFromRaw(r), nil
}

// DeleteSession removes the entry for key and frees its counters slot.
func (d *Dataplane) DeleteSession(k Key) error {
	err := d.objs.XtrSessionsV2.Delete(toKey(k))
	d.slotMu.Lock()
	if s, ok := d.slots[k]; ok {
		delete(d.slots, k)
		d.free = append(d.free, s)
	}
	d.slotMu.Unlock()
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// Sessions lists every installed entry.
func (d *Dataplane) Sessions() (map[Key]Session, error) {
	out := map[Key]Session{}
	var k relayXtrSessKey
	var v relayXtrSess
	it := d.objs.XtrSessionsV2.Iterate()
	for it.Next(&k, &v) {
		out[fromKey(k)] = sessionFromRaw(v)
	}
	return out, it.Err()
}
