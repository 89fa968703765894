// Package relay implements xtrunk's media relay: port allocation, call
// sessions, SDP rewriting, RTP latching with RTP Bleed protection, the
// userspace packet path (recvmmsg/sendmmsg), and the rtpengine-compatible NG
// command handlers. Plain RTP/RTCP of latched streams is forwarded by the XDP
// program in package bpf; this package decides what goes there.
package relay

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bpf"
)

// fastPath is what the relay needs of the XDP dataplane; nil in userspace
// mode.
type fastPath interface {
	SetSession(bpf.Key, bpf.Session) error
	DeleteSession(bpf.Key) error
	LegStats(bpf.Key) (bpf.LegStats, error)
	Quality(bpf.Key) (bpf.Quality, bool, error)
	LegFinal(bpf.Key) (bpf.LegStats, bpf.Quality, bool, error)
	SaveCall(uint64, []byte) error
	DeleteCall(uint64) error
	Calls() (map[uint64][]byte, error)
	Reasons() (bpf.Reasons, error)
}

// Relay is one running media relay.
type Relay struct {
	cfg    Config
	log    zerolog.Logger
	ifaces []*Interface
	fp     fastPath
	dp     *bpf.Dataplane
	ports  *portAlloc
	m      *metrics

	mu      sync.Mutex
	calls   map[string]*call
	nextNum uint64

	binder    *binder
	pollers   []*poller
	nextPoll  atomic.Uint32
	taps      sync.Map // netip.AddrPort -> recTap: ports being recorded
	plays     sync.Map // playKey -> *player: media being played (play.go)
	recReader *bpf.RecordReader
	reserved  *reservation // the port range in ip_local_reserved_ports (xdp)
	xp        *xdpPath     // the AF_XDP path (socketless)
	host      *hostAddrs   // the namespace's addresses (spoof.go)

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	finishing sync.WaitGroup // recordings being written
	closeOnce sync.Once
	closeErr  error
}

// Option configures a Relay.
type Option func(*Relay)

// WithLogger sets the relay's logger.
func WithLogger(l zerolog.Logger) Option { return func(r *Relay) { r.log = l } }

// New validates cfg, resolves interfaces and loads the dataplane: in xdp
// mode the program is attached to every interface's device (re-adopting
// pinned sessions); if that fails New says why and returns an error — it
// never falls back to userspace by itself.
func New(cfg Config, opts ...Option) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, log: zerolog.Nop(), calls: map[string]*call{}, nextNum: 1}
	for _, o := range opts {
		o(r)
	}
	for i := range cfg.Interfaces {
		ifc := cfg.Interfaces[i]
		dev, err := deviceFor(ifc.Addr)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", ifc, err)
		}
		ifc.Device = dev
		r.ifaces = append(r.ifaces, &ifc)
	}
	r.ports = newPortAlloc(cfg.PortMin, cfg.PortMax)
	b, err := newBinder()
	if err != nil {
		return nil, err
	}
	r.binder = b
	r.ports.bind = b.bind
	r.m = newMetrics(r)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	started := false
	defer func() {
		if !started { // New failed: nothing may keep running
			r.stopPollers()
			r.wg.Wait()
			b.close()
			r.host.close()
		}
	}()
	// socketless, the AF_XDP loops read what needs userspace; one poller
	// reads the legs of parties on the relay's own host (localparty.go)
	pollers := runtime.GOMAXPROCS(0)
	if cfg.Dataplane == DataplaneXDP && cfg.Socketless {
		pollers = 1
	}
	// in the relay's namespace: its addresses are what "local" means
	var herr error
	if r.host, herr = newHostAddrs(); herr != nil {
		r.log.Warn().Err(herr).Msg("cannot list the namespace's addresses; parties on this host are recognised by loopback and interface addresses only")
	}
	if err := r.startPollers(pollers); err != nil {
		return nil, err
	}

	if cfg.Dataplane == DataplaneXDP {
		if err := r.openXDP(); err != nil {
			return nil, fmt.Errorf("xdp dataplane: %w", err)
		}
	} else {
		r.log.Info().Msg("userspace dataplane: no BPF, every packet through sockets")
		r.m.setMode("", DataplaneUserspace)
	}
	r.wg.Add(1)
	go r.janitor()
	started = true
	return r, nil
}

// startPollers starts n socket pollers, one per CPU the runtime uses with
// sockets per call: enough to spread the userspace packet path over the
// CPUs, whatever the number of calls.
func (r *Relay) startPollers(n int) error {
	for range n {
		p, err := newPoller()
		if err != nil {
			return err
		}
		r.pollers = append(r.pollers, p)
		r.wg.Add(1)
		go r.poll(p)
	}
	return nil
}

func (r *Relay) stopPollers() {
	for _, p := range r.pollers {
		_ = p.close()
	}
}

