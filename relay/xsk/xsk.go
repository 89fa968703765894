// Package xsk implements AF_XDP sockets over golang.org/x/sys/unix, the way
// libxdp's xsk.c does in C: a UMEM (one mmap'd area of fixed-size frames,
// registered with the kernel), its fill and completion rings, the socket's
// RX and TX rings, all four mapped from the kernel at the offsets
// XDP_MMAP_OFFSETS reports, and a bind to one RX queue of one interface.
// An XDP program sends frames to the socket with bpf_redirect_map on an
// XSKMAP holding FD() at the queue's index.
//
// Frames are split in two pools at Open: half go to the fill ring (the
// kernel writes received packets into them; Receive hands them out,
// Release gives them back) and half form the TX free list (NextTx hands one
// out, SubmitTx queues it, FlushTx publishes the queue, Reap collects the
// completions). TxFromRx sends a received frame back out without a copy
// by swapping it with a free TX frame, so both pools keep their size.
//
// The hot path makes no system call while the kernel does not ask for one:
// need_wakeup (XDP_USE_NEED_WAKEUP, Linux 5.4) is always requested, and
// Release and FlushTx kick the kernel only when the fill or TX ring's
// XDP_RING_NEED_WAKEUP flag is set (in copy mode the TX flag is always set:
// sendto is what transmits). Nothing allocates per packet.
//
// A Socket belongs to one goroutine: Receive, Frame, Release, NextTx,
// DropTx, SubmitTx, FlushTx, Reap, TxFromRx and TxInFlight must all be
// called from the goroutine that polls the socket (or be serialised by a
// lock of the caller's), because the rings are single-producer/single-
// consumer and their cached indexes, the free list and the frame states
// are not locked. Two exceptions, both before Close: Stats may be called
// from any goroutine (a metrics scrape), and Wait (one caller at a time)
// touches only the descriptor, so a poller may block in it while another
// goroutine, under that lock, transmits. Close must not run concurrently
// with any other method.
//
// Open must run in the network namespace of the interface (the kernel
// resolves the ifindex there); the Socket can then be used from any
// thread.
package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Config.
const (
	DefaultFrames    = 4096
	DefaultFrameSize = 2048
	DefaultRingSize  = 2048
)

// Modes reported by Socket.Mode.
const (
	ModeZeroCopy = "zerocopy"
	ModeCopy     = "copy"
)

// minFrameSize is XDP_UMEM_MIN_CHUNK_SIZE: the kernel refuses smaller
// aligned chunks.
const minFrameSize = 2048

// maxFrames bounds the UMEM (frames × frame size) to something a relay
// would sensibly lock in memory.
const maxFrames = 1 << 20

// Config says where to bind and how large the UMEM and rings are.
type Config struct {
	Ifindex int
	Queue   int // RX queue id
	// Frames is the number of UMEM frames (default 4096), a power of two:
	// half receive, half transmit.
	Frames int
	// FrameSize is each frame's size (default 2048), a power of two from
	// 2048 to the page size. A received packet starts 256 bytes
	// (XDP_PACKET_HEADROOM) into its frame, so the largest one is
	// FrameSize-256 bytes with its Ethernet header; the kernel drops
	// longer ones (RxDropped). A transmitted one may fill the frame.
	FrameSize int
	// RingSize is the number of entries of each ring (default 2048), a
	// power of two of at least Frames/2, so the fill ring holds every
	// receive frame and the TX ring every transmit frame.
	RingSize int
	// ZeroCopy asks for XDP_ZEROCOPY; Open falls back to XDP_COPY if the
	// driver refuses, and Mode says which it got.
	ZeroCopy bool
	// NeedWakeup is always requested (XDP_USE_NEED_WAKEUP) when the kernel
	// has it.
}

// Desc is one received or transmitted packet: its address in the UMEM and
// its length.
type Desc struct {
	Addr uint64
	Len  uint32
}

// Frame ownership, one byte per UMEM frame: who may touch the frame now.
// Release, SubmitTx and TxFromRx check it, so a frame given back twice or
// an address that is not ours is refused (and counted) instead of
// corrupting the rings.
const (
	frameKernelRx uint8 = iota // in the fill ring or the RX ring
	frameUserRx                // returned by Receive, not yet released
	frameTxFree                // on the TX free list
	frameUserTx                // returned by NextTx, not yet submitted
	frameKernelTx              // submitted: TX ring or completion ring
)

