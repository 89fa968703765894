package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/internal/harness"
	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/ng"
)

// Lab addresses: the testbed triangle's.
var (
	pbxIP         = testbed.TriangleCallerIP      // 198.18.1.2, SIPp UAC
	edgeSIPIP     = testbed.TriangleRelayCallerIP // 198.18.1.1, the edge's SIP and the relay's customer side
	relayCarrier  = testbed.TriangleRelayCalleeIP // 198.18.2.1, the relay's carrier side
	carrierIP     = testbed.TriangleCalleeIP      // 198.18.2.2, SIPp UAS
	pbxNet        = netip.PrefixFrom(pbxIP, 24)
	edgeSIP       = netip.AddrPortFrom(edgeSIPIP, 5060)
	carrierSIP    = netip.AddrPortFrom(carrierIP, 5060)
	relayCustomer = edgeSIPIP
)

// The relays' NG address (the edge namespace's loopback) and port range.
// The range stays below Linux's ephemeral ports (32768-60999): xtrunk
// sip sends its carrier-leg INVITEs from an ephemeral port and takes the
// responses there, and an XDP relay drops datagrams to a port in its range
// that holds no session, so overlapping ranges lose those responses.
// Each relay takes an RTP and an RTCP port per leg on each interface, so
// the range holds relayMaxCalls calls in progress (Config.defaults
// refuses a run that needs more).
const (
	ngAddr        = "127.0.0.1:2223"
	relayMetrics  = "127.0.0.1:9101" // xtrunk relay's /metrics
	relayPortMin  = 10000
	relayPortMax  = 32767
	relayMaxCalls = (relayPortMax - relayPortMin + 1) / 2
)

// startTimeout bounds the wait for an edge process to answer.
const startTimeout = 20 * time.Second

// stopGrace is how long an edge process gets to exit after SIGTERM before
// SIGKILL. xtrunk sip drains for sipDrain, then hangs up the calls still
// up — after an overloaded step there are hundreds, their PBX (SIPp) gone:
// each BYE waits up to 5 s for an answer that never comes — and writes
// their CDRs; 1,244 such calls took 6 s on the 2-vCPU lab.
const stopGrace = 30 * time.Second

// sipDrain is xtrunk sip's --drain-timeout here: the load is over when
// the lab stops, and the calls left are ones SIPp gave up on, which
// never end by themselves.
const sipDrain = "2s"

// stopProcess sends SIGTERM to p's process group (one the lab started),
// waits up to stopGrace, then kills the group.
func stopProcess(p *testbed.Process, what string) error {
	select {
	case <-p.Done():
		return nil // already gone; alive() reports an unexpected exit
	default:
	}
	if err := unix.Kill(-p.PID(), unix.SIGTERM); err != nil && err != unix.ESRCH {
		return fmt.Errorf("sip: SIGTERM %s: %w", what, err)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.Done():
		return nil
	case <-t.C:
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("sip: kill %s: %w", what, err)
	}
	return fmt.Errorf("%s %w", what, errKilled)
}

// edge is the system under test in one target's lab.
type edge interface {
	// sipGroups and mediaGroups are the process groups of the signalling
	// and the media side, for CPU accounting.
	sipGroups() []int
	mediaGroups() []int
	// sessions is how many calls the relay holds.
	sessions(ctx context.Context) (int, error)
	// media is the relay.
	media() *relayProc
	// output is the edge processes' output (the last limit bytes of
	// each), for diagnostics.
	output(limit int) string
	// stop ends the edge processes and releases what they hold.
	stop() error
}

// relayProc is a relay driven over NG: xtrunk's or rtpengine.
type relayProc struct {
	ns      *testbed.NS
	proc    *testbed.Process
	client  *ng.Client
	name    string
	pinRoot string // bpffs mounted for xtrunk's XDP pins; "" if none
	xtrunk  bool   // xtrunk relay: forwarded() reads its /metrics
}

func (r *relayProc) waitNG() error {
	var err error
	r.client, err = harness.DialNG(r.ns, ngAddr, r.proc, startTimeout, ng.WithTimeout(5*time.Second), ng.WithRetransmit(time.Second))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrEdgeStart, r.name, err)
	}
	return nil
}

