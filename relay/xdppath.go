package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/relay/xsk"
)

// The socketless relay's userspace packet path (--socketless): no socket
// per call. The XDP program redirects what needs userspace — learning,
// SRTP, cross-family, no neighbour, MTU — to an AF_XDP socket per (relay
// device, RX queue); one goroutine per socket reads its RX ring, finds the
// relay port each frame is addressed to (a map lookup replacing the
// socket), and runs the same packet logic as the socket path (handle).
// What is forwarded is written as a whole frame into the TX ring of a
// socket on the egress device, to the next hop the resolver found, or
// sent through the kernel (rawSender) when there is none.
//
// A socket's rings are single-producer/single-consumer: every use of one
// is under its xskPort's mu, held for the ring operations only, never
// while another port's is (the RX goroutine of one device transmits on
// another device's socket), so two loops cannot deadlock.

// xsk sizes: frames per socket (half receive, half transmit: 32 MB of
// UMEM, ~45 MB of RSS per relay with two devices), and descriptors read
// per pass. A loop that falls a ring behind, starved of CPU, makes the
// kernel drop (xtrunk_relay_xsk_kernel_drops_total): 8192 frames are
// 80 ms of 100 kpps. With 2048 (20 ms), `bench media --srtp` lost 5 % at
// 1,000 SRTP calls on a loaded 2-vCPU machine, all of it between the
// program's redirect and the loop; with 8192 it carried 1,000 clean.
const (
	xskFrames   = 16384
	xskRingSize = 8192
	xskBatch    = 64
	// xskIdleWait bounds the wait of an idle loop: how soon Close is seen.
	xskIdleWait = 100 * time.Millisecond
)

// xskPort is one AF_XDP socket: a device's RX queue.
type xskPort struct {
	mu      sync.Mutex
	s       *xsk.Socket
	dev     string
	ifindex int
	queue   int
	queued  int // TX frames submitted since the last flush (under mu)
}

// xdpPath owns the sockets, the port table and the transmit side.
type xdpPath struct {
	r     *Relay
	dp    *bpf.Dataplane
	ports []*xskPort
	byIf  map[int][]*xskPort // TX sockets per egress ifindex
	nh    *resolver
	raw   *rawSender
	m     *xskMetrics
	host  map[uint16]bool // ports host sockets held at start: never allocated

	mu    sync.RWMutex
	socks map[netip.AddrPort]*sock

	closed atomic.Bool
	wg     sync.WaitGroup
}

// newXDPPath opens a socket on every RX queue of every relay device,
// registers them with the program and starts their loops. It runs in the
// relay's network namespace (New): sockets, netlink and raw sockets are
// bound to the namespace they are made in.
func newXDPPath(r *Relay, dp *bpf.Dataplane) (x *xdpPath, err error) {
	x = &xdpPath{r: r, dp: dp, byIf: map[int][]*xskPort{}, socks: map[netip.AddrPort]*sock{}, m: newXSKMetrics(r.m.reg)}
	defer func() {
		if err != nil {
			x.close()
		}
	}()
	if x.nh, err = newResolver(); err != nil {
		return x, err
	}
	if x.raw, err = newRawSender(); err != nil {
		return x, err
	}
	x.host = hostUDPPorts(r.cfg.PortMin, r.cfg.PortMax)
	seen := map[string]bool{}
	for _, ifc := range r.ifaces {
		if seen[ifc.Device] {
			continue
		}
		seen[ifc.Device] = true
		if err := x.openDevice(ifc.Device); err != nil {
			return x, err
		}
	}
	for _, p := range x.ports {
		x.wg.Add(1)
		go x.loop(p)
	}
	if err := r.m.reg.Register(xskCollector{x}); err != nil {
		return x, fmt.Errorf("%w: metrics: %w", ErrXSK, err)
	}
	return x, nil
}

// openDevice opens and registers one socket per RX queue of dev.
func (x *xdpPath) openDevice(dev string) error {
	link, err := x.nh.h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrXSK, dev, err)
	}
	// IFLA_NUM_RX_QUEUES is what the device allocated; the queues in use
	// (real_num_rx_queues, what a bind accepts) may be fewer: the first
	// queue the kernel refuses ends the list
	queues := max(link.Attrs().NumRxQueues, 1)
	idx := link.Attrs().Index
	for q := range queues {
		s, err := xsk.Open(xsk.Config{Ifindex: idx, Queue: q, Frames: xskFrames, RingSize: xskRingSize, ZeroCopy: true})
		if q > 0 && errors.Is(err, xsk.ErrQueue) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s queue %d: %w", ErrXSK, dev, q, err)
		}
		p := &xskPort{s: s, dev: dev, ifindex: idx, queue: q}
		x.ports = append(x.ports, p)
		x.byIf[idx] = append(x.byIf[idx], p)
		if err := x.dp.RegisterXSK(idx, q, s.FD()); err != nil {
			return err
		}
		x.r.log.Info().Str("device", dev).Int("queue", q).Str("xsk_mode", s.Mode()).Msg("AF_XDP socket registered")
	}
	return nil
}

