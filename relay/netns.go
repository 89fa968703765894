package relay

import (
	"fmt"
	"net/netip"
	"runtime"

	"golang.org/x/sys/unix"
)

// binder creates the relay's sockets in the network namespace New was
// called in, whichever thread later asks: NG commands are served on
// arbitrary goroutines, and a goroutine's thread may be in another
// namespace when the relay is embedded (tests, the demo and the benchmark
// run relays inside namespaces of their own labs).
type binder struct {
	reqs chan bindReq
}

type bindReq struct {
	addr  netip.Addr
	port  int
	reply chan bindResp
}

type bindResp struct {
	rtp, rtcp *udpSock
	err       error
}

func newBinder() (*binder, error) {
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	b := &binder{reqs: make(chan bindReq)}
	ready := make(chan error, 1)
	go func() {
		// This thread is switched into the namespace for good; exiting the
		// goroutine while locked makes the runtime discard the thread.
		runtime.LockOSThread()
		err := unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		ready <- err
		if err != nil {
			return
		}
		for req := range b.reqs {
			rtp, rtcp, err := bindPair(req.addr, req.port)
			req.reply <- bindResp{rtp, rtcp, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("setns: %w", err)
	}
	return b, nil
}

func (b *binder) bind(addr netip.Addr, port int) (*udpSock, *udpSock, error) {
	reply := make(chan bindResp, 1)
	b.reqs <- bindReq{addr, port, reply}
	r := <-reply
	return r.rtp, r.rtcp, r.err
}

func (b *binder) close() { close(b.reqs) }
