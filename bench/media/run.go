package media

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/internal/cpu"
	"github.com/xtrunk/xtrunk/bench/internal/harness"
	"github.com/xtrunk/xtrunk/bench/testbed"
)

// drainTime is how long a step waits after the generators stop before
// reading the sinks, for packets still queued in a userspace relay.
const drainTime = 500 * time.Millisecond

// teardownTimeout bounds deleting a mode's calls over NG.
const teardownTimeout = 2 * time.Minute

// Run runs the benchmark. It needs root. Every mode gets a lab of its own,
// torn down (namespaces, processes, XDP programs, bpffs) before the next
// starts, also when ctx is cancelled or a mode fails; a failed mode is
// recorded in its ModeResult and the run goes on. Run returns ctx's error
// if it was cancelled, with the results so far.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := testbed.Privileged(); err != nil {
		return nil, err
	}
	for _, m := range cfg.Modes {
		if isXtrunk(m) && cfg.XtrunkBin == "" {
			return nil, fmt.Errorf("%w: mode %s needs the xtrunk binary (Config.XtrunkBin)", ErrConfig, m)
		}
	}
	// Every relay socket is a file descriptor: 4 per call on xtrunk and on
	// rtpengine. The relays inherit the raised limit, if it can be raised
	// (it takes CAP_SYS_RESOURCE beyond the hard limit).
	fdLimit := harness.RaiseNoFile(uint64(socketsPerCall*cfg.Calls[len(cfg.Calls)-1] + fdReserve))
	relayCalls := min(maxCalls, int((fdLimit-min(fdLimit, fdReserve))/socketsPerCall))
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "xtrunk-bench-")
		if err != nil {
			return nil, fmt.Errorf("media: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.WorkDir = dir
	}
	res := &Results{
		Started:  time.Now().UTC().Truncate(time.Second),
		Host:     hostInfo(cfg),
		Duration: cfg.Duration.String(),
		Warmup:   cfg.Warmup.String(),
		Calls:    cfg.Calls,

		PacketsPerCall: cfg.PacketsPerCall,
		FDLimit:        fdLimit,
		MaxRelayCalls:  relayCalls,
		Generator:      fmt.Sprintf("%s, paced in %v chunks", generatorKind(), cfg.Chunk),
		SRTP:           cfg.SRTP,
		Saturate:       cfg.Saturate,
		ProgStats:      cfg.ProgStats,
	}
	if cfg.Saturate {
		res.Generator = generatorKind() + ", back to back (--saturate)"
	}
	if cfg.ProgStats {
		// Held for the whole run: the kernel counts while the descriptor
		// is open (like sysctl kernel.bpf_stats_enabled=1).
		st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			return nil, fmt.Errorf("media: BPF statistics: %w", err)
		}
		defer st.Close()
	}
	if cfg.SRTP {
		res.SRTPSuite = SRTPSuite
		res.Generator = fmt.Sprintf("caller (SRTP): pre-encrypted with pion/srtp before each step, sendmmsg on AF_PACKET paced every %v; callee (plain): %s",
			srtpTick, res.Generator)
	}
	t0 := time.Now()
	for round := 1; round <= cfg.Rounds; round++ {
		if cfg.Saturate && len(cfg.Modes) > 1 {
			if ctx.Err() == nil {
				res.Modes = append(res.Modes, runPaired(ctx, &cfg, round, relayCalls, fdLimit)...)
			}
			continue
		}
		for i, m := range cfg.Modes {
			if ctx.Err() != nil {
				break
			}
			mr := runMode(ctx, &cfg, i, m, relayCalls, fdLimit)
			mr.Round = round
			res.Modes = append(res.Modes, mr)
		}
	}
	res.ElapsedS = time.Since(t0).Seconds()
	res.finish()
	return res, ctx.Err()
}

// runner runs one mode.
type runner struct {
	cfg       *Config
	mode      string
	modeIndex int
	l         *lab
	d         dut

	srtpChecked bool // checkSRTP passed (--srtp)
}

// source is a generator one side of the lab sends with.
type source interface {
	// sendRound sends k packets of every call, back to back.
	sendRound(k int) error
	// run sends at rate packets per second for d and says what it sent.
	run(ctx context.Context, rate float64, d time.Duration, p pacing) (genResult, error)
}

