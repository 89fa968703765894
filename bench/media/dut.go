package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtrunk/xtrunk/bench/internal/harness"
	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/ng"
)

// dut is the relay under test in one mode.
type dut interface {
	// setup sets up calls [from, to) (keeping the earlier ones) and
	// returns, for each, where the caller's and the callee's generator
	// send: a[i-from], b[i-from]. done is called as calls complete.
	setup(ctx context.Context, from, to int, done func(n int)) (a, b []genCall, err error)
	// teardown deletes every call set up.
	teardown(ctx context.Context) error
	// pids are the relay's processes, for CPU accounting (none for ceiling).
	pids() []int
	// reasons reads the XDP program's exit counters by reason, or nil.
	reasons() (map[string]uint64, error)
	// stop ends the relay and releases what it holds.
	stop() error
}

// Lab-side constants of the port plan. Call i uses port portBase+2i on the
// caller (and on the callee): the sinks map ports back to calls. The relays
// get relayPortMin..relayPortMax on each of their two addresses; a call
// takes one RTP/RTCP pair on each, so the relay range, not the 2×2 ports
// per call, is what limits a step (see maxCalls).
const (
	portBase     = 10000
	relayPortMin = 16000
	relayPortMax = 65535
	ngAddr       = "127.0.0.1:2223"
	metricsAddr  = "127.0.0.1:9101"
	// maxCalls is the most calls a step can have: the relays' pairs per
	// address ((65535-16000+1)/2 = 24768) less a margin for ports that
	// the relay namespace's own sockets (NG, metrics) happen to hold.
	maxCalls = 24000
)

// ngRelay is a relay driven over NG: xtrunk (xdp or userspace) or rtpengine.
type ngRelay struct {
	ns      *testbed.NS
	proc    *testbed.Process
	client  *ng.Client
	mode    string
	srtp    bool   // --srtp: the caller offers SDES-SRTP, the callee gets plain RTP
	metrics bool   // scrape xtrunk's /metrics for XDP reasons
	pinRoot string // bpffs mounted for the xdp relay's pins; "" if none
	ncalls  atomic.Int64
}

// startXtrunk starts `xtrunk relay --dataplane mode` in the lab's relay
// namespace. In xdp mode its pins go to a bpffs mounted under /run for the
// run (ip netns exec remounts /sys, so /sys/fs/bpf would not be shared).
func startXtrunk(l *lab, bin, mode, workDir string) (r *ngRelay, err error) {
	r = &ngRelay{ns: l.relay, mode: mode, metrics: mode == ModeXDP, srtp: l.srtpA != nil}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.stop())
			r = nil
		}
	}()
	args := []string{"relay",
		"--interface", "customer/" + relayCallerIP.String(),
		"--interface", "carrier/" + relayCalleeIP.String(),
		"--listen-ng", ngAddr, "--ng-allow", "198.18.0.0/15", "--ng-allow", "127.0.0.1/32", // the lab's clients and the benchmark on loopback
		"--port-min", strconv.Itoa(relayPortMin), "--port-max", strconv.Itoa(relayPortMax),
		"--timeout", "1h",
		"--metrics", metricsAddr,
		"--log-level", "warn",
		"--dataplane",
	}
	switch mode {
	case ModeXDP:
		// The xdp relay (socketless by default) reserves its whole range
		// (16000-65535) in ip_local_reserved_ports, which covers the
		// kernel's ephemeral range (32768-60999): the benchmark's NG
		// client and /metrics scrapes would get EAGAIN. Below the relay's
		// range, as an operator would configure such a host.
		if err := l.relay.SetSysctl("net.ipv4.ip_local_port_range", "1024 15999"); err != nil {
			return r, fmt.Errorf("media: %w", err)
		}
		if r.pinRoot, err = testbed.MountBPFFS("xtrunk-bench-"); err != nil {
			return r, fmt.Errorf("media: %w", err)
		}
		args = append(args, "xdp", "--xdp-mode", "native", "--pin-path", r.pinRoot+"/relay", "--remove-on-exit")
	case ModeUserspace:
		if err := l.attachPass(); err != nil {
			return r, err
		}
		args = append(args, "userspace")
	default:
		return r, fmt.Errorf("%w: xtrunk mode %q", ErrConfig, mode)
	}
	cmd := l.relay.Command(context.Background(), bin, args...)
	cmd.Dir = workDir // no stray xtrunk.yaml
	cmd.Env = harness.CleanEnv()
	if r.proc, err = l.relay.StartCmd(cmd); err != nil {
		return r, err
	}
	return r, r.waitNG()
}

