package xsk

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// frameOf returns the frame index of a UMEM address and whether it is one
// of ours.
func (s *Socket) frameOf(addr uint64) (uint64, bool) {
	f := addr >> s.frameShift
	return f, f < uint64(len(s.state))
}

// fits reports whether n bytes from addr stay inside addr's frame.
func (s *Socket) fits(addr uint64, n uint64) bool {
	return n > 0 && addr&(s.frameSize-1)+n <= s.frameSize
}

// Receive consumes up to len(out) descriptors from the RX ring into out and
// returns how many. It makes no system call. Each frame stays ours until
// Release (or TxFromRx) hands it back.
func (s *Socket) Receive(out []Desc) int {
	if s.closed || len(out) == 0 {
		return 0
	}
	if len(s.fillq) > 0 {
		s.pushFill()
		s.wakeFill()
	}
	n := s.rx.available(uint32(min(len(out), maxFrames)))
	if n == 0 {
		return 0
	}
	idx := s.rx.peek(n)
	got := 0
	for i := range n {
		d := s.rx.descs[(idx+i)&s.rx.mask]
		f, ok := s.frameOf(d.Addr)
		if !ok || s.state[f] != frameKernelRx || !s.fits(d.Addr, uint64(d.Len)) {
			// Only a kernel bug gets here; refusing the descriptor keeps a
			// bad address from reaching Frame or the fill ring.
			s.c.refused.Add(1)
			continue
		}
		s.state[f] = frameUserRx
		out[got] = Desc{Addr: d.Addr, Len: d.Len}
		got++
	}
	s.rx.release()
	s.c.received.Add(uint64(got))
	return got
}

// Frame returns the bytes of d, a view into the UMEM that is valid while
// the frame is ours (until Release, or until a transmitted frame's
// completion is reaped). Its capacity runs to the end of the frame, so a
// packet may grow in place before TxFromRx. A descriptor that is not
// inside one frame of this socket gives nil.
func (s *Socket) Frame(d Desc) []byte {
	if s.closed {
		return nil
	}
	f, ok := s.frameOf(d.Addr)
	if !ok || (d.Len > 0 && !s.fits(d.Addr, uint64(d.Len))) {
		return nil
	}
	end := (f + 1) << s.frameShift
	return s.umem[d.Addr : d.Addr+uint64(d.Len) : end]
}

// Release gives received frames back to the fill ring with one index
// store, and wakes the kernel (recvfrom MSG_DONTWAIT) only if the fill
// ring's NEED_WAKEUP flag is set. A descriptor that Receive did not hand
// out, or that was already released, is refused and counted.
func (s *Socket) Release(ds []Desc) {
	if s.closed || len(ds) == 0 {
		return
	}
	for _, d := range ds {
		f, ok := s.frameOf(d.Addr)
		if !ok || s.state[f] != frameUserRx {
			s.c.refused.Add(1)
			continue
		}
		s.state[f] = frameKernelRx
		s.fillq = append(s.fillq, f<<s.frameShift) // cap is the frame count: never grows
	}
	s.pushFill()
	s.wakeFill()
}

// pushFill moves queued frames into the fill ring, as many as it has
// room for, and publishes them with one store.
func (s *Socket) pushFill() {
	var n uint32
	if s.fillq, n = produce(s.fill, s.fill.addrs, s.fillq); n > 0 {
		s.fillDirty = true
	}
}

// wakeFill kicks the kernel for new fill ring entries when it asked to be
// woken. Without need_wakeup (before 5.4) the driver polls the fill ring
// by itself, so there is nothing to do.
func (s *Socket) wakeFill() {
	if !s.fillDirty {
		return
	}
	s.fillDirty = false
	if s.fill.flags == nil || !s.fill.needWakeup() {
		s.c.fillWakeupsSkipped.Add(1)
		return
	}
	s.c.fillWakeups.Add(1)
	wakeRx(s.fd) // any error means the kernel is busy or will look anyway
}

// NextTx takes a free TX frame off the free list (reaping the completion
// ring first when the list is empty). buf is the whole frame to write the
// packet into. ok is false when every TX frame is in flight: flush, reap
// and try later. A frame taken must be given to SubmitTx or DropTx.
func (s *Socket) NextTx() (addr uint64, buf []byte, ok bool) {
	if s.closed {
		return 0, nil, false
	}
	if len(s.free) == 0 && s.Reap() == 0 {
		return 0, nil, false
	}
	addr = s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.state[addr>>s.frameShift] = frameUserTx
	return addr, s.umem[addr : addr+s.frameSize : addr+s.frameSize], true
}

// DropTx puts a frame from NextTx back on the free list unsent.
func (s *Socket) DropTx(addr uint64) {
	f, ok := s.frameOf(addr)
	if s.closed || !ok || s.state[f] != frameUserTx {
		s.c.refused.Add(1)
		return
	}
	s.putFree(f)
}

func (s *Socket) putFree(f uint64) {
	s.state[f] = frameTxFree
	s.free = append(s.free, f<<s.frameShift) // cap is the frame count: never grows
}

// SubmitTx queues frame addr (from NextTx) with n bytes of packet; the
// kernel sees it at the next FlushTx. An address not from NextTx, or an n
// that does not fit the frame, is refused and counted (the frame, if it
// was ours, goes back to the free list).
func (s *Socket) SubmitTx(addr uint64, n int) {
	f, ok := s.frameOf(addr)
	if s.closed || !ok || s.state[f] != frameUserTx {
		s.c.refused.Add(1)
		return
	}
	if n <= 0 || !s.fits(addr, uint64(n)) {
		s.c.refused.Add(1)
		s.putFree(f)
		return
	}
	s.queueTx(f, addr, uint32(n))
}