// srcA is what sends from the caller: the SRTP sender in --srtp, else the
// XDP generator.
func (r *runner) srcA() source {
	if r.l.srtpA != nil {
		return r.l.srtpA
	}
	return r.l.genA
}

func (r *runner) progress(p Progress) {
	if r.cfg.Progress == nil {
		return
	}
	p.Mode, p.ModeIndex, p.Modes, p.Steps = r.mode, r.modeIndex+1, len(r.cfg.Modes), len(r.cfg.Calls)
	r.cfg.Progress(p)
}

// openRunner builds mode's lab, measures the machine's background load
// into mr and starts the relay under test. The returned close (never nil)
// deletes the calls over NG (unless ctx is cancelled), stops the relay and
// tears the lab down.
func openRunner(ctx context.Context, cfg *Config, idx int, mode string, mr *ModeResult) (r *runner, closeRunner func() error, err error) {
	r = &runner{cfg: cfg, mode: mode, modeIndex: idx}
	closeRunner = func() error { return nil }
	r.progress(Progress{Phase: "building lab", StepIndex: 1, Calls: cfg.Calls[0]})
	l, err := newLab(cfg.SRTP)
	if err != nil {
		return nil, closeRunner, err
	}
	r.l = l
	closeRunner = l.close
	if c0, err := cpu.ReadProcs(nil); err == nil {
		if harness.Sleep(ctx, time.Second) != nil {
			return r, closeRunner, nil
		}
		if c1, err := cpu.ReadProcs(nil); err == nil {
			mr.BackgroundCPUPct = c1.BusyPct(c0)
		}
	}
	r.progress(Progress{Phase: "starting " + mode, StepIndex: 1, Calls: cfg.Calls[0]})
	switch mode {
	case ModeXDP, ModeUserspace, ModeXDPSocketless:
		r.d, err = startXtrunk(l, cfg.XtrunkBin, mode, cfg.WorkDir, cfg.RelayNoFile)
	case ModeRTPEngine:
		r.d, err = startRTPEngine(l, cfg.RTPEngineBin, cfg.WorkDir, cfg.RelayNoFile)
	case ModeCeiling:
		r.d, err = startCeiling(l)
	}
	if err != nil {
		return r, closeRunner, err
	}
	closeRunner = func() error {
		var errs []error
		if ctx.Err() == nil {
			r.progress(Progress{Phase: "deleting calls", Calls: 0})
			tctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
			errs = append(errs, r.d.teardown(tctx))
			cancel()
		}
		return errors.Join(append(errs, r.d.stop(), l.close())...)
	}
	return r, closeRunner, nil
}

func runMode(ctx context.Context, cfg *Config, idx int, mode string, relayCalls int, fdLimit uint64) (mr ModeResult) {
	mr.Mode = mode
	fail := func(err error) {
		if err != nil && mr.Error == "" {
			mr.Error = err.Error()
		}
	}
	r, closeRunner, err := openRunner(ctx, cfg, idx, mode, &mr)
	defer func() { fail(closeRunner()) }()
	if err != nil || ctx.Err() != nil {
		fail(err)
		return mr
	}

	mem, err := startMemory(r.d, &mr)
	if err != nil {
		fail(err)
		return mr
	}
	relayCalls, fdLimit = relayCallLimit(cfg, mode, fdLimit)
	var aCalls, bCalls []genCall
	for si, n := range cfg.Calls {
		if ctx.Err() != nil {
			return mr
		}
		if n > relayCalls {
			mr.Stopped = fmt.Sprintf("%d calls need %d sockets in one relay process; RLIMIT_NOFILE is %d for it, which holds %d calls",
				n, socketsPerCall*n, fdLimit, relayCalls)
			return mr
		}
		st, err := r.step(ctx, si, n, &aCalls, &bCalls)
		if err == nil {
			err = mem.stepMemory(&st, n)
		}
		mr.SRTPChecked = r.srtpChecked
		if err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return mr
		}
		mr.Steps = append(mr.Steps, st)
		r.progress(Progress{Phase: "done", StepIndex: si + 1, Calls: n, Frac: 1, Done: true, Step: &st})
		if cfg.NoStop || cfg.Saturate || si == len(cfg.Calls)-1 {
			continue
		}
		switch {
		case st.LossPct > StopLoss:
			mr.Stopped = fmt.Sprintf("loss %.2f %% > %g %% at %d calls", st.LossPct, StopLoss, n)
		case st.SentPPS < StopSentRatio*st.OfferedPPS:
			mr.Stopped = fmt.Sprintf("saturated at %d calls: the generators sent %.0f of %.0f pps offered", n, st.SentPPS, st.OfferedPPS)
		}
		if mr.Stopped != "" {
			return mr
		}
	}
	return mr
}

