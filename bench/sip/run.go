package sip

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/internal/cpu"
	"github.com/xtrunk/xtrunk/bench/internal/harness"
	"github.com/xtrunk/xtrunk/bench/testbed"
)

// fdWant is the descriptor limit the run asks for: the relays hold four
// sockets per call (RTP and RTCP on each side) and a step can have a few
// thousand calls up at once when setups fall behind.
const fdWant = 1 << 16

// firstPBXPort is the SIPp UAC's port in the first step; step i uses
// firstPBXPort+i.
const firstPBXPort = 5061

// lab is the triangle one target runs in.
type lab struct {
	tri                *testbed.Triangle
	pbx, edge, carrier *testbed.NS
}

func newLab() (*lab, error) {
	tri, err := testbed.NewTriangleLab(testbed.WithoutIPv6(), testbed.WithStaticNeighbors())
	if err != nil {
		return nil, err
	}
	l := &lab{tri: tri, pbx: tri.Caller, edge: tri.Relay, carrier: tri.Callee}
	labPrefixes.Lock()
	labPrefixes.p = append(labPrefixes.p, tri.Lab.Prefix)
	labPrefixes.Unlock()
	// SIPp asks for sippBuffer-sized socket buffers; let the load
	// generators have them (net.core.rmem_max/wmem_max are per namespace).
	for _, ns := range []*testbed.NS{l.pbx, l.carrier} {
		for _, k := range []string{"net.core.rmem_max", "net.core.wmem_max"} {
			_ = ns.SetSysctl(k, fmt.Sprint(sippBuffer))
		}
	}
	return l, nil
}

func (l *lab) close() error { return l.tri.Lab.Close() }

// labPrefixes are the namespace prefixes of the labs this process built
// (tests check that none is left).
var labPrefixes struct {
	sync.Mutex
	p []string
}

// Run runs the benchmark. It needs root. Every target gets a lab of its
// own, torn down (namespaces, processes, bpffs) before the next starts,
// also when ctx is cancelled or a target fails; a failed target is
// recorded in its TargetResult and the run goes on. Run returns ctx's
// error if it was cancelled, with the results so far.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := testbed.Privileged(); err != nil {
		return nil, err
	}
	bins := []string{cfg.SIPpBin}
	if slices.ContainsFunc(cfg.Targets, usesKamailio) {
		bins = append(bins, cfg.KamailioBin)
	}
	if slices.Contains(cfg.Targets, TargetKamailio) {
		bins = append(bins, cfg.RTPEngineBin)
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%w: %w (make deps installs sip-tester, kamailio, rtpengine-daemon)", ErrConfig, err)
		}
	}
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "xtrunk-bench-sip-")
		if err != nil {
			return nil, fmt.Errorf("sip: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.WorkDir = dir
	} else if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	if err := writeScenarios(cfg.WorkDir, relayCustomer, relayCarrier, cfg.RTP); err != nil {
		return nil, err
	}
	res := &Results{
		Started:   time.Now().UTC().Truncate(time.Second),
		Host:      hostInfo(&cfg),
		DurationS: cfg.Duration.Seconds(),
		HoldS:     cfg.Hold.Seconds(),
		CPS:       cfg.CPS,
		Dataplane: cfg.Dataplane,
		RTP:       cfg.RTP,
		Scenario:  fmt.Sprintf("SIPp UAC (PBX) → edge → SIPp UAS (carrier) over UDP: INVITE+SDP, [100], 180, 200+SDP, ACK, hold, BYE, 200; a call fails on any SIPp error or %v without an expected message", cfg.RecvTimeout),
		Latency:   "INVITE first sent → 200 received, every answered call: kernel timestamps of the datagrams on the PBX's veth (packet socket, µs); SIPp's own -trace_rtt (whole ms of its event-loop clock) is in the JSON",
		CPUMethod: "utime+stime of every process in the edge's process groups (/proc/PID/stat), and /proc/stat busy time, in % of one CPU, over the steady part of each step",
		FDLimit:   harness.RaiseNoFile(fdWant),
	}
	t0 := time.Now()
	for i, t := range cfg.Targets {
		if ctx.Err() != nil {
			break
		}
		res.Targets = append(res.Targets, runTarget(ctx, &cfg, i, t))
	}
	res.ElapsedS = time.Since(t0).Seconds()
	res.finish()
	return res, ctx.Err()
}