// startRTPEngine starts Debian's rtpengine in the relay namespace:
// userspace forwarding only (--table=-1: no kernel module), two worker
// threads, the same interfaces and port range as xtrunk.
func startRTPEngine(l *lab, bin, workDir string) (r *ngRelay, err error) {
	r = &ngRelay{ns: l.relay, mode: ModeRTPEngine, srtp: l.srtpA != nil}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.stop())
			r = nil
		}
	}()
	if err := l.attachPass(); err != nil {
		return r, err
	}
	cmd := l.relay.Command(context.Background(), bin,
		"--config-file=none",
		"--foreground", "--log-stderr", "--log-level=4",
		"--table=-1",
		"--interface=customer/"+relayCallerIP.String(),
		"--interface=carrier/"+relayCalleeIP.String(),
		"--listen-ng="+ngAddr,
		"--port-min="+strconv.Itoa(relayPortMin), "--port-max="+strconv.Itoa(relayPortMax),
		"--num-threads=2",
		"--timeout=3600", "--silent-timeout=3600", "--final-timeout=0", "--delete-delay=0",
	)
	cmd.Dir = workDir
	cmd.Env = harness.CleanEnv()
	if r.proc, err = l.relay.StartCmd(cmd); err != nil {
		return r, err
	}
	return r, r.waitNG()
}

// relayStartTimeout bounds the wait for a relay's first NG pong.
const relayStartTimeout = 20 * time.Second

func (r *ngRelay) waitNG() error {
	var err error
	r.client, err = harness.DialNG(r.ns, ngAddr, r.proc, relayStartTimeout, ng.WithTimeout(10*time.Second), ng.WithRetransmit(time.Second))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRelayStart, r.mode, err)
	}
	return nil
}

// ngWorkers is how many NG transactions are in flight at once.
const ngWorkers = 8

func callID(i int) string { return "xtrunk-bench-" + strconv.Itoa(i) }

func benchSDP(a netip.AddrPort) string {
	return fmt.Sprintf("v=0\r\no=- %[2]d 1 IN IP4 %[1]s\r\ns=xtrunk bench\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n", a.Addr(), a.Port())
}

func (r *ngRelay) setup(ctx context.Context, from, to int, done func(int)) (a, b []genCall, err error) {
	a, b = make([]genCall, to-from), make([]genCall, to-from)
	err = parallel(ctx, from, to, func(ctx context.Context, i int) error {
		port := uint16(portBase + 2*i)
		id, ft, tt := callID(i), "caller-"+strconv.Itoa(i), "callee-"+strconv.Itoa(i)
		req := ng.Dict{"command": "offer", "call-id": id, "from-tag": ft,
			"sdp": benchSDP(netip.AddrPortFrom(callerIP, port)), "direction": []any{"customer", "carrier"}}
		var (
			key []byte
			err error
		)
		if r.srtp {
			// SDES-SRTP from the caller, plain RTP toward the callee.
			if key, err = newSRTPKey(); err != nil {
				return err
			}
			req["sdp"], req["transport-protocol"] = savpSDP(netip.AddrPortFrom(callerIP, port), key), "RTP/AVP"
		}
		offer, err := r.client.Do(ctx, req)
		if err != nil {
			return fmt.Errorf("%w: %s offer %s: %w", ErrSetup, r.mode, id, err)
		}
		r.ncalls.Add(1)
		answer, err := r.client.Do(ctx, ng.Dict{"command": "answer", "call-id": id, "from-tag": ft, "to-tag": tt,
			"sdp": benchSDP(netip.AddrPortFrom(calleeIP, port))})
		if err != nil {
			return fmt.Errorf("%w: %s answer %s: %w", ErrSetup, r.mode, id, err)
		}
		toCallee, err := sdpMedia(offer.Str("sdp"))
		if err != nil {
			return fmt.Errorf("%w: %s offer %s: %w", ErrSetup, r.mode, id, err)
		}
		toCaller, err := sdpMedia(answer.Str("sdp"))
		if err != nil {
			return fmt.Errorf("%w: %s answer %s: %w", ErrSetup, r.mode, id, err)
		}
		a[i-from] = genCall{SrcPort: port, Dst: toCaller}
		if r.srtp {
			if err := plainOffer(offer.Str("sdp")); err != nil {
				return fmt.Errorf("%s offer %s: %w", r.mode, id, err)
			}
			relayKey, err := answerKey(answer.Str("sdp"))
			if err != nil {
				return fmt.Errorf("%s answer %s: %w", r.mode, id, err)
			}
			a[i-from].Key, a[i-from].RelayKey = key, relayKey
		}
		b[i-from] = genCall{SrcPort: port, Dst: toCallee}
		return nil
	}, done)
	return a, b, err
}

