package bpf

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// XDPMode is how the program is attached to a device.
type XDPMode string

// Attach modes. ModeAuto tries native (driver) XDP and falls back to
// generic only where the driver has none, saying so.
const (
	ModeAuto    XDPMode = "auto"
	ModeNative  XDPMode = "native"
	ModeGeneric XDPMode = "generic"
)

// Options configure Open.
type Options struct {
	// PinDir holds the pinned maps and links, e.g. /sys/fs/bpf/xtrunk/relay.
	PinDir string
	// LockWait is how long Open waits for another process holding PinDir
	// (an old relay still exiting) before refusing with ErrPinDirBusy:
	// zero means DefaultLockWait, negative not at all.
	LockWait time.Duration
	// PortMin and PortMax bound the relay's port range: UDP to a relay
	// address inside it without a session is dropped, unless a host
	// socket owns the port.
	PortMin, PortMax uint16
	// Mode picks native or generic XDP (default ModeAuto).
	Mode XDPMode
}

// Attachment describes the program on one device.
type Attachment struct {
	Device  string
	Ifindex int
	Mode    XDPMode // the mode actually in use
	Adopted bool    // the link was already pinned and has been updated in place
}

// Dataplane is the loaded fast path: program, maps and links.
type Dataplane struct {
	objs relayObjects

	slotMu   sync.Mutex
	slots    map[Key]uint32 // counters slot of each session key
	free     []uint32
	nextSlot uint32

	pinDir  string
	links   map[int]link.Link
	attach  []Attachment
	adopted bool
	stale   []string // pins of another layout version, removed by Open
	lock    *pinLock // exclusive flock on pinDir, held until Close

	gen atomic.Uint32 // the last session generation written

	// pieces of each call record in xtr_calls, as far as this process
	// knows: nil until Calls has read the map, and until then SaveCall and
	// DeleteCall clear every piece a record could have. Known, a save or
	// delete touches only the pieces the record has — 1 to 3 map system
	// calls per state change instead of 17.
	chunkMu sync.Mutex
	chunks  map[uint64]int
	// blob is SaveCall's piece buffer (4 KiB, passed to the map update
	// without a copy): one per Dataplane, not an allocation per save.
	// Guarded by chunkMu.
	blob relayXtrCallBlob
}

// layout is the version suffix of the map names (see maps.h).
const layout = "_v2"

// stalePins lists the pins in dir of another map layout: xtr_* maps whose
// version suffix is not layout.
func stalePins(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndex(name, "_v")
		if !strings.HasPrefix(name, "xtr_") || i < 0 || name[i:] == layout {
			continue
		}
		if _, err := strconv.Atoi(name[i+2:]); err == nil {
			out = append(out, name)
		}
	}
	return out, nil
}

// load loads the program and its maps, pinning them under dir (the pin
// directory, locked by the caller, or an install directory). Maps already
// pinned there are adopted with their contents.
func load(o Options, dir string) (*Dataplane, error) {
	// Maps of an older (or newer) layout cannot be adopted: their pins go,
	// and with them the calls recorded there. The program using them goes
	// on forwarding until Attach replaces it on the pinned links.
	stale, err := stalePins(dir)
	if err != nil {
		return nil, fmt.Errorf("read pin dir: %w", err)
	}
	for _, name := range stale {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("remove pin %s of another map layout: %w", name, err)
		}
	}
	spec, err := loadRelay()
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	adopted := false
	for name, m := range spec.Maps {
		if !strings.HasPrefix(name, "xtr_") || strings.HasPrefix(name, ".") {
			continue
		}
		m.Pinning = ebpf.PinByName
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			adopted = true
		}
	}
	d := &Dataplane{pinDir: dir, links: map[int]link.Link{}, adopted: adopted, slots: map[Key]uint32{}, stale: stale}
	// generations start anywhere: a restarted process must not write one
	// that a CPU's next-hop cache still holds
	d.gen.Store(rand.Uint32())
	err = spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load program: %+v", ve)
		}
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("%w: %w", ErrLayout, err)
		}
		return nil, fmt.Errorf("load program: %w", err)
	}
	if err := d.adoptSlots(); err != nil {
		d.Close()
		return nil, fmt.Errorf("read pinned sessions: %w", err)
	}
	if o.PortMin != 0 || o.PortMax != 0 {
		cfg := relayXtrConfig{PortMin: o.PortMin, PortMax: o.PortMax}
		if err := d.objs.XtrConfigV2.Put(uint32(0), cfg); err != nil {
			d.Close()
			return nil, fmt.Errorf("set config: %w", err)
		}
	}
	return d, nil
}

