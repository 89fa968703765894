package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// binder creates the relay's sockets in the network namespace New was
// called in, whichever thread later asks: NG commands are served on
// arbitrary goroutines, and a goroutine's thread may be in another
// namespace when the relay is embedded (tests, the demo and the benchmark
// run relays inside namespaces of their own labs). A relay made where
// every thread of the process is — `xtrunk relay` — binds on the calling
// thread: handing each bind to the binder's thread costs two thread
// wake-ups per port pair. (Go starts new threads from threads not locked
// into another namespace, so they stay in it.)
type binder struct {
	reqs chan bindReq // nil: bind on the calling thread
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
	if allThreadsHere() {
		return &binder{}, nil
	}
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
	if b.reqs == nil {
		return bindPair(addr, port)
	}
	reply := make(chan bindResp, 1)
	b.reqs <- bindReq{addr, port, reply}
	r := <-reply
	return r.rtp, r.rtcp, r.err
}

func (b *binder) close() {
	if b.reqs != nil {
		close(b.reqs)
	}
}

// allThreadsHere says whether every thread of the process is in the
// calling thread's network namespace; false when unsure.
func allThreadsHere() bool {
	var here unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &here); err != nil {
		return false
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false
	}
	for _, t := range tasks {
		var st unix.Stat_t
		err := unix.Stat("/proc/self/task/"+t.Name()+"/ns/net", &st)
		if errors.Is(err, unix.ENOENT) {
			continue // the thread ended
		}
		if err != nil || st.Dev != here.Dev || st.Ino != here.Ino {
			return false
		}
	}
	return true
}