// Socket is an AF_XDP socket with its own UMEM. See the package
// documentation for which goroutine may call what.
type Socket struct {
	fd    int
	mode  string
	where string // "to-b (ifindex 1001) queue 0", for errors

	umem                           []byte
	fillMem, compMem, rxMem, txMem []byte
	fill, comp, rx, tx             *ring

	frameSize  uint64
	frameShift uint
	rxFrames   uint32 // frames owned by the receive side
	state      []uint8
	free       []uint64 // TX free list, a stack of frame base addresses
	txInFlight int      // submitted, completion not reaped
	fillDirty  bool     // fill ring entries published since the last wakeup check

	// fillq and txq hold frames on their way into the fill and TX rings
	// when the ring shows no room. That happens although each ring can
	// hold its whole side: the kernel publishes its consumer index after
	// it has used the entries (for the fill ring, after the RX
	// descriptors of the same batch; for the TX ring, possibly after the
	// completions), so for a moment the slots of frames already back with
	// us still look taken. Without the queues such a frame would be lost.
	fillq []uint64
	txq   []unix.XDPDesc

	pfd    [1]unix.PollFd
	closed bool
	down   error // the interface went away (Wait found the socket's error)

	c counters
}

// counters are the socket's own statistics. They are atomics only so that
// Stats may read them from another goroutine; the owner adds to them once
// per batch.
type counters struct {
	received, transmitted, completed atomic.Uint64
	kicks, kicksSkipped, kickRetries atomic.Uint64
	fillWakeups, fillWakeupsSkipped  atomic.Uint64
	refused                          atomic.Uint64
}

func (c Config) withDefaults() (Config, error) {
	if c.Frames == 0 {
		c.Frames = DefaultFrames
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	switch {
	case c.Ifindex <= 0:
		return c, fmt.Errorf("%w: ifindex %d", ErrConfig, c.Ifindex)
	case c.Queue < 0:
		return c, fmt.Errorf("%w: queue %d", ErrConfig, c.Queue)
	case !pow2(c.Frames) || c.Frames < 2 || c.Frames > maxFrames:
		return c, fmt.Errorf("%w: frames %d: want a power of two from 2 to %d", ErrConfig, c.Frames, maxFrames)
	case !pow2(c.FrameSize) || c.FrameSize < minFrameSize || c.FrameSize > os.Getpagesize():
		return c, fmt.Errorf("%w: frame size %d: want a power of two from %d to the page size %d", ErrConfig, c.FrameSize, minFrameSize, os.Getpagesize())
	case !pow2(c.RingSize) || c.RingSize < c.Frames/2 || c.RingSize > maxFrames:
		return c, fmt.Errorf("%w: ring size %d: want a power of two from frames/2 (%d) to %d", ErrConfig, c.RingSize, c.Frames/2, maxFrames)
	}
	return c, nil
}

func pow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// describe names the interface and queue for error messages.
func describe(ifindex, queue int) string {
	if ifi, err := net.InterfaceByIndex(ifindex); err == nil {
		return fmt.Sprintf("%s (ifindex %d) queue %d", ifi.Name, ifindex, queue)
	}
	return fmt.Sprintf("ifindex %d queue %d", ifindex, queue)
}

// busyWait is how long Open keeps retrying a queue that is busy, and
// busyRetry how often. Closing an XDP socket frees its queue only after
// an RCU grace period and a kernel work item (the buffer pool's deferred
// release), so a socket re-created at once (a restart, a test) finds the
// queue busy for a few milliseconds.
const (
	busyWait  = time.Second
	busyRetry = 10 * time.Millisecond
)

// Open creates the UMEM and the four rings and binds the socket to
// cfg.Queue of cfg.Ifindex. Everything it mapped or opened is released
// again when it fails. A queue still held by another socket is retried
// for up to a second before Open gives up with ErrBusy.
func Open(cfg Config) (*Socket, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	where := describe(cfg.Ifindex, cfg.Queue)
	deadline := time.Now().Add(busyWait)
	for {
		s, err := openMode(cfg, where)
		if err == nil || !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(busyRetry)
	}
}

// openMode tries zero-copy if asked, then copy mode.
func openMode(cfg Config, where string) (*Socket, error) {
	if cfg.ZeroCopy {
		s, bindErr, err := open(cfg, unix.XDP_ZEROCOPY, where)
		if err == nil {
			return s, nil
		}
		if !bindErr || errors.Is(err, ErrBusy) || errors.Is(err, ErrNoInterface) {
			return nil, err // copy mode would fail the same way
		}
		// The driver cannot do zero-copy on this queue (EOPNOTSUPP on
		// veth, or its own error): copy mode works on every driver.
	}
	s, _, err := open(cfg, unix.XDP_COPY, where)
	return s, err
}

// open makes one attempt with the given bind flags. bindErr says the
// failure came from bind, where a zero-copy attempt may be retried in
// copy mode.
func open(cfg Config, mode uint16, where string) (*Socket, bool, error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if err == unix.EAFNOSUPPORT {
			return nil, false, fmt.Errorf("%w: %s: kernel has no AF_XDP: %w", ErrUnsupported, where, err)
		}
		return nil, false, fmt.Errorf("%w: %s: socket: %w", ErrSetup, where, err)
	}
	s := &Socket{fd: fd, where: where, frameSize: uint64(cfg.FrameSize)}
	s.frameShift = uint(bits.TrailingZeros64(s.frameSize))
	bindErr, err := s.setup(cfg, mode)
	if err != nil {
		s.release() // unmaps whatever was mapped and closes fd
		return nil, bindErr, err
	}
	return s, false, nil
}