// Adopted reports whether Open found pinned maps from an earlier process.
func (d *Dataplane) Adopted() bool { return d.adopted }

// StalePins names the pins of another map layout that Open removed: the
// calls of the relay that made them are not adopted.
func (d *Dataplane) StalePins() []string { return append([]string(nil), d.stale...) }

// Program is the XDP program (for tests through BPF_PROG_TEST_RUN).
func (d *Dataplane) Program() *ebpf.Program { return d.objs.XtrRelay }

// linkPin is where the link on dev is pinned. bpffs refuses names with a
// dot, which device names may have (a VLAN such as eth0.100): a dot
// becomes "@", which no device name has.
func linkPin(dir, dev string) string {
	return filepath.Join(dir, "link_"+strings.ReplaceAll(dev, ".", "@"))
}

// modePin is where the mode a link was attached in is marked: a second
// pin of the link (bpffs holds no files), "@" and not "." (refused).
func modePin(pin string, m XDPMode) string { return pin + "@" + string(m) }

// Attach puts the program on device dev. A link pinned there by an earlier
// process is updated in place (no gap in forwarding); otherwise a new link
// is created and pinned. The device becomes a redirect target.
func (d *Dataplane) Attach(dev string, mode XDPMode) (Attachment, error) {
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return Attachment{}, fmt.Errorf("%w: %w", ErrNoXDP, err)
	}
	a := Attachment{Device: dev, Ifindex: ifc.Index}
	pin := linkPin(d.pinDir, dev)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(d.objs.XtrRelay); err != nil {
			l.Close()
			return a, fmt.Errorf("%w: update pinned link on %s: %w", ErrNoXDP, dev, err)
		}
		info, _ := l.Info()
		a.Mode = ModeNative
		if info != nil {
			if x := info.XDP(); x != nil && x.Ifindex != uint32(ifc.Index) {
				l.Close()
				return a, fmt.Errorf("%w: pinned link %s is on ifindex %d, not %s", ErrNoXDP, pin, x.Ifindex, dev)
			}
		}
		if m, ok := readMode(pin); ok {
			a.Mode = m
		}
		a.Adopted = true
		d.links[ifc.Index] = l
	} else {
		var l link.Link
		tryModes := []XDPMode{mode}
		if mode == ModeAuto || mode == "" {
			tryModes = []XDPMode{ModeNative, ModeGeneric}
		}
		var errs []error
		for _, m := range tryModes {
			flags := link.XDPDriverMode
			if m == ModeGeneric {
				flags = link.XDPGenericMode
			}
			l, err = link.AttachXDP(link.XDPOptions{Program: d.objs.XtrRelay, Interface: ifc.Index, Flags: flags})
			if err == nil {
				a.Mode = m
				break
			}
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
		}
		if l == nil {
			return a, fmt.Errorf("%w on %s: %w", ErrNoXDP, dev, errors.Join(errs...))
		}
		if err := l.Pin(pin); err != nil {
			l.Close()
			return a, fmt.Errorf("pin link: %w", err)
		}
		writeMode(pin, a.Mode)
		d.links[ifc.Index] = l
	}
	if err := enableForwarding(dev); err != nil {
		return a, err
	}
	if err := d.objs.XtrTxPortsV2.Put(uint32(ifc.Index), uint32(ifc.Index)); err != nil {
		return a, fmt.Errorf("add %s to tx ports: %w", dev, err)
	}
	d.attach = append(d.attach, a)
	return a, nil
}