// step sets up the calls new in this step, warms them up and measures.
func (r *runner) step(ctx context.Context, si, n int, aCalls, bCalls *[]genCall) (Step, error) {
	setup, prep, err := r.prepare(ctx, si, n, aCalls, bCalls)
	if err != nil {
		return Step{}, err
	}
	var settled Step
	if !r.cfg.NoSettle && r.l.srtpA == nil {
		r.progress(Progress{Phase: "latching", StepIndex: si + 1, Calls: n})
		if settled.SettleRounds, settled.SettleUnlatched, err = r.settle(ctx, r.cfg.Warmup/2); err != nil {
			return Step{}, err
		}
	}
	st, err := r.measure(ctx, si, n)
	st.SettleRounds, st.SettleUnlatched = settled.SettleRounds, settled.SettleUnlatched
	st.SetupS = setup.Seconds()
	st.SRTPPrepareS = prep.Seconds()
	return st, err
}

// prepare sets up the calls new in this step and warms them up; it says
// how long the NG setup and (--srtp) the encryption took.
func (r *runner) prepare(ctx context.Context, si, n int, aCalls, bCalls *[]genCall) (setup, prep time.Duration, err error) {
	l, cfg := r.l, r.cfg
	from := len(*aCalls)
	t0 := time.Now()
	r.progress(Progress{Phase: "NG offer/answer", StepIndex: si + 1, Calls: n})
	a, b, err := r.d.setup(ctx, from, n, func(k int) {
		r.progress(Progress{Phase: "NG offer/answer", StepIndex: si + 1, Calls: n, Frac: float64(k) / float64(n-from)})
	})
	if err != nil {
		return 0, 0, err
	}
	setup = time.Since(t0)
	*aCalls, *bCalls = append(*aCalls, a...), append(*bCalls, b...)
	if l.srtpA != nil {
		if err := l.srtpA.setCalls(*aCalls, from); err != nil {
			return 0, 0, err
		}
		// Before the sinks count anything: one call both ways, decrypted
		// and encrypted as the SDP exchange says.
		if from == 0 {
			r.progress(Progress{Phase: "SRTP check", StepIndex: si + 1, Calls: n})
			if err := checkSRTP(l.srtpA, l.genB, l.caller, l.callee, (*aCalls)[0], (*bCalls)[0]); err != nil {
				return 0, 0, fmt.Errorf("%s: %w", r.mode, err)
			}
			r.srtpChecked = true
		}
	} else if err := l.genA.setCalls(*aCalls, from); err != nil {
		return 0, 0, err
	}
	if err := errors.Join(l.genB.setCalls(*bCalls, from), l.sinkA.setCalls(n), l.sinkB.setCalls(n)); err != nil {
		return 0, 0, err
	}

	// Warm-up: a few packets of every call each way, so the relays latch
	// (xtrunk installs the fast path on the first packet it sees), then a
	// pause for them to settle and for the queues to empty.
	r.progress(Progress{Phase: "warm-up", StepIndex: si + 1, Calls: n})
	if err := both(func() error { return r.srcA().sendRound(cfg.WarmupPackets) },
		func() error { return l.genB.sendRound(cfg.WarmupPackets) }); err != nil {
		return 0, 0, err
	}
	// --srtp: the caller's packets for the step are encrypted during the
	// pause, so the crypto of the generator is done before measuring.
	pause := func() error { return harness.Sleep(ctx, cfg.Warmup) }
	if l.srtpA != nil {
		r.progress(Progress{Phase: "warm-up, encrypting", StepIndex: si + 1, Calls: n})
		err = both(pause, func() error {
			t := time.Now()
			err := l.srtpA.prepare(n, uint64(float64(n*cfg.PacketsPerCall)*cfg.Duration.Seconds()))
			prep = time.Since(t)
			return err
		})
		if err != nil {
			return 0, 0, err
		}
	} else if err := pause(); err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}

	return setup, prep, nil
}

