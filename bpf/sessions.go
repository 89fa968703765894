package bpf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// A session lives at a fixed index of xtr_sessions (and its counters at
// the same index of xtr_legs): the relay address's position in xtr_addrs
// times 65,536 plus the port. The program computes it from the packet; no
// hash lookup, and no slot to allocate.
const (
	maxAddrs  = 8     // XTR_MAX_ADDRS
	portsEach = 65536 // XTR_PORTS
	sessSize  = 128   // sizeof(struct xtr_sess)
)

// AddLocalAddr marks addr as the relay's own: traffic to it inside the port
// range is the relay's business. An address keeps its position in the
// table (its sessions' indexes) for the life of the pinned maps.
func (d *Dataplane) AddLocalAddr(addr netip.Addr) error {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	_, err := d.addrIndexLocked(addr)
	return err
}

// addrIndexLocked is addr's position in xtr_addrs, adding it there if it
// is new. Caller holds portMu.
func (d *Dataplane) addrIndexLocked(addr netip.Addr) (uint32, error) {
	if !addr.IsValid() {
		return 0, fmt.Errorf("%w: invalid address", ErrTooManyAddrs)
	}
	a := addr16(addr)
	for i, have := range d.addrs {
		if have == a {
			return uint32(i), nil
		}
	}
	if len(d.addrs) >= maxAddrs {
		return 0, fmt.Errorf("%w: %v (the fast path takes %d)", ErrTooManyAddrs, addr, maxAddrs)
	}
	t := relayXtrAddrs{N: uint32(len(d.addrs) + 1)}
	copy(t.Addr[:], d.addrs)
	t.Addr[len(d.addrs)] = a
	if err := d.objs.XtrAddrsV3.Put(uint32(0), &t); err != nil {
		return 0, fmt.Errorf("add relay address %v: %w", addr, err)
	}
	d.addrs = append(d.addrs, a)
	return uint32(len(d.addrs) - 1), nil
}

// SetSession installs or replaces the entry for key. A new key gets zeroed
// counters; a replaced one keeps its counters. The key's address becomes
// one of the relay's (AddLocalAddr) if it was not.
func (d *Dataplane) SetSession(k Key, s Session) error {
	d.portMu.Lock()
	idx, live := d.live[k]
	if !live {
		ai, err := d.addrIndexLocked(k.Addr())
		if err != nil {
			d.portMu.Unlock()
			return err
		}
		idx = ai*portsEach + uint32(k.Port())
		// the port's leg from an earlier session goes before the new
		// session makes the program write it
		if err := d.objs.XtrLegsV3.Put(idx, &relayXtrLeg{}); err != nil {
			d.portMu.Unlock()
			return fmt.Errorf("zero counters of %v: %w", k, err)
		}
		d.live[k] = idx
	}
	d.portMu.Unlock()
	r := s.raw()
	r.Flags |= uint8(relayXtrSessFlagsXTR_F_ACTIVE)
	// a new generation: next hops cached for the old entry are not used
	r.Gen = d.gen.Add(1)
	// An array entry is overwritten in place, not replaced like a hash
	// element: a packet racing the copy may read some fields old and some
	// new. Every field it acts on is written whole, so it is forwarded by
	// the old entry or the new one's values.
	return d.objs.XtrSessionsV3.Put(idx, &r)
}

// adoptSessions reads the address table and the live sessions pinned by an
// earlier process: through the sessions map's memory, one scan of the used
// addresses' ports instead of a system call per port.
func (d *Dataplane) adoptSessions() error {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	var t relayXtrAddrs
	if err := d.objs.XtrAddrsV3.Lookup(uint32(0), &t); err != nil {
		return err
	}
	n := min(int(t.N), maxAddrs)
	d.addrs = append(d.addrs[:0], t.Addr[:n]...)
	if n == 0 {
		return nil
	}
	mem, err := d.objs.XtrSessionsV3.Memory()
	if err != nil {
		return err
	}
	buf := make([]byte, portsEach*sessSize)
	for ai := range n {
		if _, err := mem.ReadAt(buf, int64(ai)*portsEach*sessSize); err != nil {
			return err
		}
		addr := fromAddr16(d.addrs[ai])
		for port := range portsEach {
			if buf[port*sessSize+1]&uint8(relayXtrSessFlagsXTR_F_ACTIVE) != 0 { // flags
				d.live[netip.AddrPortFrom(addr, uint16(port))] = uint32(ai*portsEach + port)
			}
		}
	}
	return nil
}

// Session reads the entry for key.
func (d *Dataplane) Session(k Key) (Session, error) {
	d.portMu.Lock()
	idx, ok := d.live[k]
	d.portMu.Unlock()
	if !ok {
		return Session{}, fmt.Errorf("session %v: %w", k, ebpf.ErrKeyNotExist)
	}
	var r relayXtrSess
	if err := d.objs.XtrSessionsV3.Lookup(idx, &r); err != nil {
		return Session{}, err
	}
	return sessionFromRaw(r), nil
}

// DeleteSession removes the entry for key: the port is free again, and
// its counters stay until a new session there zeroes them.
func (d *Dataplane) DeleteSession(k Key) error {
	d.portMu.Lock()
	idx, ok := d.live[k]
	delete(d.live, k)
	d.portMu.Unlock()
	if !ok {
		return nil
	}
	err := d.objs.XtrSessionsV3.Put(idx, &relayXtrSess{})
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// Sessions lists every installed entry.
func (d *Dataplane) Sessions() (map[Key]Session, error) {
	d.portMu.Lock()
	live := make(map[Key]uint32, len(d.live))
	for k, idx := range d.live {
		live[k] = idx
	}
	d.portMu.Unlock()
	out := make(map[Key]Session, len(live))
	var r relayXtrSess
	for k, idx := range live {
		if err := d.objs.XtrSessionsV3.Lookup(idx, &r); err != nil {
			return out, err
		}
		out[k] = sessionFromRaw(r)
	}
	return out, nil
}
