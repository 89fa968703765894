package bpf

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
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
		return 0, ErrInvalidAddr
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

// portEntry is an installed session: its index and the entry as last
// written.
type portEntry struct {
	idx uint32
	raw relayXtrSess
}

// SetSession installs or replaces the entry for key. A new key gets zeroed
// counters; a replaced one keeps its counters. The key's address becomes
// one of the relay's (AddLocalAddr) if it was not.
func (d *Dataplane) SetSession(k Key, s Session) error {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	e, live := d.live[k]
	if !live {
		ai, err := d.addrIndexLocked(k.Addr())
		if err != nil {
			return err
		}
		e = &portEntry{idx: ai*portsEach + uint32(k.Port())}
		// the port's leg from an earlier session goes before the new
		// session makes the program write it
		if err := d.objs.XtrLegsV3.Put(e.idx, &relayXtrLeg{}); err != nil {
			return fmt.Errorf("zero counters of %v: %w", k, err)
		}
	}
	r := s.raw()
	r.Flags |= uint8(relayXtrSessFlagsXTR_F_ACTIVE)
	// a new generation: next hops cached for the old entry are not used
	r.Gen = d.nextGen()
	var old *relayXtrSess
	if live {
		old = &e.raw
	}
	if err := d.writeSession(e.idx, old, r); err != nil {
		return err
	}
	e.raw = r
	d.live[k] = e
	return nil
}

// nextGen is the next session generation: even and never 0, since an odd
// or zero gen tells the program an entry is not to be acted on.
func (d *Dataplane) nextGen() uint32 {
	for {
		if g := d.gen.Add(2); g != 0 {
			return g
		}
	}
}

// writeSession overwrites the entry at idx (old, as last written; nil
// for a port without a session, whose gen is already odd or 0) with next
// so that the program never acts on a mix of the two: an array update is
// a copy into the live entry, in no particular order, while the program
// may be reading it. First the old entry again with an odd gen (only gen
// changes: from then on the program hands the port's packets to
// userspace), then next's fields, gen still odd, then next's gen (again a
// change of gen alone). A next with an odd gen (a deleted entry) stays
// odd. If a step fails the entry is left odd: its packets go through
// userspace, which is what the caller's error says too.
func (d *Dataplane) writeSession(idx uint32, old *relayXtrSess, next relayXtrSess) error {
	if old != nil {
		o := *old
		o.Gen |= 1
		if err := d.objs.XtrSessionsV3.Put(idx, &o); err != nil {
			return err
		}
	}
	gen := next.Gen
	next.Gen |= 1
	if err := d.objs.XtrSessionsV3.Put(idx, &next); err != nil {
		return err
	}
	if gen&1 != 0 {
		return nil
	}
	next.Gen = gen
	return d.objs.XtrSessionsV3.Put(idx, &next)
}

// adoptSessions reads the address table and the live sessions pinned by an
// earlier process: one scan of each used address's entries through a
// read-only mapping of the sessions map, not a system call per port. The
// mapping goes once read (kept, it would count its 8 MiB per address in
// the relay's RSS).
func (d *Dataplane) adoptSessions() error {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	var t relayXtrAddrs
	if err := d.objs.XtrAddrsV3.Lookup(uint32(0), &t); err != nil {
		return err
	}
	n := min(int(t.N), maxAddrs)
	d.addrs = append(d.addrs[:0], t.Addr[:n]...)
	for ai := range n {
		mem, err := unix.Mmap(d.objs.XtrSessionsV3.FD(), int64(ai)*portsEach*sessSize, portsEach*sessSize, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("map sessions: %w", err)
		}
		var active []uint32
		for port := range portsEach {
			if mem[port*sessSize+1]&uint8(relayXtrSessFlagsXTR_F_ACTIVE) != 0 { // flags
				active = append(active, uint32(port))
			}
		}
		if err := unix.Munmap(mem); err != nil {
			return fmt.Errorf("unmap sessions: %w", err)
		}
		addr := fromAddr16(d.addrs[ai])
		for _, port := range active {
			e := &portEntry{idx: uint32(ai)*portsEach + port}
			if err := d.objs.XtrSessionsV3.Lookup(e.idx, &e.raw); err != nil {
				return err
			}
			d.live[netip.AddrPortFrom(addr, uint16(port))] = e
		}
	}
	return nil
}

// Session reads the entry for key.
func (d *Dataplane) Session(k Key) (Session, error) {
	d.portMu.Lock()
	e, ok := d.live[k]
	d.portMu.Unlock()
	if !ok {
		return Session{}, fmt.Errorf("session %v: %w", k, ebpf.ErrKeyNotExist)
	}
	var r relayXtrSess
	if err := d.objs.XtrSessionsV3.Lookup(e.idx, &r); err != nil {
		return Session{}, err
	}
	return sessionFromRaw(r), nil
}

// DeleteSession removes the entry for key: the port is free again, and
// its counters stay until a new session there zeroes them. The emptied
// entry keeps an odd gen (see writeSession).
func (d *Dataplane) DeleteSession(k Key) error {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	e, ok := d.live[k]
	if !ok {
		return nil
	}
	delete(d.live, k)
	return d.writeSession(e.idx, &e.raw, relayXtrSess{Gen: 1})
}

// Sessions lists every installed entry.
func (d *Dataplane) Sessions() (map[Key]Session, error) {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	out := make(map[Key]Session, len(d.live))
	for k, e := range d.live {
		out[k] = sessionFromRaw(e.raw)
	}
	return out, nil
}
