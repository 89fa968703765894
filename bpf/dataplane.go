package bpf

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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
	// JitterSample is how many of a stream's RTP packets the fast path
	// feeds one pair of arrival times to the RFC 3550 jitter estimate:
	// 0 or 1 times every packet; N (a power of two, at most
	// MaxJitterSample) reads the precise clock for two consecutive
	// arrivals in N (xtr_jitter_mask in bpf/quality.h). Loss counting sees
	// every packet either way.
	JitterSample int
}

// MaxJitterSample bounds Options.JitterSample: past it the estimate's time
// constant (16 pairs, 16 N packets) outgrows a call.
const MaxJitterSample = 64

// jitterMask checks n (Options.JitterSample) and returns xtr_jitter_mask.
func jitterMask(n int) (uint32, error) {
	if n <= 1 {
		return 0, nil
	}
	if n > MaxJitterSample || n&(n-1) != 0 {
		return 0, fmt.Errorf("%w: %d (want 1 or a power of two up to %d)", ErrJitterSample, n, MaxJitterSample)
	}
	return uint32(n - 1), nil
}

// JitterPairAt is where the fast path's timed pair of arrivals starts in
// the block of a stream's RTP packets (SSRC ssrc) that begins at 0-based
// count c (a multiple of mask+1), sampled at mask+1 (jitter_pair_at in bpf/quality.h, which it mirrors for the
// tests' model of the estimator): an offset from 0 to mask (at mask the
// pair's second packet is the next block's first), spread by a hash so the
// pairs do not alias with a sender's bursts.
func JitterPairAt(c, ssrc, mask uint32) uint32 {
	h := (c * 0x9E3779B1) ^ ssrc
	h ^= h >> 15
	h *= 0x2C1B3C6D
	h ^= h >> 12
	return h & mask
}

// Dataplane is the loaded fast path: program, maps and links.
type Dataplane struct {
	objs relayObjects

	// portMu guards addrs (xtr_addrs as written) and live (the index
	// of every installed session).
	portMu sync.Mutex
	addrs  [][16]uint8
	live   map[Key]*portEntry

	pinDir  string
	links   map[int]link.Link
	attach  []Attachment
	adopted bool
	stale   []string // pins of another layout version, removed by Open
	lock    *pinLock // exclusive flock on pinDir, held until Close

	gen atomic.Uint32 // the last session generation written (even)

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
const layout = "_v3"

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
	if err := dropResizedCounters(spec, dir); err != nil {
		return nil, err
	}
	mask, err := jitterMask(o.JitterSample)
	if err != nil {
		return nil, err
	}
	if err := spec.Variables["xtr_jitter_mask"].Set(mask); err != nil {
		return nil, fmt.Errorf("set jitter sample: %w", err)
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
	d := &Dataplane{pinDir: dir, links: map[int]link.Link{}, adopted: adopted, live: map[Key]*portEntry{}, stale: stale}
	// generations start anywhere: a restarted process must not write one
	// that a CPU's next-hop cache still holds
	d.gen.Store(rand.Uint32() &^ 1) // even: see nextGen
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
	if err := d.adoptSessions(); err != nil {
		d.Close()
		return nil, fmt.Errorf("read pinned sessions: %w", err)
	}
	if o.PortMin != 0 || o.PortMax != 0 {
		cfg := relayXtrConfig{PortMin: o.PortMin, PortMax: o.PortMax}
		if err := d.objs.XtrConfigV3.Put(uint32(0), cfg); err != nil {
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

// Reasons reads the per-reason exit counters, summed over CPUs.
func (d *Dataplane) Reasons() (Reasons, error) {
	var r Reasons
	var per []uint64
	for i := range r {
		if err := d.objs.XtrReasonsV3.Lookup(uint32(i), &per); err != nil {
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

// NumCPU is the number of possible CPUs per-CPU maps are sized for.
func NumCPU() int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return runtime.NumCPU()
	}
	return n
}

// reasonsMap is the per-reason counter map: reasons are appended (types.h),
// which grows it. It holds counters only, nothing a restart must adopt.
const reasonsMap = "xtr_reasons" + layout

// dropResizedCounters removes a pinned reason counter map of another size
// than spec's (a relay from before a reason was appended): it cannot be
// adopted, and its counters are all it loses — the calls in the other
// pins are kept.
func dropResizedCounters(spec *ebpf.CollectionSpec, dir string) error {
	ms, ok := spec.Maps[reasonsMap]
	if !ok {
		return nil
	}
	path := filepath.Join(dir, reasonsMap)
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil // none pinned (or unreadable: LoadAndAssign says why)
	}
	size := m.MaxEntries()
	m.Close()
	if size == ms.MaxEntries {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove pin %s of another size: %w", reasonsMap, err)
	}
	return nil
}