func (r *runner) measure(ctx context.Context, si, n int) (Step, error) {
	m, err := r.begin(n)
	if err != nil {
		return Step{Calls: n}, err
	}
	ga, gb, err := r.traffic(ctx, si, n)
	if err != nil {
		return Step{Calls: n}, err
	}
	return r.end(ctx, si, n, m, ga, gb)
}

// mark is what a step reads before its traffic, to subtract after.
type mark struct {
	sa0, sb0 sinkSnap
	rs0      map[string]uint64
	relay0   map[string]uint64 // relayCounters
	progs    []*ebpf.Program
	pc0      progCost
	pids     []int
	c0       cpu.Snap
}

// begin reads the sinks, the relay's counters and the CPU before a step's
// traffic.
func (r *runner) begin(n int) (*mark, error) {
	l, cfg := r.l, r.cfg
	m := &mark{}
	var err error
	if m.sa0, err = l.sinkA.snap(n); err != nil {
		return nil, err
	}
	if m.sb0, err = l.sinkB.snap(n); err != nil {
		return nil, err
	}
	if m.rs0, err = r.d.reasons(); err != nil {
		return nil, err
	}
	if m.relay0, err = relayCounters(r.d); err != nil {
		return nil, err
	}
	if cfg.ProgStats {
		if m.progs, err = r.d.xdpProgs(); err != nil {
			return nil, err
		}
		if m.pc0, err = readProgCost(m.progs); err != nil {
			return nil, err
		}
	}
	m.pids = r.d.pids()
	if m.c0, err = cpu.ReadProcs(m.pids); err != nil {
		return nil, err
	}
	return m, nil
}

// traffic runs the step's generators, both directions at once.
func (r *runner) traffic(ctx context.Context, si, n int) (ga, gb genResult, err error) {
	l, cfg := r.l, r.cfg
	rate := float64(n * cfg.PacketsPerCall) // per direction
	stopTick := make(chan struct{})
	var tickWG sync.WaitGroup
	tickWG.Add(1)
	go func() {
		defer tickWG.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-stopTick:
				return
			case <-t.C:
				r.progress(Progress{Phase: "measuring", StepIndex: si + 1, Calls: n,
					Frac: min(1, time.Since(start).Seconds()/cfg.Duration.Seconds())})
			}
		}
	}()
	p := pacing{Chunk: cfg.Chunk}
	if cfg.Saturate {
		ga, gb, err = r.saturate(ctx, cfg.Duration)
	} else {
		err = both(func() error { var err error; ga, err = r.srcA().run(ctx, rate, cfg.Duration, p); return err },
			func() error { var err error; gb, err = l.genB.run(ctx, rate, cfg.Duration, p); return err })
	}
	close(stopTick)
	tickWG.Wait()
	return ga, gb, err
}

