// Package sockbuf sizes the receive buffers of the edge's busy UDP
// sockets (the SIP listener, the NG client and the relay's NG port) and
// reads how many datagrams the kernel dropped on them.
//
// The kernel's default receive buffer (net.core.rmem_default, 208 KiB)
// holds a few hundred small datagrams. A reader goroutine that stalls for
// a few tens of milliseconds — a GC cycle, a CPU busy with other work, a
// burst of NG queries — lets a queue at several hundred calls per second
// overflow, and every datagram dropped there costs its call a
// retransmission: 500 ms (SIP's T1, the NG client's retransmit) or more.
// That was the setup latency tail of `xtrunk sip` (BENCHMARKS.md, "Setup
// tail"). A buffer of a few MiB rides out such stalls; it costs memory
// only while datagrams wait in it.
//
// A leaf over x/sys and the Prometheus client: nothing of ours.
package sockbuf

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultReceive is the NG sockets' receive buffer by default: 4 MiB
// (8 MiB as the kernel counts it), some 3,500 datagrams of 2.3 KiB
// truesize, what a burst of NG replies to the live-quality queries needs
// with room to spare. The SIP listener takes less (signalling).
const DefaultReceive = 4 << 20

// Result is what SetReceive obtained.
type Result struct {
	// Requested is the size asked for (bytes).
	Requested int
	// Granted is the buffer the kernel set, as getsockopt(SO_RCVBUF)
	// reports it: twice the usable size asked for (the kernel doubles a
	// request to cover its bookkeeping), at most twice
	// net.core.rmem_max unless Forced.
	Granted int
	// Forced tells that SO_RCVBUFFORCE (CAP_NET_ADMIN) went past
	// net.core.rmem_max.
	Forced bool
}

// Capped tells whether the kernel granted less than requested (a
// net.core.rmem_max below the request, and no CAP_NET_ADMIN).
func (r Result) Capped() bool { return r.Granted < 2*r.Requested }

// SetReceive asks for a receive buffer of size bytes on c. It tries
// SO_RCVBUF, which net.core.rmem_max caps, and when the kernel granted
// less, SO_RCVBUFFORCE, which a process with CAP_NET_ADMIN may use past
// the cap; without the capability it keeps what SO_RCVBUF got (see
// Result.Capped) rather than fail. size <= 0 leaves the kernel's default
// and reports it.
func SetReceive(c syscall.Conn, size int) (Result, error) {
	res := Result{Requested: max(size, 0)}
	err := control(c, func(fd int) error {
		if size > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
				return fmt.Errorf("SO_RCVBUF: %w", err)
			}
		}
		got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		if err != nil {
			return fmt.Errorf("getsockopt SO_RCVBUF: %w", err)
		}
		res.Granted = got
		if size <= 0 || !res.Capped() {
			return nil
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			return nil // EPERM without CAP_NET_ADMIN: keep the capped size
		}
		if got, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
			return fmt.Errorf("getsockopt SO_RCVBUF: %w", err)
		}
		res.Granted, res.Forced = got, true
		return nil
	})
	return res, err
}

// Receive is c's receive buffer as getsockopt(SO_RCVBUF) reports it.
func Receive(c syscall.Conn) (int, error) {
	var n int
	err := control(c, func(fd int) error {
		var err error
		n, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		return err
	})
	return n, err
}

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of the drop counter in
// SO_MEMINFO's array (linux/sock_diag.h), and skMeminfoVars its length
// in kernels up to now; a newer kernel's longer array is cut to it.
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// Drops is how many datagrams the kernel dropped on c since it was
// opened, for want of room in its receive buffer mostly (SO_MEMINFO's
// SK_MEMINFO_DROPS, what `ss -m` shows as d and /proc/net/udp as drops;
// the kernel keeps it in 32 bits).
func Drops(c syscall.Conn) (uint32, error) {
	var v [skMeminfoVars]uint32
	err := control(c, func(fd int) error {
		l := uint32(unsafe.Sizeof(v))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&v[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			return fmt.Errorf("getsockopt SO_MEMINFO: %w", e)
		}
		if l < (skMeminfoDrops+1)*4 {
			return fmt.Errorf("getsockopt SO_MEMINFO: %d bytes: %w", l, ErrNoDropCounter)
		}
		return nil
	})
	return v[skMeminfoDrops], err
}

// control runs f on c's file descriptor.
func control(c syscall.Conn, f func(fd int) error) error {
	if c == nil {
		return fmt.Errorf("sockbuf: %w", ErrNotSocket)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("sockbuf: %w", err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return fmt.Errorf("sockbuf: %w", err)
	}
	if ferr != nil {
		return fmt.Errorf("sockbuf: %w", ferr)
	}
	return nil
}