// The kernel's link info does not say which XDP mode a link uses, so the
// mode is remembered as a second pin of the same link, "link_DEV@MODE"
// (bpffs holds no regular files).
func readMode(pin string) (XDPMode, bool) {
	for _, m := range []XDPMode{ModeNative, ModeGeneric} {
		if _, err := os.Stat(modePin(pin, m)); err == nil {
			return m, true
		}
	}
	return "", false
}

func writeMode(pin string, m XDPMode) {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return
	}
	defer l.Close()
	// A link loaded from a pin moves that pin when pinned again
	// (cilium/ebpf renames): pin a duplicate descriptor, which knows no
	// path, so that both pins stay.
	raw, ok := l.(interface{ FD() int })
	if !ok {
		return
	}
	fd, err := unix.FcntlInt(uintptr(raw.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	dup, err := link.NewFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return
	}
	defer dup.Close()
	_ = dup.Pin(modePin(pin, m))
}

// Attachments lists the devices the program is on.
func (d *Dataplane) Attachments() []Attachment { return append([]Attachment(nil), d.attach...) }

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

// Reasons reads the per-reason exit counters, summed over CPUs.
func (d *Dataplane) Reasons() (Reasons, error) {
	var r Reasons
	var per []uint64
	for i := range r {
		if err := d.objs.XtrReasonsV2.Lookup(uint32(i), &per); err != nil {
			return r, err
		}
		for _, v := range per {
			r[i] += v
		}
	}
	return r, nil
}

// Close releases this process's handles. Pins stay: the program keeps
// forwarding with the maps as they are until a new relay adopts them.
func (d *Dataplane) Close() error {
	for _, l := range d.links {
		l.Close()
	}
	d.links = map[int]link.Link{}
	err := d.objs.Close()
	d.lock.release() // last: the next relay adopts only what this one left
	return err
}

// Remove detaches the program from every device and deletes all pins: a
// clean shutdown that ends fast-path forwarding.
func (d *Dataplane) Remove() error {
	var errs []error
	for _, l := range d.links {
		if err := l.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	entries, _ := os.ReadDir(d.pinDir)
	for _, e := range entries {
		if err := os.Remove(filepath.Join(d.pinDir, e.Name())); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	// the directory goes while still locked: a relay waiting for the lock
	// then finds it gone and installs a new one
	_ = os.Remove(d.pinDir)
	errs = append(errs, d.Close())
	return errors.Join(errs...)
}

// RemovePins deletes the pins under dir without loading anything: links
// are detached once their last pin and handle are gone.
func RemovePins(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ensureBPFFS makes sure dir will live on a bpffs: if its nearest existing
// ancestor is not one, a bpffs is mounted on dir's parent.
func ensureBPFFS(dir string) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	probe := parent
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		next := filepath.Dir(probe)
		if next == probe {
			break
		}
		probe = next
	}
	if isBPFFS(probe) {
		return nil
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrNotBPFFS, err)
	}
	if err := unix.Mount("bpf", parent, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("%w: mount bpffs on %s: %w", ErrNotBPFFS, parent, err)
	}
	return nil
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC
}

// NumCPU is the number of possible CPUs per-CPU maps are sized for.
func NumCPU() int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return runtime.NumCPU()
	}
	return n
}

// enableForwarding turns on IP forwarding for dev: bpf_fib_lookup answers
// "forwarding disabled" for packets arriving on a device without it, and
// the fast path is, to the kernel, forwarding. The caller's network
// namespace is the one changed.
func enableForwarding(dev string) error {
	for _, p := range []string{
		"/proc/sys/net/ipv4/conf/" + dev + "/forwarding",
		"/proc/sys/net/ipv6/conf/" + dev + "/forwarding",
	} {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
			continue
		}
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("enable forwarding on %s (bpf_fib_lookup needs it): %w", dev, err)
		}
	}
	return nil
}