// close stops the loops, takes the sockets out of the program (their
// packets go to the kernel until a successor registers its own) and
// closes everything.
func (x *xdpPath) close() {
	x.closed.Store(true)
	x.wg.Wait()
	for _, p := range x.ports {
		_ = x.dp.UnregisterXSK(p.ifindex, p.queue)
		p.mu.Lock()
		_ = p.s.Close()
		p.mu.Unlock()
	}
	if x.nh != nil {
		x.nh.close()
	}
	if x.raw != nil {
		x.raw.close()
	}
}

// bind "binds" a port pair in socketless mode: two virtual sockets the
// port table will route to. A port a host socket held at start is
// refused (EADDRINUSE), so the allocator skips it as it would a bound one.
func (x *xdpPath) bind(addr netip.Addr, port int) (*udpSock, *udpSock, error) {
	if x.host[uint16(port)] || x.host[uint16(port+1)] {
		return nil, nil, fmt.Errorf("port %d held by a host socket: %w", port, syscall.EADDRINUSE)
	}
	rtp := &udpSock{fd: -1, local: netip.AddrPortFrom(addr, uint16(port)), xp: x}
	rtcp := &udpSock{fd: -1, local: netip.AddrPortFrom(addr, uint16(port+1)), xp: x}
	return rtp, rtcp, nil
}

func (x *xdpPath) add(s *sock) {
	x.mu.Lock()
	x.socks[s.udp.local] = s
	x.mu.Unlock()
}

func (x *xdpPath) remove(local netip.AddrPort) {
	x.mu.Lock()
	delete(x.socks, local)
	x.mu.Unlock()
}

func (x *xdpPath) lookup(local netip.AddrPort) *sock {
	x.mu.RLock()
	s := x.socks[local]
	x.mu.RUnlock()
	return s
}

// loop reads p's RX ring until the path closes: each pass takes a batch,
// hands each port's packets to handle, flushes the TX rings written, and
// gives the frames back.
func (x *xdpPath) loop(p *xskPort) {
	defer x.wg.Done()
	descs := make([]xsk.Desc, xskBatch)
	frames := make([]udpFrame, xskBatch)
	owners := make([]*sock, xskBatch)
	b := newXDPBatch(x)
	b.hint = p.queue
	for !x.closed.Load() {
		p.mu.Lock()
		n := p.s.Receive(descs)
		for i := range n {
			owners[i] = nil
			if err := parseUDPFrame(p.s.Frame(descs[i]), &frames[i]); err != nil {
				x.m.drop(dropFrame)
				continue
			}
			owners[i] = x.lookup(frames[i].dst)
			if owners[i] == nil {
				x.m.drop(dropNoPort)
			}
		}
		p.mu.Unlock()
		if n == 0 {
			x.flushAll(b) // what an earlier pass left queued
			if _, err := p.s.Wait(xskIdleWait); err != nil && !x.closed.Load() {
				x.r.log.Error().Err(err).Str("device", p.dev).Int("queue", p.queue).Msg("AF_XDP socket failed: its queue's userspace packets are lost")
				return
			}
			continue
		}
		x.m.rx.Add(float64(n))
		for i := 0; i < n; {
			s := owners[i]
			if s == nil {
				i++
				continue
			}
			b.reset()
			j := i
			for ; j < n && owners[j] == s; j++ {
				if x.spoofedFrame(p.ifindex, frames[j].src) {
					s.drops.Add(1)
					x.r.m.drop(dropSpoofed)
					continue
				}
				b.add(frames[j].payload, frames[j].src)
			}
			if b.count() > 0 {
				s.rx.Lock()
				x.r.handle(s, b)
				s.rx.Unlock()
			}
			i = j
		}
		x.flushAll(b)
		p.mu.Lock()
		p.s.Release(descs[:n])
		p.mu.Unlock()
	}
}

// flushAll publishes the TX rings b wrote to (once per pass).
func (x *xdpPath) flushAll(b *xdpBatch) {
	for _, p := range b.dirty {
		x.flushPort(p)
	}
	b.dirty = b.dirty[:0]
}

// flushPort publishes p's queued TX frames. In copy mode one kick sends a
// bounded batch (32 frames), so a long queue takes several.
func (x *xdpPath) flushPort(p *xskPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.queued/32 + 1 {
		if err := p.s.FlushTx(); err != nil {
			x.m.drop(dropTxError)
			break
		}
	}
	p.queued = 0
}

// txPort is the socket to transmit on for egress device ifindex: the
// receiving socket's when it is on that device, else one of the device's
// (by the receiving queue, to spread the load).
func (x *xdpPath) txPort(ifindex int, hint int) *xskPort {
	ps := x.byIf[ifindex]
	if len(ps) == 0 {
		return nil
	}
	return ps[hint%len(ps)]
}

