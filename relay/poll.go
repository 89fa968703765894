package relay

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A poller reads many relay sockets from one goroutine: an epoll set of
// their descriptors, itself waited on through Go's runtime poller (an
// epoll descriptor is pollable), so no thread blocks in epoll_wait and a
// call costs no goroutine at all. The relay runs one poller per CPU and
// spreads sockets over them; each socket is read by its one poller only,
// which the packet loop relies on (see handle). The set is level
// triggered: a socket with more than a batch waiting comes back on the
// next pass, after the other ready sockets have had theirs.
type poller struct {
	epfd *os.File
	rc   syscall.RawConn

	mu     sync.RWMutex
	socks  map[uint64]*sock
	nextID uint64

	events [64]unix.EpollEvent
	n      int
	err    error
	waitFn func(fd uintptr) bool
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	p := &poller{epfd: os.NewFile(uintptr(fd), "relay-epoll"), socks: map[uint64]*sock{}, nextID: 1}
	if p.rc, err = p.epfd.SyscallConn(); err != nil {
		p.epfd.Close()
		return nil, err
	}
	p.waitFn = p.wait
	return p, nil
}

// add registers s for reading.
func (p *poller) add(s *sock) error {
	u := s.udp
	p.mu.Lock()
	id := p.nextID
	p.nextID++ // never reused: a stale event finds no socket
	p.socks[id] = s
	p.mu.Unlock()
	u.pl, u.id = p, id
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	var err error
	cerr := p.rc.Control(func(epfd uintptr) { err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, u.fd, &ev) })
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.remove(u)
		return fmt.Errorf("epoll add %v: %w", u.local, os.NewSyscallError("epoll_ctl", err))
	}
	return nil
}

// remove unregisters u (closing its descriptor would too, but the id must
// go from the table).
func (p *poller) remove(u *udpSock) {
	p.mu.Lock()
	_, ok := p.socks[u.id]
	delete(p.socks, u.id)
	p.mu.Unlock()
	if !ok {
		return
	}
	u.mu.RLock()
	if !u.closed {
		_ = p.rc.Control(func(epfd uintptr) { _ = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, u.fd, nil) })
	}
	u.mu.RUnlock()
}

func (p *poller) close() error { return p.epfd.Close() }

// wait collects the ready sockets without blocking; false parks the
// goroutine in the runtime poller until the set has some.
func (p *poller) wait(fd uintptr) bool {
	for {
		n, err := unix.EpollWait(int(fd), p.events[:], 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			p.err = err
			return true
		}
		p.n = n
		return n > 0
	}
}

// poll runs p until it is closed: each ready socket gets one batch read
// and handled.
func (r *Relay) poll(p *poller) {
	defer r.wg.Done()
	for {
		if err := p.rc.Read(p.waitFn); err != nil {
			return // closed
		}
		if p.err != nil {
			r.log.Error().Err(p.err).Msg("epoll_wait failed")
			return
		}
		for _, ev := range p.events[:p.n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.RLock()
			s := p.socks[id]
			p.mu.RUnlock()
			if s != nil {
				r.readReady(s)
			}
		}
	}
}

// readReady reads and forwards one batch of s. The batch comes from the
// pool only for the read, so idle sockets hold no buffers.
func (r *Relay) readReady(s *sock) {
	b := batchPool.Get().(*batch)
	b.reset()
	if err := s.udp.read(b); err == nil && b.n > 0 {
		if s.udp.xp != nil {
			// a local party's port: the AF_XDP loops handle it too
			s.rx.Lock()
			r.handle(s, b)
			s.rx.Unlock()
		} else {
			r.handle(s, b)
		}
	}
	batchPool.Put(b)
}
