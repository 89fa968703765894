package relay

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one recvmmsg/sendmmsg moves.
const batchSize = 32

// maxPacket is the largest datagram the relay handles (RTP over Ethernet).
const maxPacket = 2048

// batch is a reusable set of buffers and headers for recvmmsg/sendmmsg.
// The packet loop takes one from batchPool per wakeup, so a relay with tens
// of thousands of idle sockets does not hold tens of thousands of buffers.
type batch struct {
	hdrs  [batchSize]unix.Mmsghdr
	iovs  [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6
	bufs  [batchSize][maxPacket]byte
	n     int

	out     [batchSize]unix.Mmsghdr
	outIovs [batchSize]unix.Iovec
	outName [batchSize]unix.RawSockaddrInet6
	nout    int

	woff, failed int
	err          error
	readFn       func(fd uintptr) bool
	writeFn      func(fd uintptr) bool
}

var batchPool = sync.Pool{New: func() any { return newBatch() }}

func newBatch() *batch {
	b := &batch{}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(maxPacket)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.out[i].Hdr.Iov = &b.outIovs[i]
		b.out[i].Hdr.SetIovlen(1)
		b.out[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.outName[i]))
	}
	b.readFn = b.doRead
	b.writeFn = b.doWrite
	return b
}

// reset prepares the receive headers for the next recvmmsg.
func (b *batch) reset() {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].Hdr.Flags = 0
		b.hdrs[i].Len = 0
	}
	b.n = 0
	b.nout = 0
	b.err = nil
}

// packet i's payload and source.
func (b *batch) packet(i int) ([]byte, netip.AddrPort) {
	return b.bufs[i][:b.hdrs[i].Len], sockaddrToAddrPort(&b.names[i])
}

// queue adds a datagram to send (its bytes must stay valid until flush).
func (b *batch) queue(p []byte, to netip.AddrPort) {
	if len(p) == 0 {
		return
	}
	i := b.nout
	b.outIovs[i].Base = &p[0]
	b.outIovs[i].SetLen(len(p))
	b.out[i].Hdr.Namelen = addrPortToSockaddr(to, &b.outName[i])
	b.nout++
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), ntohs(s4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

func addrPortToSockaddr(ap netip.AddrPort, sa *unix.RawSockaddrInet6) uint32 {
	if ap.Addr().Is4() {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(ap.Port()), Addr: ap.Addr().As4()}
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(ap.Port()), Addr: ap.Addr().As16()}
	return unix.SizeofSockaddrInet6
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return v<<8 | v>>8 }

// udpSock is one bound relay socket with batched, allocation-free I/O.
// Reads happen on the socket's own goroutine; writes may come from several
// (both directions of a call can send through one socket), which is safe
// because all per-call state lives in the caller's batch.
type udpSock struct {
	conn  *net.UDPConn
	rc    syscall.RawConn
	local netip.AddrPort

	// reader state, used by the socket's one reading goroutine only
	rb     *batch
	readFn func(fd uintptr) bool
}

func listenUDP(local netip.AddrPort) (*udpSock, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	s := &udpSock{conn: c, rc: rc, local: local}
	s.readFn = s.doRead
	return s, nil
}

// doRead takes a batch from the pool only once the socket is readable, so
// a relay with tens of thousands of idle sockets holds no buffers for them.
func (s *udpSock) doRead(fd uintptr) bool {
	b := batchPool.Get().(*batch)
	b.reset()
	if !b.doRead(fd) {
		batchPool.Put(b)
		return false
	}
	s.rb = b
	return true
}

// next blocks until datagrams arrive and returns them in a pooled batch
// the caller puts back.
func (s *udpSock) next() (*batch, error) {
	s.rb = nil
	if err := s.rc.Read(s.readFn); err != nil {
		if s.rb != nil {
			batchPool.Put(s.rb)
		}
		return nil, err
	}
	b := s.rb
	if b.err != nil {
		batchPool.Put(b)
		return nil, b.err
	}
	return b, nil
}

func (b *batch) doRead(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0:
		b.n = int(n)
		b.err = nil
		return true
	case unix.EAGAIN, unix.EINTR:
		return false
	}
	b.err = errno
	return true
}

func (b *batch) doWrite(fd uintptr) bool {
	for b.woff < b.nout {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[b.woff])), uintptr(b.nout-b.woff), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			b.woff += int(n)
		case unix.EAGAIN:
			return false
		case unix.EINTR:
		default:
			// a datagram the kernel refuses (EHOSTUNREACH, EINVAL...) is
			// skipped and counted, not retried forever
			b.err = errno
			b.woff++
			b.failed++
		}
	}
	return true
}

// flush sends every queued datagram of b out of this socket and returns how
// many the kernel refused.
func (s *udpSock) flush(b *batch) int {
	if b.nout == 0 {
		return 0
	}
	b.woff, b.failed, b.err = 0, 0, nil
	if err := s.rc.Write(b.writeFn); err != nil {
		b.failed = b.nout - b.woff
	}
	b.nout = 0
	return b.failed
}

func (s *udpSock) Close() error { return s.conn.Close() }

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