// register hands s to a poller, round robin, or to the AF_XDP path's
// port table.
func (r *Relay) register(s *sock) error {
	if s.udp.xp != nil {
		s.udp.xp.add(s)
		return nil
	}
	p := r.pollers[int(r.nextPoll.Add(1))%len(r.pollers)]
	return p.add(s)
}

// Close stops the relay. In xdp mode the pins stay (media keeps flowing
// for a successor) unless RemoveOnExit is set. Closing twice is harmless.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.close() })
	return r.closeErr
}

// allCalls is a snapshot of the calls, to visit without holding r.mu
// (the lock order is r.mu before c.mu).
func (r *Relay) allCalls() []*call {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := make([]*call, 0, len(r.calls))
	for _, c := range r.calls {
		calls = append(calls, c)
	}
	return calls
}

func (r *Relay) close() error {
	r.cancel()
	calls := r.allCalls()
	for _, c := range calls {
		c.mu.Lock()
		if c.rec != nil {
			// a recording in progress is written, not lost
			_, _ = r.stopRecording(c)
		}
		r.closeSockets(c)
		c.mu.Unlock()
	}
	if r.recReader != nil {
		r.recReader.Close()
	}
	r.stopPollers()
	r.wg.Wait()
	if r.xp != nil {
		// after the pollers: a local party's packets go on through it
		r.xp.close()
	}
	r.finishing.Wait()
	r.binder.close()
	r.host.close()
	if r.dp != nil {
		if r.cfg.RemoveOnExit {
			r.unreservePorts()
			return r.dp.Remove()
		}
		if r.reserved != nil {
			r.reserved.close()
		}
		return r.dp.Close()
	}
	return nil
}

// Metrics exposes the relay's Prometheus registry.
func (r *Relay) Metrics() *metrics { return r.m }

// Reasons reads the XDP exit counters (zero in userspace mode).
func (r *Relay) Reasons() (bpf.Reasons, error) {
	if r.fp == nil {
		return bpf.Reasons{}, nil
	}
	return r.fp.Reasons()
}

func (r *Relay) iface(name string, family netip.Addr) (*Interface, error) {
	var byName []*Interface
	for _, ifc := range r.ifaces {
		if name == "" || ifc.Name == name {
			byName = append(byName, ifc)
		}
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrBadInterface, name)
	}
	if family.IsValid() {
		for _, ifc := range byName {
			if ifc.Addr.Is4() == family.Is4() {
				return ifc, nil
			}
		}
	}
	return byName[0], nil
}

// monotonic clock in ns, comparable with bpf_ktime_get_ns().
var (
	monoBase   = time.Now()
	monoBaseNs = func() int64 { var ts unix.Timespec; _ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); return ts.Nano() }()
)

func monoNow() int64 { return monoBaseNs + int64(time.Since(monoBase)) }

// monoToTime converts a monotonic ns stamp to wall time.
func monoToTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(monoNow() - ns))
}

// installStream recomputes and installs the routes of both endpoints of st,
// in the sockets and in the fast path. Caller holds c.mu.
func (r *Relay) installStream(c *call, st *stream) {
	for _, e := range st.ep {
		if e == nil {
			continue
		}
		if e.other() == nil {
			e.rtp.route.Store(&route{drop: true})
			e.rtcp.route.Store(&route{drop: true})
			r.setFast(e.rtp, &route{drop: true})
			r.setFast(e.rtcp, &route{drop: true})
			continue
		}
		rtp, rtcp := e.routes()
		r.setTap(e, rtp.rec)
		e.rtp.route.Store(rtp)
		e.rtcp.route.Store(rtcp)
		r.setFast(e.rtp, rtp)
		r.setFast(e.rtcp, rtcp)
	}
}

func (r *Relay) setFast(s *sock, rt *route) {
	if r.fp == nil {
		return
	}
	entry := fastPathEntry(rt)
	// a party on the host: what claims its address at a device is forged
	entry.LocalSource = entry.Expect.IsValid() && r.isLocal(entry.Expect.Addr())
	if s.fastSet && s.fast == entry {
		// an answer or a latch reinstalls every route of the stream:
		// the entries that did not change need no map write (nor a new
		// generation, which would only drop cached next hops)
		return
	}
	s.fastSet = false
	if err := r.fp.SetSession(s.udp.local, entry); err != nil {
		r.log.Error().Err(err).Stringer("local", s.udp.local).Msg("fast path update failed; packets go through userspace")
		r.m.fastPathError()
		return
	}
	s.fast, s.fastSet = entry, true
}

func (r *Relay) closeSockets(c *call) {
	for _, st := range c.streams {
		for _, e := range st.ep {
			if e == nil {
				continue
			}
			for _, s := range []*sock{e.rtp, e.rtcp} {
				if s == nil {
					continue
				}
				s.udp.Close()
			}
		}
	}
}