// sessions lists the relay's calls over NG.
func (r *relayProc) sessions(ctx context.Context) (int, error) {
	rep, err := r.client.Do(ctx, ng.Dict{"command": "list", "limit": int64(1 << 20)})
	if err != nil {
		return 0, fmt.Errorf("%s list: %w", r.name, err)
	}
	calls, _ := rep["calls"].([]any)
	return len(calls), nil
}

// forwarded is how many packets xtrunk's relay has forwarded since it
// started: its XDP program's (verdict forward) and its userspace path's,
// from its /metrics (read from the edge namespace, where it listens on
// the loopback). -1, -1 for rtpengine.
func (r *relayProc) forwarded() (xdp, user int64, err error) {
	if !r.xtrunk {
		return -1, -1, nil
	}
	var c net.Conn
	if err := r.ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", relayMetrics, 2*time.Second)
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("sip: relay metrics: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n"); err != nil {
		return 0, 0, fmt.Errorf("sip: relay metrics: %w", err)
	}
	body, err := io.ReadAll(c)
	if err != nil {
		return 0, 0, fmt.Errorf("sip: relay metrics: %w", err)
	}
	xdp, user = parseForwarded(string(body))
	return xdp, user, nil
}

// parseForwarded sums xtrunk_relay_xdp_packets_total{verdict="forward"}
// and reads xtrunk_relay_userspace_packets_total from a /metrics body.
func parseForwarded(body string) (xdp, user int64) {
	for _, line := range strings.Split(body, "\n") {
		name, rest, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "xtrunk_relay_userspace_packets_total":
			user += int64(v)
		case strings.HasPrefix(name, "xtrunk_relay_xdp_packets_total{") && strings.Contains(name, `verdict="forward"`):
			xdp += int64(v)
		}
	}
	return xdp, user
}

func (r *relayProc) stop() error {
	var errs []error
	if r.client != nil {
		r.client.Close()
	}
	if r.proc != nil {
		errs = append(errs, stopProcess(r.proc, r.name))
	}
	if r.pinRoot != "" {
		if err := testbed.UnmountBPFFS(r.pinRoot); err != nil {
			errs = append(errs, fmt.Errorf("sip: %w", err))
		}
		r.pinRoot = ""
	}
	return errors.Join(errs...)
}

// xtrunkEdge is `xtrunk relay` and `xtrunk sip`.
type xtrunkEdge struct {
	relay *relayProc
	sip   *testbed.Process
}

// startXtrunk starts the relay (cfg.Dataplane) and the B2BUA on the store
// at dsn in the lab's edge namespace.
func startXtrunk(l *lab, cfg *Config, dir, dsn string) (e *xtrunkEdge, err error) {
	e = &xtrunkEdge{relay: &relayProc{ns: l.edge, name: "xtrunk relay"}}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.stop())
			e = nil
		}
	}()
	conf, err := emptyConfig(dir)
	if err != nil {
		return e, err
	}
	if err := startXtrunkRelay(l, cfg, dir, e.relay); err != nil {
		return e, err
	}
	cmd := l.edge.Command(context.Background(), cfg.XtrunkBin, "sip", "--config", conf,
		"--listen-udp", edgeSIP.String(),
		"--domain", Domain,
		"--relay-ng", ngAddr, "--relay-customer-iface", "customer", "--relay-carrier-iface", "carrier",
		"--db", dsn,
		"--carrier", "sip:"+carrierSIP.String(),
		"--carrier-probe-interval", "0", // the SIPp carrier answers calls, not OPTIONS probes
		"--default-cps", "0", "--default-concurrency", "0",
		"--drain-timeout", sipDrain,
		"--log-level", cfg.LogLevel)
	cmd.Dir, cmd.Env = dir, harness.CleanEnv()
	if e.sip, err = l.edge.StartCmd(cmd); err != nil {
		return e, err
	}
	if err := waitSIP(l.pbx, edgeSIP, e.sip); err != nil {
		return e, err
	}
	return e, nil
}

// emptyConfig writes an empty xtrunk config file into dir: flags only,
// never a stray ./xtrunk.yaml.
func emptyConfig(dir string) (string, error) {
	conf := filepath.Join(dir, "xtrunk.yaml")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return "", fmt.Errorf("sip: %w", err)
	}
	return conf, nil
}