// runner runs one target.
type runner struct {
	cfg         *Config
	target      string
	targetIndex int
	dir         string
	l           *lab
	e           edge
	carrier     *testbed.Process
	capture     *wireCapture
	prov        *provisioned // xtrunk target
	tr          *TargetResult
	stopped     bool // the edge was stopped
}

func (r *runner) progress(p Progress) {
	if r.cfg.Progress == nil {
		return
	}
	p.Target, p.TargetIndex, p.Targets, p.Steps = r.target, r.targetIndex+1, len(r.cfg.Targets), len(r.cfg.CPS)
	r.cfg.Progress(p)
}

func runTarget(ctx context.Context, cfg *Config, idx int, target string) (tr TargetResult) {
	tr.Target = target
	r := &runner{cfg: cfg, target: target, targetIndex: idx, dir: filepath.Join(cfg.WorkDir, target), tr: &tr}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		r.fail(fmt.Errorf("sip: %w", err))
		return tr
	}
	r.progress(Progress{Phase: "building lab", StepIndex: 1, CPS: cfg.CPS[0]})
	l, err := newLab()
	if err != nil {
		r.fail(err)
		return tr
	}
	r.l = l
	defer func() { r.fail(l.close()) }()
	if r.capture, err = startCapture(l.tri.CallerLink.A); err != nil {
		r.fail(err)
		return tr
	}
	defer func() { r.fail(r.capture.close()) }()
	c0, _ := cpu.ReadGroups(nil)
	if harness.Sleep(ctx, time.Second) != nil {
		return tr
	}
	c1, _ := cpu.ReadGroups(nil)
	tr.BackgroundCPUPct = c1.BusyPct(c0)

	r.progress(Progress{Phase: "starting " + target, StepIndex: 1, CPS: cfg.CPS[0]})
	cleanup, err := r.startEdge(ctx)
	defer cleanup()
	if err != nil {
		r.fail(err)
		return tr
	}
	var out *os.File
	r.carrier, out, err = startCarrier(l, cfg, r.dir)
	if err != nil {
		r.fail(err)
		return tr
	}
	defer func() {
		_ = r.carrier.Stop() // SIPp ends on SIGTERM or the SIGKILL after it
		out.Close()
	}()
	time.Sleep(200 * time.Millisecond)
	if err := checkAlive(r.carrier, "SIPp carrier"); err != nil {
		r.fail(err)
		return tr
	}
	if !r.runSteps(ctx) || r.prov == nil || ctx.Err() != nil {
		return tr
	}
	// The B2BUA writes the last CDRs as its calls end: stop it first.
	r.stopEdge()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	tr.CDRs, tr.CDRsCompleted, err = r.prov.cdrs(cctx)
	cancel()
	r.fail(err)
	return tr
}

// fail records err (if any) as the target's error, unless one is already.
func (r *runner) fail(err error) {
	if err != nil && r.tr.Error == "" {
		r.tr.Error = err.Error()
	}
}

