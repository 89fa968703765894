package xsk

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// x/sys/unix has the AF_XDP types and constants but no typed
// get/setsockopt for them, so these call the system calls directly.

func setsockopt(fd, opt int, val unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(val), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

// getsockopt reads option opt into val (size bytes) and returns the
// length the kernel wrote, which tells the old layouts of
// XDP_MMAP_OFFSETS and XDP_STATISTICS apart from the current ones.
func getsockopt(fd, opt int, val unsafe.Pointer, size uintptr) (uintptr, error) {
	l := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(val), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return uintptr(l), nil
}

// xdpRingOffsetV1 is struct xdp_ring_offset_v1 (kernels before 5.4,
// without the flags word).
type xdpRingOffsetV1 struct {
	Producer, Consumer, Desc uint64
}

// mmapOffsets reads XDP_MMAP_OFFSETS. hasFlags is false on kernels that
// still report the v1 layout, which have no need_wakeup.
func mmapOffsets(fd int) (off unix.XDPMmapOffsets, hasFlags bool, err error) {
	n, err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off))
	if err != nil {
		return off, false, err
	}
	if n == unsafe.Sizeof(off) {
		return off, true, nil
	}
	// The v1 layout is four xdpRingOffsetV1 back to back; unpack it out of
	// the bytes the kernel wrote into the start of off.
	var v1 [4]xdpRingOffsetV1
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&v1)), unsafe.Sizeof(v1)), unsafe.Slice((*byte)(unsafe.Pointer(&off)), unsafe.Sizeof(v1)))
	rings := [4]*unix.XDPRingOffset{&off.Rx, &off.Tx, &off.Fr, &off.Cr}
	for i, r := range rings {
		*r = unix.XDPRingOffset{Producer: v1[i].Producer, Consumer: v1[i].Consumer, Desc: v1[i].Desc}
	}
	return off, false, nil
}

// mmapRing maps one ring of the socket at page offset pgoff.
func mmapRing(fd int, pgoff int64, length uint64) ([]byte, error) {
	return unix.Mmap(fd, pgoff, int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
}

// kick is sendto(fd, NULL, 0, MSG_DONTWAIT): it makes the kernel process
// the TX ring. A raw system call, so the hot path allocates nothing.
func kick(fd int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// wakeRx is recvfrom(fd, NULL, 0, MSG_DONTWAIT): it wakes the driver to
// pick up fill ring entries (libxdp's xdpsock does the same).
func wakeRx(fd int) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

// retryable reports whether a wakeup error means "busy, try later".
func retryable(e unix.Errno) bool {
	switch e {
	case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.EINTR:
		return true
	}
	return false
}