// end reads what a step's traffic did, after the queues drained, and
// makes the step's figures.
func (r *runner) end(ctx context.Context, si, n int, m *mark, ga, gb genResult) (Step, error) {
	l, cfg := r.l, r.cfg
	st := Step{Calls: n}
	rate := float64(n * cfg.PacketsPerCall) // per direction
	sa0, sb0, rs0, pids, c0 := m.sa0, m.sb0, m.rs0, m.pids, m.c0
	if err := ctx.Err(); err != nil {
		return st, err
	}
	c1, err := cpu.ReadProcs(pids)
	if err != nil {
		return st, err
	}
	if cfg.ProgStats {
		pc1, err := readProgCost(m.progs)
		if err != nil {
			return st, err
		}
		st.NsPerRun, st.ProgRuns = pc1.nsPerRun(m.pc0), pc1.Runs-m.pc0.Runs
	}
	r.progress(Progress{Phase: "draining", StepIndex: si + 1, Calls: n, Frac: 1})
	if err := harness.Sleep(ctx, drainTime); err != nil {
		return st, err
	}
	sa1, err := l.sinkA.snap(n)
	if err != nil {
		return st, err
	}
	sb1, err := l.sinkB.snap(n)
	if err != nil {
		return st, err
	}
	rs1, err := r.d.reasons()
	if err != nil {
		return st, err
	}
	relay1, err := relayCounters(r.d)
	if err != nil {
		return st, err
	}
	st.RelayCounters = reasonDeltas(m.relay0, relay1)

	da, db := sa1.sub(sa0), sb1.sub(sb0)
	elapsed := max(ga.Elapsed, gb.Elapsed).Seconds()
	st.DurationS = elapsed
	st.Sent = ga.Sent + gb.Sent
	st.Delivered = da.RTP + db.RTP
	st.Lost = int64(st.Sent) - int64(st.Delivered)
	st.OfferedPPS = 2 * rate
	if cfg.Saturate {
		st.OfferedPPS = 0 // as much as the generators could send
	}
	if elapsed > 0 {
		st.SentPPS = float64(st.Sent) / elapsed
		st.DeliveredPPS = float64(st.Delivered) / elapsed
	}
	if st.Sent > 0 {
		st.LossPct = max(0, float64(st.Lost)) / float64(st.Sent) * 100
	}
	st.ToCallee, st.ToCaller = newFlow(ga.Sent, db.RTP), newFlow(gb.Sent, da.RTP)
	hist := make([]uint64, histBuckets)
	for i := range hist {
		hist[i] = da.Hist[i] + db.Hist[i]
	}
	us := func(q float64) float64 {
		d, ok := percentile(hist, q)
		if !ok {
			return 0
		}
		return float64(d) / float64(time.Microsecond)
	}
	if l.srtpA == nil {
		// --srtp has no latency: the caller's stamps were encrypted before
		// sending, and the callee's are encrypted by the relay.
		st.LatencyP50us, st.LatencyP99us, st.LatencyP999us = us(0.5), us(0.99), us(0.999)
	}
	st.RelayCPUPct, st.SoftirqCPUPct, st.BusyCPUPct = c1.Pct(c0, pids...), c1.SoftirqPct(c0), c1.BusyPct(c0)
	if l.srtpA != nil && st.LossPct < CleanLoss && st.RelayCPUPct > 0 {
		st.SRTPCallsPerCore = float64(n) / (st.RelayCPUPct / 100)
	}
	st.checks(da, db, rs0, rs1)
	switch {
	case cfg.Saturate:
		st.Status = StatusSat
	case st.LossPct >= CleanLoss:
		st.Status = StatusLoss
	case st.SentPPS < MinSentRatio*st.OfferedPPS:
		st.Status = StatusShort
	default:
		st.Status = StatusOK
	}
	return st, nil
}

// checks fills the step's consistency counts from the sinks' deltas and
// its XDP exits from the relay's counters before (rs0) and after (rs1).
func (st *Step) checks(da, db sinkSnap, rs0, rs1 map[string]uint64) {
	for _, d := range []sinkSnap{da, db} {
		for _, v := range d.PerCall {
			st.PerCallSum += v
			if v == 0 {
				st.SilentCalls++
			}
		}
		st.Bad += d.Bad
	}
	st.XDPReasons = reasonDeltas(rs0, rs1)
}

// reasonDeltas is what each counter of after grew by since before (those
// that grew); nil when after is nil (a relay without the counters).
func reasonDeltas(before, after map[string]uint64) map[string]uint64 {
	if after == nil {
		return nil
	}
	out := map[string]uint64{}
	for k, v := range after {
		if dv := v - before[k]; v >= before[k] && dv > 0 {
			out[k] = dv
		}
	}
	return out
}

// both runs f and g concurrently and returns their errors.
func both(f, g func() error) error {
	var wg sync.WaitGroup
	var ef, eg error
	wg.Add(2)
	go func() { defer wg.Done(); ef = f() }()
	go func() { defer wg.Done(); eg = g() }()
	wg.Wait()
	return errors.Join(ef, eg)
}

func hostInfo(cfg Config) Host {
	mach := harness.ReadMachine()
	h := Host{Kernel: mach.Kernel, CPUs: mach.CPUs, Model: mach.Model}
	for _, m := range cfg.Modes {
		if m == ModeRTPEngine {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, _ := exec.CommandContext(ctx, cfg.RTPEngineBin, "--version").CombinedOutput()
			cancel()
			v := strings.TrimSpace(string(out))
			h.RTPEngine = strings.TrimSpace(strings.TrimPrefix(v, "Version:"))
		}
	}
	return h
}