// startXtrunkRelay starts `xtrunk relay` (cfg.Dataplane) in the lab's edge
// namespace as rp, NG on ngAddr, metrics on relayMetrics; rp holds what
// was started even when it fails (rp.stop releases it).
func startXtrunkRelay(l *lab, cfg *Config, dir string, rp *relayProc) (err error) {
	conf, err := emptyConfig(dir)
	if err != nil {
		return err
	}
	args := []string{"relay", "--config", conf,
		"--interface", "customer/" + relayCustomer.String(),
		"--interface", "carrier/" + relayCarrier.String(),
		"--listen-ng", ngAddr, "--ng-allow", "198.18.0.0/15", "--ng-allow", "127.0.0.1/32", // the lab's clients and the benchmark on loopback
		"--port-min", strconv.Itoa(relayPortMin), "--port-max", strconv.Itoa(relayPortMax),
		"--metrics", relayMetrics,
		"--log-level", cfg.LogLevel,
		"--dataplane", cfg.Dataplane,
	}
	if cfg.Dataplane == DataplaneXDP {
		// ip netns exec remounts /sys: pins go to a bpffs of our own.
		if rp.pinRoot, err = testbed.MountBPFFS("xtrunk-bench-sip-"); err != nil {
			return fmt.Errorf("sip: %w", err)
		}
		args = append(args, "--xdp-mode", "native", "--pin-path", rp.pinRoot+"/relay", "--remove-on-exit")
	}
	cmd := l.edge.Command(context.Background(), cfg.XtrunkBin, args...)
	cmd.Dir, cmd.Env = dir, harness.CleanEnv()
	if rp.proc, err = l.edge.StartCmd(cmd); err != nil {
		return err
	}
	rp.xtrunk = true
	return rp.waitNG()
}

func (e *xtrunkEdge) sipGroups() []int   { return []int{e.sip.PID()} }
func (e *xtrunkEdge) mediaGroups() []int { return []int{e.relay.proc.PID()} }

func (e *xtrunkEdge) sessions(ctx context.Context) (int, error) { return e.relay.sessions(ctx) }
func (e *xtrunkEdge) media() *relayProc                         { return e.relay }

func (e *xtrunkEdge) output(limit int) string {
	var b strings.Builder
	if e.sip != nil {
		fmt.Fprintf(&b, "xtrunk sip:\n%s\n", harness.Tail(e.sip.Output(), limit))
	}
	if e.relay.proc != nil {
		fmt.Fprintf(&b, "xtrunk relay:\n%s\n", harness.Tail(e.relay.proc.Output(), limit))
	}
	return b.String()
}

// stop ends the B2BUA first (it deletes what calls are left on the
// relay), then the relay.
func (e *xtrunkEdge) stop() error {
	var errs []error
	if e.sip != nil {
		errs = append(errs, stopProcess(e.sip, "xtrunk sip"))
	}
	return errors.Join(append(errs, e.relay.stop())...)
}

// waitSIP waits until something answers an OPTIONS sent from ns to addr
// (any response will do), or proc exits.
func waitSIP(ns *testbed.NS, addr netip.AddrPort, proc *testbed.Process) error {
	c, err := ns.DialUDP(addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	la := c.LocalAddr().(*net.UDPAddr)
	deadline := time.Now().Add(startTimeout)
	buf := make([]byte, 4096)
	for i := 0; ; i++ {
		req := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-xtb-probe-%d\r\n"+
			"Max-Forwards: 70\r\n"+
			"From: <sip:probe@%s>;tag=probe%d\r\n"+
			"To: <sip:%s>\r\n"+
			"Call-ID: xtb-probe-%d@%s\r\n"+
			"CSeq: 1 OPTIONS\r\n"+
			"Content-Length: 0\r\n\r\n",
			TrunkHost, la, i, la.IP, i, TrunkHost, i, la.IP)
		if _, err := c.Write([]byte(req)); err == nil {
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := c.Read(buf); err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
				return nil
			}
		}
		select {
		case <-proc.Done():
			return fmt.Errorf("%w: %s exited: %v\n%s", ErrEdgeStart, proc.Cmd.Args, proc.Wait(), harness.Tail(proc.Output(), 3000))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: nothing answers SIP at %s after %v\n%s", ErrEdgeStart, addr, startTimeout, harness.Tail(proc.Output(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