// startEdge provisions the store (xtrunk target) and starts the target's
// edge processes. The returned cleanup (never nil) stops the edge if
// still up, keeps its output in edge.log and releases the store.
func (r *runner) startEdge(ctx context.Context) (cleanup func(), err error) {
	var closeProv func()
	cleanup = func() {
		if r.e != nil {
			r.stopEdge()
			// What the edge processes said (the last MiB of each), kept
			// with the run's other files when --workdir is given.
			_ = os.WriteFile(filepath.Join(r.dir, "edge.log"), []byte(r.e.output(1<<20)), 0o644)
		}
		if closeProv != nil {
			closeProv()
		}
	}
	var e edge
	switch r.target {
	case TargetXtrunk:
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r.prov, err = provision(pctx, filepath.Join(r.dir, "xtrunk.db"), pbxIP)
		cancel()
		if err != nil {
			return cleanup, err
		}
		closeProv = func() { r.fail(r.prov.close()) }
		e, err = startXtrunk(r.l, r.cfg, r.dir, r.prov.dsn)
	case TargetKamailio, TargetKamailioXtrunk:
		e, err = startKamailio(r.l, r.cfg, r.dir, r.target == TargetKamailioXtrunk)
	}
	if err == nil {
		r.e = e
	}
	return cleanup, err
}

// stopEdge stops the edge processes once; one that had to be killed is
// noted, not failed.
func (r *runner) stopEdge() {
	if r.stopped {
		return
	}
	r.stopped = true
	if err := r.e.stop(); errors.Is(err, errKilled) {
		r.tr.Notes = append(r.tr.Notes, err.Error())
	} else {
		r.fail(err)
	}
}

// runSteps runs the CPS steps in order until one falls over (past
// StopFailPct or StopAchievedRatio, unless NoStop), ctx ends or something
// fails. It reports whether the steps ran to their end without error.
func (r *runner) runSteps(ctx context.Context) bool {
	cfg, tr := r.cfg, r.tr
	for si, cps := range cfg.CPS {
		if ctx.Err() != nil {
			return false
		}
		st, err := r.step(ctx, si, cps)
		if err != nil {
			if ctx.Err() == nil {
				r.fail(err)
			}
			return false
		}
		tr.Steps = append(tr.Steps, st)
		r.progress(Progress{Phase: "done", StepIndex: si + 1, CPS: cps, Done: true, Step: &st})
		if err := r.alive(); err != nil {
			r.fail(err)
			return false
		}
		if cfg.NoStop || si == len(cfg.CPS)-1 {
			continue
		}
		switch {
		case st.FailPct > StopFailPct:
			tr.Stopped = fmt.Sprintf("%.2f %% of the calls failed at %d CPS (> %g %%)", st.FailPct, cps, StopFailPct)
		case st.AchievedCPS < StopAchievedRatio*float64(cps):
			tr.Stopped = fmt.Sprintf("calls answered at %.0f of %d CPS offered (< %.0f %%)", st.AchievedCPS, cps, StopAchievedRatio*100)
		}
		if tr.Stopped != "" {
			return false
		}
	}
	return true
}

// alive checks that the edge processes and the carrier still run.
func (r *runner) alive() error {
	if err := checkAlive(r.carrier, "SIPp carrier"); err != nil {
		return err
	}
	for _, g := range append(r.e.sipGroups(), r.e.mediaGroups()...) {
		if unix.Kill(g, 0) != nil {
			return fmt.Errorf("sip: %s edge process %d is gone\n%s", r.target, g, r.e.output(3000))
		}
	}
	return nil
}

func checkAlive(p *testbed.Process, what string) error {
	select {
	case <-p.Done():
		return fmt.Errorf("sip: %s exited: %v\n%s", what, p.Wait(), harness.Tail(p.Output(), 2000))
	default:
		return nil
	}
}

