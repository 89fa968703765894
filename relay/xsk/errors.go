package xsk

import "errors"

var (
	// ErrConfig is returned by Open for a Config it cannot use (sizes not
	// powers of two, a frame size the kernel refuses, rings too small to
	// hold the receive half of the frames).
	ErrConfig = errors.New("xsk: bad config")
	// ErrUnsupported is returned when the kernel has no AF_XDP
	// (EAFNOSUPPORT) or the driver of the interface cannot bind an XDP
	// socket (EOPNOTSUPP); the message names the interface and queue.
	ErrUnsupported = errors.New("xsk: AF_XDP not supported")
	// ErrNoInterface is returned when the ifindex names no interface in the
	// caller's network namespace, and by Wait and FlushTx once the
	// interface of a bound socket is gone.
	ErrNoInterface = errors.New("xsk: no such interface")
	// ErrQueue is returned when the queue id is not one of the interface's
	// RX queues (or the kernel refused the bind's arguments, EINVAL).
	ErrQueue = errors.New("xsk: bad queue")
	// ErrBusy is returned when the queue already has an XDP socket or UMEM
	// bound to it (EBUSY) and still has after Open's retries.
	ErrBusy = errors.New("xsk: queue busy")
	// ErrSetup wraps every other failure while creating the socket, the
	// UMEM or the rings (memory limits, mmap).
	ErrSetup = errors.New("xsk: setup")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("xsk: socket closed")
	// ErrKick is returned by FlushTx when the kernel refuses the TX wakeup
	// for a reason other than "try again" (EAGAIN, EBUSY, ENOBUFS, EINTR).
	ErrKick = errors.New("xsk: tx wakeup")
)