func (s *Socket) queueTx(f, addr uint64, n uint32) {
	s.txq = append(s.txq, unix.XDPDesc{Addr: addr, Len: n}) // cap is the frame count
	s.state[f] = frameKernelTx
	s.txInFlight++
}

// TxFromRx transmits a received frame as it now is in the UMEM (d.Len may
// differ from what Receive said, d.Addr must not), without a copy: the
// frame moves to the TX side and a free TX frame takes its place in the
// fill ring, so neither side runs short. It is false when d is not a
// frame Receive handed out, does not fit, or no TX frame is free (then d
// is still the caller's to Release). The kernel sees it at FlushTx.
//
// This is safe in copy mode too: both sides use this socket's single
// UMEM, the kernel copies the frame out of it on transmit, and the
// completion returns the address to the free list.
func (s *Socket) TxFromRx(d Desc) bool {
	f, ok := s.frameOf(d.Addr)
	if s.closed || !ok || s.state[f] != frameUserRx || !s.fits(d.Addr, uint64(d.Len)) {
		s.c.refused.Add(1)
		return false
	}
	if len(s.free) == 0 && s.Reap() == 0 {
		return false
	}
	swap := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.state[swap>>s.frameShift] = frameKernelRx
	s.fillq = append(s.fillq, swap) // published at the next FlushTx or Release, once per batch
	s.queueTx(f, d.Addr, d.Len)
	return true
}

// FlushTx publishes the queued TX descriptors with one index store and,
// while the kernel has not consumed all of them, kicks it with
// sendto(MSG_DONTWAIT) only if the TX ring's NEED_WAKEUP flag is set (or
// always on kernels without need_wakeup). EAGAIN, EBUSY, ENOBUFS and
// EINTR are not errors: the descriptors stay queued, call FlushTx again
// (in copy mode one sendto sends a bounded batch, 32 frames by default,
// so a long queue takes several flushes). It also wakes the fill ring for
// frames TxFromRx swapped in.
func (s *Socket) FlushTx() error {
	if s.closed {
		return ErrClosed
	}
	s.pushFill()
	s.wakeFill()
	s.pushTx()
	if s.tx.pending() == 0 {
		return nil
	}
	if !s.tx.needWakeup() {
		s.c.kicksSkipped.Add(1)
		return nil
	}
	s.c.kicks.Add(1)
	if e := kick(s.fd); e != 0 {
		if retryable(e) {
			s.c.kickRetries.Add(1)
			return nil
		}
		if gone(e) {
			return fmt.Errorf("%w: %w: %s: sendto: %w", ErrKick, ErrNoInterface, s.where, e)
		}
		return fmt.Errorf("%w: %s: sendto: %w", ErrKick, s.where, e)
	}
	return nil
}

// gone reports whether an error means the bound device went away: the
// kernel unbinds the socket then (ENXIO on sendto) and sets ENETDOWN as
// its pending error.
func gone(e unix.Errno) bool {
	return e == unix.ENXIO || e == unix.ENETDOWN || e == unix.ENODEV
}

// pushTx moves queued descriptors into the TX ring, as many as it has
// room for, and publishes them with one store.
func (s *Socket) pushTx() {
	var n uint32
	s.txq, n = produce(s.tx, s.tx.descs, s.txq)
	s.c.transmitted.Add(uint64(n))
}

// Reap moves completed TX frames from the completion ring to the free
// list and returns how many.
func (s *Socket) Reap() int {
	if s.closed {
		return 0
	}
	n := s.comp.available(s.comp.size)
	if n == 0 {
		return 0
	}
	idx := s.comp.peek(n)
	got := 0
	for i := range n {
		f, ok := s.frameOf(s.comp.addrs[(idx+i)&s.comp.mask])
		if !ok || s.state[f] != frameKernelTx {
			s.c.refused.Add(1)
			continue
		}
		s.putFree(f)
		got++
	}
	s.comp.release()
	s.txInFlight -= got
	s.c.completed.Add(uint64(got))
	return got
}

// TxInFlight is the number of frames submitted (SubmitTx, TxFromRx) whose
// completion has not been reaped: keep calling FlushTx and Reap while it
// is above zero.
func (s *Socket) TxInFlight() int { return s.txInFlight }

// Wait blocks in poll(2) until the RX ring has descriptors or timeout
// passes (a negative timeout waits for ever) and reports whether it has.
// It is for idle loops only: a busy loop calls Receive. poll also lets
// the kernel process the rings, as a wakeup would.
//
// When the interface is removed the kernel unbinds the socket and poll
// just times out, so after a timeout Wait reads the socket's pending
// error: from then on it returns ErrNoInterface (the socket must be
// closed and, once the interface is back, opened again).
func (s *Socket) Wait(timeout time.Duration) (bool, error) {
	if s.closed {
		return false, ErrClosed
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	s.pfd[0].Revents = 0
	n, err := unix.Poll(s.pfd[:], ms)
	if err == unix.EINTR {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %s: poll: %w", ErrSetup, s.where, err)
	}
	if s.pfd[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("%w: %s: poll: events %#x", ErrSetup, s.where, s.pfd[0].Revents)
	}
	if n > 0 && s.pfd[0].Revents&unix.POLLIN != 0 {
		return true, nil
	}
	if s.down == nil {
		if e, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
			s.down = fmt.Errorf("%w: %s: socket unbound: %w", ErrNoInterface, s.where, unix.Errno(e))
		}
	}
	return false, s.down
}