// step runs one SIPp UAC at cps and reads what it measured.
func (r *runner) step(ctx context.Context, si, cps int) (Step, error) {
	cfg := r.cfg
	st := Step{OfferedCPS: cps, CDRs: -1}
	cdrs0 := r.cdrCount(ctx)
	xdp0, user0, err := r.e.media().forwarded()
	if err != nil {
		return st, err
	}
	r.progress(Progress{Phase: "placing calls", StepIndex: si + 1, CPS: cps})
	dir := filepath.Join(r.dir, fmt.Sprintf("step-%02d-%dcps", si+1, cps))
	if _, _, err := r.capture.take(); err != nil { // forget what came between steps
		return st, err
	}
	u, err := startPBX(r.l, cfg, dir, cps, firstPBXPort+si)
	if err != nil {
		return st, err
	}
	r.measureCPU(ctx, u, &st)

	r.progress(Progress{Phase: "last calls", StepIndex: si + 1, CPS: cps})
	if err := u.wait(ctx, sippTimeout(cfg)); err != nil {
		return st, err
	}
	st.WallS = time.Since(u.started).Seconds()
	res, err := u.read()
	if err != nil {
		return st, err
	}
	countCalls(&st, res)
	if err := r.setupLatency(&st, res); err != nil {
		return st, err
	}
	st.AchievedCPS = achievedCPS(res.answeredAt)
	if st.Answered == 1 {
		st.AchievedCPS = 1 / cfg.Duration.Seconds()
	}
	st.SIPCPUusPerCall = cpuPerCall(st.SIPCPUPct, st.AchievedCPS)
	st.MediaCPUusPerCall = cpuPerCall(st.MediaCPUPct, st.AchievedCPS)
	st.EdgeCPUusPerCall = st.SIPCPUusPerCall + st.MediaCPUusPerCall
	if st.Failed > 0 {
		st.ErrorSample = firstLines(filepath.Join(dir, "errors.log"), 6)
	}
	st.Status = stepStatus(st)

	r.progress(Progress{Phase: "settling", StepIndex: si + 1, CPS: cps})
	if st.RelaySessionsLeft, err = r.sessionsLeft(ctx); err != nil {
		return st, err
	}
	if xdp0 >= 0 {
		xdp1, user1, err := r.e.media().forwarded()
		if err != nil {
			return st, err
		}
		st.RelayXDPPackets, st.RelayUserspacePackets = xdp1-xdp0, user1-user0
	}
	if n := r.cdrCount(ctx); cdrs0 >= 0 && n >= 0 {
		st.CDRs = n - cdrs0
	}
	return st, nil
}

// settleMax bounds the wait past Settle for the relay to hold no call: an
// edge deletes a call from the relay after both legs answered their BYEs
// (xtrunk: at most 5 s), which on a loaded machine can come after any
// fixed pause.
const settleMax = 10 * time.Second

// sessionsLeft is how many calls the relay still holds once the step has
// settled: Settle at least, then until the relay holds none or settleMax
// more has passed (a leak).
func (r *runner) sessionsLeft(ctx context.Context) (int, error) {
	if err := harness.Sleep(ctx, r.cfg.Settle); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(settleMax)
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := r.e.sessions(sctx)
		cancel()
		if err != nil || n == 0 || time.Now().After(deadline) {
			return n, err
		}
		if err := harness.Sleep(ctx, 100*time.Millisecond); err != nil {
			return n, err
		}
	}
}

