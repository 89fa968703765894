package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
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
	cur          *udpSock // where the queued datagrams go

	// for a socketless port's sends (xdpPath.sendBatch), made on first use
	xscratch []byte
	xdirty   []*xskPort
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
	b.cur = nil
}

func (b *batch) count() int { return b.n }

// packet i's payload and source.
func (b *batch) packet(i int) ([]byte, netip.AddrPort) {
	return b.bufs[i][:b.hdrs[i].Len], sockaddrToAddrPort(&b.names[i])
}

// queue adds a datagram to send from out (its bytes must stay valid until
// flush).
func (b *batch) queue(out *udpSock, p []byte, to netip.AddrPort) {
	if len(p) == 0 {
		return
	}
	b.cur = out
	i := b.nout
	b.outIovs[i].Base = &p[0]
	b.outIovs[i].SetLen(len(p))
	b.out[i].Hdr.Namelen = addrPortToSockaddr(to, &b.outName[i])
	b.nout++
}

// flush sends the queued datagrams out of their socket.
func (b *batch) flush() int {
	if b.cur == nil {
		return 0
	}
	n := b.cur.flush(b)
	b.cur = nil
	return n
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

// udpSock is one bound relay socket with batched, allocation-free I/O: a
// non-blocking descriptor of the relay's own, not a net.UDPConn, so it
// costs no goroutine and no runtime poller entry. A poller (see poll.go)
// reads it; writes may come from several goroutines (both directions of a
// call can send through one socket), which is safe because all per-call
// state lives in the caller's batch.
type udpSock struct {
	fd    int
	local netip.AddrPort

	// mu is read-held while fd is in use, so that Close, which takes it
	// to close fd, never closes a descriptor under a system call (where a
	// new socket could reuse its number).
	mu     sync.RWMutex
	closed bool
	pl     *poller // where the socket is registered, if anywhere
	id     uint64  // its id there
	// xp is set for a socketless relay's port (fd -1): no descriptor,
	// the AF_XDP path's port table routes to it and sends for it. A
	// port facing a party on the relay's own host gets a descriptor as
	// well (fd set once, under mu: localparty.go): it then receives and
	// sends toward that party through the kernel.
	xp *xdpPath
}

// listenUDP binds a non-blocking UDP socket to local: two system calls
// (socket, bind), where net.ListenUDP makes five.
func listenUDP(local netip.AddrPort) (*udpSock, error) {
	addr := local.Addr()
	family := unix.AF_INET6
	var sa unix.Sockaddr
	if addr.Is4() || addr.Is4In6() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(local.Port()), Addr: addr.Unmap().As4()}
	} else {
		sa6 := &unix.SockaddrInet6{Port: int(local.Port()), Addr: addr.As16()}
		if z := addr.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %v: %w", local, os.NewSyscallError("bind", err))
	}
	return &udpSock{fd: fd, local: local}, nil
}

// read fills b with what the socket holds, without waiting; b.n is 0 when
// there is nothing. It returns net.ErrClosed once the socket is closed.
func (s *udpSock) read(b *batch) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return net.ErrClosed
	}
	b.doRead(uintptr(s.fd))
	return b.err
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
// many the kernel refused. A full send buffer gets a short wait
// (sendBufferWait) and then drops what does not fit, as rtpengine does:
// waiting longer would hold up every socket of the poller.
func (s *udpSock) flush(b *batch) int {
	if b.nout == 0 {
		return 0
	}
	b.woff, b.failed, b.err = 0, 0, nil
	s.mu.RLock()
	if s.fd < 0 && s.xp != nil {
		// a socketless port: what a local party's kernel socket received
		// (localparty.go) goes on to the other party through AF_XDP
		s.mu.RUnlock()
		return s.xp.sendBatch(s.local, b)
	}
	ok := !s.closed && b.doWrite(uintptr(s.fd))
	if !ok && !s.closed && waitWritable(s.fd) {
		ok = b.doWrite(uintptr(s.fd))
	}
	if !ok {
		b.failed += b.nout - b.woff
	}
	s.mu.RUnlock()
	b.nout = 0
	return b.failed
}

// sendBufferWait bounds the wait for room in a full send buffer.
const sendBufferWait = 2 // ms

// waitWritable waits up to sendBufferWait for fd to take more datagrams.
func waitWritable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(pfd, sendBufferWait)
	return err == nil && n > 0 && pfd[0].Revents&unix.POLLOUT != 0
}

// writeTo sends one datagram to dst outside the batched path (media
// playback: a frame every 20 ms). It returns net.ErrClosed once the
// socket is closed; a full send buffer drops the datagram (EAGAIN), as
// flush does after its wait.
func (s *udpSock) writeTo(pkt []byte, dst netip.AddrPort) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.fd < 0 && s.xp != nil { // socketless (a local party's port has a descriptor: localparty.go)
		return s.xp.sendOne(s.local, pkt, dst)
	}
	return sendto(s.fd, pkt, dst)
}

// sendto sends one datagram from fd to dst without waiting.
func sendto(fd int, pkt []byte, dst netip.AddrPort) error {
	var sa unix.Sockaddr
	if a := dst.Addr(); a.Is4() || a.Is4In6() {
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: a.Unmap().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: a.As16()}
	}
	if err := unix.Sendto(fd, pkt, unix.MSG_DONTWAIT, sa); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	return nil
}

// Close unregisters the socket from its poller (or the AF_XDP path's
// port table) and closes it.
func (s *udpSock) Close() error {
	if s.pl != nil {
		s.pl.remove(s)
	}
	if s.xp != nil {
		s.xp.remove(s.local)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.fd < 0 {
		return nil
	}
	return unix.Close(s.fd)
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
