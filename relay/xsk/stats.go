package xsk

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stats are the kernel's XDP_STATISTICS for the socket and the socket's
// own counters. All are totals since Open.
type Stats struct {
	// From the kernel (XDP_STATISTICS). Fields a kernel does not report
	// (RxRingFull and after, before 5.9) stay zero.
	RxDropped            uint64 // frames dropped for reasons other than invalid descriptors
	RxInvalidDescs       uint64 // invalid fill ring descriptors
	TxInvalidDescs       uint64 // invalid TX descriptors (bad address or length)
	RxRingFull           uint64 // frames dropped because the RX ring was full
	RxFillRingEmptyDescs uint64 // times the kernel found the fill ring empty
	TxRingEmptyDescs     uint64 // times the kernel found the TX ring empty

	// Our own.
	Received           uint64 // descriptors taken by Receive
	Transmitted        uint64 // descriptors published to the TX ring (SubmitTx, TxFromRx, then FlushTx)
	Completed          uint64 // completions reaped
	Kicks              uint64 // TX wakeups made (sendto)
	KicksSkipped       uint64 // FlushTx with frames queued but NEED_WAKEUP clear: no system call
	KickRetries        uint64 // TX wakeups the kernel answered EAGAIN/EBUSY/ENOBUFS/EINTR
	FillWakeups        uint64 // fill ring wakeups made (recvfrom)
	FillWakeupsSkipped uint64 // fill ring refills with NEED_WAKEUP clear: no system call
	Refused            uint64 // descriptors refused: released twice, not ours, too long
}

// Stats reads the kernel's statistics and the socket's counters. It may
// be called from another goroutine than the one using the socket, but
// not concurrently with Close.
func (s *Socket) Stats() (Stats, error) {
	if s.closed {
		return Stats{}, ErrClosed
	}
	var k unix.XDPStatistics
	if _, err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&k), unsafe.Sizeof(k)); err != nil {
		return Stats{}, fmt.Errorf("%w: %s: XDP_STATISTICS: %w", ErrSetup, s.where, err)
	}
	return Stats{
		RxDropped:            k.Rx_dropped,
		RxInvalidDescs:       k.Rx_invalid_descs,
		TxInvalidDescs:       k.Tx_invalid_descs,
		RxRingFull:           k.Rx_ring_full,
		RxFillRingEmptyDescs: k.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs:     k.Tx_ring_empty_descs,
		Received:             s.c.received.Load(),
		Transmitted:          s.c.transmitted.Load(),
		Completed:            s.c.completed.Load(),
		Kicks:                s.c.kicks.Load(),
		KicksSkipped:         s.c.kicksSkipped.Load(),
		KickRetries:          s.c.kickRetries.Load(),
		FillWakeups:          s.c.fillWakeups.Load(),
		FillWakeupsSkipped:   s.c.fillWakeupsSkipped.Load(),
		Refused:              s.c.refused.Load(),
	}, nil
}