// setup registers the UMEM, maps the rings, fills the fill ring and
// binds. bindErr says the failure was the bind's.
func (s *Socket) setup(cfg Config, mode uint16) (bindErr bool, err error) {
	if err := s.setupUMEM(cfg); err != nil {
		return false, err
	}
	hasFlags, err := s.setupRings(cfg)
	if err != nil {
		return false, err
	}
	s.initFrames(uint32(cfg.Frames))

	flags := mode
	if hasFlags {
		flags |= unix.XDP_USE_NEED_WAKEUP
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.Queue)}
	if err := unix.Bind(s.fd, sa); err != nil {
		return true, bindError(err, s.where, mode)
	}
	s.mode = ModeCopy
	if opts, err := unix.GetsockoptInt(s.fd, unix.SOL_XDP, unix.XDP_OPTIONS); err == nil {
		if opts&unix.XDP_OPTIONS_ZEROCOPY != 0 {
			s.mode = ModeZeroCopy
		}
	} else if mode == unix.XDP_ZEROCOPY {
		s.mode = ModeZeroCopy // before 5.3 there is no XDP_OPTIONS; the bind forced it
	}
	s.pfd[0] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN}
	return false, nil
}

func bindError(err error, where string, mode uint16) error {
	m := "copy"
	if mode == unix.XDP_ZEROCOPY {
		m = "zero-copy"
	}
	switch err {
	case unix.ENODEV:
		return fmt.Errorf("%w: %s: bind: %w", ErrNoInterface, where, err)
	case unix.EINVAL:
		return fmt.Errorf("%w: %s: bind (%s): no such RX queue, or flags refused: %w", ErrQueue, where, m, err)
	case unix.EBUSY:
		return fmt.Errorf("%w: %s: bind: another XDP socket or UMEM holds the queue: %w", ErrBusy, where, err)
	case unix.EOPNOTSUPP, unix.EAFNOSUPPORT, unix.EPROTONOSUPPORT:
		return fmt.Errorf("%w: %s: the driver cannot bind an XDP socket in %s mode: %w", ErrUnsupported, where, m, err)
	}
	return fmt.Errorf("%w: %s: bind (%s): %w", ErrSetup, where, m, err)
}

// setupUMEM maps the frames and registers them with the socket.
func (s *Socket) setupUMEM(cfg Config) error {
	size := cfg.Frames * cfg.FrameSize
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("%w: %s: mmap UMEM of %d bytes: %w", ErrSetup, s.where, size, err)
	}
	s.umem = mem
	nameUMEM(mem)
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem)))),
		Len:  uint64(size),
		Size: uint32(cfg.FrameSize),
	}
	if err := setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		if err == unix.ENOMEM || err == unix.EPERM {
			return fmt.Errorf("%w: %s: register UMEM of %d bytes (RLIMIT_MEMLOCK or CAP_IPC_LOCK?): %w", ErrSetup, s.where, size, err)
		}
		return fmt.Errorf("%w: %s: register UMEM: %w", ErrSetup, s.where, err)
	}
	return nil
}