// send writes one datagram from src to dst into a TX ring (or through the
// kernel) using scratch for a fallback's packet; hint picks among the
// egress device's sockets, dirty collects the ports written to. It
// reports whether the datagram left.
func (x *xdpPath) send(src netip.AddrPort, p []byte, dst netip.AddrPort, hint int, scratch []byte, dirty *[]*xskPort) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	nh := x.nh.lookup(src.Addr(), dst.Addr(), monoNow())
	why := nh.why
	if nh.ok {
		port := x.txPort(nh.ifindex, hint)
		switch {
		case port == nil:
			why = fallbackNoXSK
		case frameLen(dst.Addr(), len(p))-ethHeaderLen > nh.mtu:
			why = fallbackMTU
		default:
			if x.sendFrame(port, nh, src, p, dst) {
				if dirty != nil && !containsPort(*dirty, port) {
					*dirty = append(*dirty, port)
				}
				x.m.tx.Inc()
				return true
			}
			why = fallbackTxFull
		}
	}
	return x.sendKernel(src, p, dst, scratch, why)
}

func containsPort(ps []*xskPort, p *xskPort) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// sendFrame builds the frame in a free TX frame of port and queues it.
func (x *xdpPath) sendFrame(port *xskPort, nh nextHop, src netip.AddrPort, p []byte, dst netip.AddrPort) bool {
	port.mu.Lock()
	defer port.mu.Unlock()
	addr, buf, ok := port.s.NextTx()
	if !ok {
		return false
	}
	n := buildUDPFrame(buf, nh.srcMAC, nh.dstMAC, src, dst, p)
	if n == 0 {
		port.s.DropTx(addr)
		return false
	}
	port.s.SubmitTx(addr, n)
	port.queued++
	return true
}

// sendKernel sends the datagram as an IP packet through the kernel, which
// routes it, resolves the neighbour and fragments: counted by reason.
func (x *xdpPath) sendKernel(src netip.AddrPort, p []byte, dst netip.AddrPort, scratch []byte, why string) bool {
	x.m.fallback(why)
	n := buildUDPFrame(scratch, [6]byte{}, [6]byte{}, src, dst, p)
	if n == 0 {
		x.m.drop(dropTxError)
		return false
	}
	if err := x.raw.send(scratch[ethHeaderLen:n], dst.Addr()); err != nil {
		x.m.drop(dropTxError)
		return false
	}
	return true
}

// sendOne sends one datagram outside the packet loop (media playback) and
// flushes at once.
func (x *xdpPath) sendOne(src netip.AddrPort, p []byte, dst netip.AddrPort) error {
	if x.closed.Load() {
		return net.ErrClosed
	}
	scratch := make([]byte, frameLen(netip.IPv6Unspecified(), len(p)))
	var dirty []*xskPort
	if !x.send(src, p, dst, 0, scratch, &dirty) {
		return fmt.Errorf("%w: send to %v failed", ErrXSK, dst)
	}
	for _, port := range dirty {
		x.flushPort(port)
	}
	return nil
}

// xdpBatch is the packets of one relay port in a pass over an RX ring,
// as handle sees them (pktBatch).
type xdpBatch struct {
	x       *xdpPath
	pay     [xskBatch][]byte
	src     [xskBatch]netip.AddrPort
	n       int
	out     [xskBatch]xdpOut
	nout    int
	dirty   []*xskPort
	scratch []byte
	hint    int // the receiving queue: TX spreads over the egress device's sockets by it
}

type xdpOut struct {
	from *udpSock
	p    []byte
	dst  netip.AddrPort
}

func newXDPBatch(x *xdpPath) *xdpBatch {
	return &xdpBatch{x: x, scratch: make([]byte, xsk.DefaultFrameSize+ethHeaderLen+ipv6HeaderLen+udpHeaderLen)}
}

func (b *xdpBatch) reset() { b.n, b.nout = 0, 0 }

func (b *xdpBatch) add(p []byte, src netip.AddrPort) {
	b.pay[b.n], b.src[b.n] = p, src
	b.n++
}

func (b *xdpBatch) count() int                            { return b.n }
func (b *xdpBatch) packet(i int) ([]byte, netip.AddrPort) { return b.pay[i], b.src[i] }

func (b *xdpBatch) queue(out *udpSock, p []byte, dst netip.AddrPort) {
	if len(p) == 0 {
		return
	}
	b.out[b.nout] = xdpOut{out, p, dst}
	b.nout++
}

// flush writes the queued datagrams into TX rings; the rings are
// published once per pass (flushAll), after handle has persisted what the
// SRTP contexts need.
func (b *xdpBatch) flush() int {
	failed := 0
	for i := range b.nout {
		o := &b.out[i]
		if had, err := o.from.sendSock(o.p, o.dst); had {
			// toward a party on the relay's host: through its leg's
			// kernel socket (localparty.go)
			if err != nil {
				failed++
			}
		} else if !b.x.send(o.from.local, o.p, o.dst, b.hint, b.scratch, &b.dirty) {
			failed++
		}
		*o = xdpOut{}
	}
	b.nout = 0
	return failed
}