// cdrCount is how many CDRs the xtrunk target's store holds; -1 for
// other targets or when it cannot be read.
func (r *runner) cdrCount(ctx context.Context) int {
	if r.prov == nil {
		return -1
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, _, err := r.prov.cdrs(cctx)
	if err != nil {
		return -1
	}
	return n
}

// measureCPU reads the CPU of the edge, SIPp and the machine over the
// step's steady part into st: after the first calls' hold, to the end of
// placing (or SIPp's exit, if sooner).
func (r *runner) measureCPU(ctx context.Context, u *uacRun, st *Step) {
	sipGroups, mediaGroups := r.e.sipGroups(), r.e.mediaGroups()
	sippGroups := []int{u.proc.PID(), r.carrier.PID()}
	all := slices.Concat(sipGroups, mediaGroups, sippGroups)
	warm := min(2*time.Second, r.cfg.Duration/4)
	waitUntil := func(d time.Duration) {
		t := time.NewTimer(time.Until(u.started.Add(d)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-u.proc.Done():
		case <-ctx.Done():
		}
	}
	waitUntil(warm)
	a, _ := cpu.ReadGroups(all)
	waitUntil(r.cfg.Duration)
	b, _ := cpu.ReadGroups(all)
	st.SIPCPUPct = b.Pct(a, sipGroups...)
	st.MediaCPUPct = b.Pct(a, mediaGroups...)
	st.EdgeCPUPct = st.SIPCPUPct + st.MediaCPUPct
	st.SIPpCPUPct = b.Pct(a, sippGroups...)
	st.BusyCPUPct = b.BusyPct(a)
}

// countCalls fills st's call counts from SIPp's statistics.
func countCalls(st *Step, res *uacResult) {
	if res.exitErr != nil {
		st.SIPpExit = res.exitErr.Error()
	}
	st.Attempted = res.count("OutgoingCall(C)")
	st.Succeeded = res.count("SuccessfulCall(C)")
	failed := res.count("FailedCall(C)")
	st.Failed = st.Attempted - st.Succeeded
	st.FailReasons = res.failReasons()
	if open := st.Failed - failed; open > 0 {
		st.FailReasons["Unfinished"] = open
	}
	if len(st.FailReasons) == 0 {
		st.FailReasons = nil
	}
	if st.Attempted > 0 {
		st.FailPct = float64(st.Failed) / float64(st.Attempted) * 100
	}
	st.Retransmissions = res.count("Retransmissions(C)")
	st.OutOfCallMsgs = res.count("OutOfCallMsgs(C)")
	st.DeadCallMsgs = res.count("DeadCallMsgs(C)")
}

// setupLatency fills st's setup latency: from the wire capture, or
// SIPp's response times when the capture missed more than 1 % of the
// answered calls.
func (r *runner) setupLatency(st *Step, res *uacResult) error {
	st.Answered = len(res.rtts)
	sippSorted := slices.Sorted(slices.Values(res.rtts))
	st.SIPpSetupP50ms, st.SIPpSetupP99ms = percentile(sippSorted, 50), percentile(sippSorted, 99)
	wire, _, err := r.capture.take()
	if err != nil {
		return err
	}
	st.WireSetups = len(wire)
	setups, src := wire, "wire"
	if float64(len(wire)) < 0.99*float64(st.Answered) {
		setups, src = res.rtts, "sipp"
	}
	st.LatencySource = src
	if len(setups) == 0 {
		return nil
	}
	sorted := slices.Sorted(slices.Values(setups))
	st.SetupP50ms = percentile(sorted, 50)
	st.SetupP90ms = percentile(sorted, 90)
	st.SetupP99ms = percentile(sorted, 99)
	st.SetupMaxms = sorted[len(sorted)-1]
	var sum float64
	for _, v := range sorted {
		sum += v
	}
	st.SetupMeanms = sum / float64(len(sorted))
	return nil
}

func hostInfo(cfg *Config) Host {
	mach := harness.ReadMachine()
	h := Host{Kernel: mach.Kernel, CPUs: mach.CPUs, Model: mach.Model}
	version := func(bin string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return l
			}
		}
		return ""
	}
	h.SIPp = strings.TrimSpace(version(cfg.SIPpBin, "-v"))
	if slices.ContainsFunc(cfg.Targets, usesKamailio) {
		h.Kamailio = strings.TrimPrefix(version(cfg.KamailioBin, "-v"), "version: ")
	}
	if slices.Contains(cfg.Targets, TargetKamailio) {
		h.RTPEngine = strings.TrimSpace(strings.TrimPrefix(version(cfg.RTPEngineBin, "--version"), "Version:"))
	}
	return h
}

// cpuPerCall turns a CPU percentage of one CPU at cps calls a second into
// µs of CPU per call; 0 without calls.
func cpuPerCall(pct, cps float64) float64 {
	if cps <= 0 {
		return 0
	}
	return pct / 100 * 1e6 / cps
}