// release frees everything a call holds: fast-path entries, sockets,
// ports and its persisted record. Caller holds c.mu.
func (r *Relay) release(c *call) {
	if !c.deleted {
		r.countMedia(c) // before the fast-path entries go
	}
	if c.rec != nil {
		_, _ = r.stopRecording(c)
	}
	if !c.deleted {
		r.logEnd(c)
	}
	c.deleted = true
	for _, st := range c.streams {
		for _, e := range st.ep {
			if e != nil {
				r.releaseEndpoint(e)
			}
		}
	}
	if r.fp != nil {
		if err := r.fp.DeleteCall(c.num); err != nil {
			r.log.Warn().Err(err).Str("call_id", c.id).Msg("delete call record")
		}
	}
}

// releaseEndpoint frees one endpoint's fast-path entries, sockets and
// ports.
func (r *Relay) releaseEndpoint(e *endpoint) {
	r.unbindLocal(e)
	r.taps.Delete(e.rtp.udp.local)
	for _, s := range []*sock{e.rtp, e.rtcp} {
		if r.fp != nil {
			if err := r.fp.DeleteSession(s.udp.local); err != nil {
				r.log.Warn().Err(err).Stringer("local", s.udp.local).Msg("fast path delete")
			}
		}
		s.udp.Close()
	}
	r.ports.release(e.local)
}

// newEndpoint allocates ports on ifc and starts their packet loops.
func (r *Relay) newEndpoint(c *call, st *stream, sideIdx int, ifc *Interface) (*endpoint, error) {
	rtpU, rtcpU, err := r.ports.alloc(ifc.Addr)
	if err != nil {
		return nil, err
	}
	return r.startEndpoint(c, st, sideIdx, ifc, rtpU, rtcpU)
}

// startEndpoint makes the endpoint of a bound pair and hands its sockets
// to the pollers. On error the pair is closed and its ports released.
func (r *Relay) startEndpoint(c *call, st *stream, sideIdx int, ifc *Interface, rtpU, rtcpU *udpSock) (*endpoint, error) {
	e := &endpoint{st: st, side: sideIdx, c: c, iface: ifc, local: rtpU.local, isRTP: true}
	e.rtp = &sock{udp: rtpU, ep: e}
	e.rtcp = &sock{udp: rtcpU, ep: e, isRTCP: true}
	drop := &route{drop: true}
	e.rtp.route.Store(drop)
	e.rtcp.route.Store(drop)
	for _, s := range []*sock{e.rtp, e.rtcp} {
		if err := r.register(s); err != nil {
			rtpU.Close()
			rtcpU.Close()
			r.ports.release(e.local)
			return nil, err
		}
	}
	return e, nil
}

// janitorPeriod is how often the janitor sweeps the calls.
const janitorPeriod = time.Second

// janitor times out and deletes calls (see sweep).
func (r *Relay) janitor() {
	defer r.wg.Done()
	t := time.NewTicker(janitorPeriod)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.sweep(time.Now())
	}
}

// sweep handles the calls' timeouts at time now. A call without media or
// signalling for cfg.Timeout is marked timed out — query and list report
// it, for signalling to end the call — and, unless media comes back, it
// is deleted cfg.TimeoutLinger later (at the earliest on the next sweep).
// A call older than cfg.FinalTimeout, when set, is deleted whatever it
// does: by default there is no such limit, so long calls are not cut.
func (r *Relay) sweep(now time.Time) {
	calls := r.allCalls()
	for _, c := range calls {
		c.mu.Lock()
		if c.deleted {
			c.mu.Unlock()
			continue
		}
		last := c.lastSignal
		if la := monoToTime(r.countMedia(c)); la.After(last) {
			last = la
		}
		idle := now.Sub(last)
		why := ""
		switch {
		case r.cfg.FinalTimeout > 0 && now.Sub(c.created) > r.cfg.FinalTimeout:
			why = "final_timeout"
		case c.timedOut && idle <= r.cfg.Timeout:
			c.timedOut = false // media came back
			r.log.Info().Str("call_id", c.id).Msg("media resumed: call no longer timed out")
		case c.timedOut && !now.Before(c.timedOutAt.Add(r.cfg.TimeoutLinger)) && now.After(c.timedOutAt):
			why = "media_timeout"
		case !c.timedOut && idle > r.cfg.Timeout:
			c.timedOut, c.timedOutAt = true, now
			r.m.timedOut()
			r.log.Info().Str("call_id", c.id).Dur("idle", idle).Dur("deleted_in", max(r.cfg.TimeoutLinger, janitorPeriod)).Msg("media timeout")
		}
		if why != "" {
			c.endReason = why
			r.freezeStats(c)
			r.legQualities(c)
			r.release(c)
		}
		c.mu.Unlock()
		if why != "" {
			r.mu.Lock()
			if r.calls[c.id] == c {
				delete(r.calls, c.id)
			}
			r.m.calls(len(r.calls))
			r.mu.Unlock()
			r.m.timeoutDelete(why) // release logged the call's end
		}
	}
}