func (r *ngRelay) teardown(ctx context.Context) error {
	n := int(r.ncalls.Load())
	if n == 0 || r.client == nil {
		return nil
	}
	err := parallel(ctx, 0, n, func(ctx context.Context, i int) error {
		_, err := r.client.Do(ctx, ng.Dict{"command": "delete", "call-id": callID(i)})
		var re *ng.ReplyError
		if err != nil && !errors.As(err, &re) { // a call a failed step never set up is no error
			return fmt.Errorf("%s delete %s: %w", r.mode, callID(i), err)
		}
		return nil
	}, nil)
	r.ncalls.Store(0)
	return err
}

func (r *ngRelay) pids() []int {
	if r.proc == nil {
		return nil
	}
	return []int{r.proc.PID()}
}

func (r *ngRelay) reasons() (map[string]uint64, error) {
	if !r.metrics {
		return nil, nil
	}
	return scrapeXDPReasons(r.ns)
}

// stop ends the relay with SIGTERM (xtrunk then detaches XDP and removes
// its pins: --remove-on-exit), and unmounts the bpffs.
func (r *ngRelay) stop() error {
	var errs []error
	if r.client != nil {
		r.client.Close()
	}
	if r.proc != nil {
		if err := r.proc.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s relay: %w", r.mode, err))
		}
	}
	if r.pinRoot != "" {
		if err := testbed.UnmountBPFFS(r.pinRoot); err != nil {
			errs = append(errs, fmt.Errorf("media: %w", err))
		}
		r.pinRoot = ""
	}
	return errors.Join(errs...)
}

// parallel runs fn(i) for i in [from, to) on ngWorkers goroutines, stops
// at the first error and returns it.
func parallel(ctx context.Context, from, to int, fn func(context.Context, int) error, done func(int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		ndone    atomic.Int64
	)
	for w := 0; w < ngWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				n := ndone.Add(1)
				if done != nil && n%64 == 0 {
					done(int(n))
				}
			}
		}()
	}
feed:
	for i := from; i < to; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if done != nil {
		done(int(ndone.Load()))
	}
	return ctx.Err()
}

// sdpMedia returns the audio address of an SDP body (session- or
// media-level c= line, first m=audio port).
func sdpMedia(s string) (netip.AddrPort, error) {
	var addr netip.Addr
	var port int
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if v, ok := strings.CutPrefix(line, "c=IN IP4 "); ok {
			if a, err := netip.ParseAddr(strings.Fields(v)[0]); err == nil {
				addr = a
			}
		}
		if v, ok := strings.CutPrefix(line, "m=audio "); ok && port == 0 {
			port, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	if !addr.IsValid() || port <= 0 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("no IPv4 audio address in the SDP:\n%s", s)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// scrapeXDPReasons reads xtrunk_relay_xdp_packets_total from the relay's
// /metrics, summed per reason. The connection is made from the relay's
// namespace (the endpoint listens on its loopback).
func scrapeXDPReasons(ns *testbed.NS) (map[string]uint64, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", metricsAddr, 2*time.Second)
		return err
	}); err != nil {
		return nil, fmt.Errorf("media: metrics: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n"); err != nil {
		return nil, fmt.Errorf("media: metrics: %w", err)
	}
	body, err := io.ReadAll(c)
	if err != nil {
		return nil, fmt.Errorf("media: metrics: %w", err)
	}
	return parseXDPReasons(string(body)), nil
}

func parseXDPReasons(body string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, "xtrunk_relay_xdp_packets_total{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		var reason string
		for _, kv := range strings.Split(labels, ",") {
			if v, ok := strings.CutPrefix(kv, `reason="`); ok {
				reason = strings.TrimSuffix(v, `"`)
			}
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || reason == "" {
			continue
		}
		out[reason] += uint64(f)
	}
	return out
}