// umemName labels the UMEM in /proc/PID/maps ("[anon:xsk-umem]"), so an
// operator can tell the locked frames from the Go heap (and tests can
// check that none is left behind).
var umemName = []byte("xsk-umem\x00")

// nameUMEM names the mapping; kernels before 5.17 or without
// CONFIG_ANON_VMA_NAME refuse, which changes nothing else.
func nameUMEM(mem []byte) {
	_ = unix.PrctlArg5Ptr(unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME,
		uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem)), unsafe.Pointer(unsafe.SliceData(umemName)))
}

// setupRings sizes and maps the four rings. hasFlags is false on kernels
// without need_wakeup.
func (s *Socket) setupRings(cfg Config) (hasFlags bool, err error) {
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_XDP, opt, cfg.RingSize); err != nil {
			return false, fmt.Errorf("%w: %s: ring size %d (option %d): %w", ErrSetup, s.where, cfg.RingSize, opt, err)
		}
	}
	off, hasFlags, err := mmapOffsets(s.fd)
	if err != nil {
		return false, fmt.Errorf("%w: %s: XDP_MMAP_OFFSETS: %w", ErrSetup, s.where, err)
	}
	size := uint32(cfg.RingSize)
	maps := []struct {
		mem  *[]byte
		r    **ring
		off  unix.XDPRingOffset
		pg   int64
		desc bool
		prod bool
	}{
		{&s.fillMem, &s.fill, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, false, true},
		{&s.compMem, &s.comp, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, false, false},
		{&s.rxMem, &s.rx, off.Rx, unix.XDP_PGOFF_RX_RING, true, false},
		{&s.txMem, &s.tx, off.Tx, unix.XDP_PGOFF_TX_RING, true, true},
	}
	for _, m := range maps {
		mem, err := mmapRing(s.fd, m.pg, ringBytes(m.off, size, m.desc))
		if err != nil {
			return false, fmt.Errorf("%w: %s: mmap ring at %#x: %w", ErrSetup, s.where, m.pg, err)
		}
		*m.mem = mem
		*m.r = newRing(mem, m.off, size, m.desc, hasFlags, m.prod)
	}
	return hasFlags, nil
}

// initFrames gives the first half of the frames to the fill ring and
// puts the second half on the TX free list.
func (s *Socket) initFrames(frames uint32) {
	s.rxFrames = frames / 2
	s.state = make([]uint8, frames)
	s.free = make([]uint64, 0, frames)
	s.fillq = make([]uint64, 0, frames)
	s.txq = make([]unix.XDPDesc, 0, frames)
	idx := s.fill.reserve(s.rxFrames)
	for i := range s.rxFrames {
		s.fill.addrs[(idx+i)&s.fill.mask] = uint64(i) << s.frameShift
		s.state[i] = frameKernelRx
	}
	s.fill.submit()
	for i := frames - 1; i >= s.rxFrames; i-- {
		s.free = append(s.free, uint64(i)<<s.frameShift)
		s.state[i] = frameTxFree
	}
}

// FD is the socket's descriptor, for the XSKMAP: xskmap.Put(uint32(queue),
// uint32(fd)).
func (s *Socket) FD() int { return s.fd }

// Mode is ModeZeroCopy or ModeCopy: what the kernel bound.
func (s *Socket) Mode() string { return s.mode }

// Close unmaps the rings and the UMEM and closes the socket. Calling it
// again does nothing.
func (s *Socket) Close() error {
	if s.closed {
		return nil
	}
	return s.release()
}

// release undoes Open as far as it got: rings first, then the socket,
// then the UMEM it had registered (libxdp's order).
func (s *Socket) release() error {
	s.closed = true
	var first error
	for _, m := range []*[]byte{&s.rxMem, &s.txMem, &s.fillMem, &s.compMem} {
		if *m != nil {
			if err := unix.Munmap(*m); err != nil && first == nil {
				first = fmt.Errorf("%w: %s: munmap ring: %w", ErrSetup, s.where, err)
			}
			*m = nil
		}
	}
	s.fill, s.comp, s.rx, s.tx = nil, nil, nil, nil
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil && first == nil {
			first = fmt.Errorf("%w: %s: close: %w", ErrSetup, s.where, err)
		}
		s.fd = -1
	}
	if s.umem != nil {
		if err := unix.Munmap(s.umem); err != nil && first == nil {
			first = fmt.Errorf("%w: %s: munmap UMEM: %w", ErrSetup, s.where, err)
		}
		s.umem = nil
	}
	return first
}
