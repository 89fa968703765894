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
		Generator:      fmt.Sprintf("XDP live frames (BPF_PROG_TEST_RUN), paced in %v chunks", cfg.Chunk),
		SRTP:           cfg.SRTP,
	}
	if cfg.SRTP {
		res.SRTPSuite = SRTPSuite
		res.Generator = fmt.Sprintf("caller (SRTP): pre-encrypted with pion/srtp before each step, sendmmsg on AF_PACKET paced every %v; callee (plain): %s",
			srtpTick, res.Generator)
	}
	t0 := time.Now()
	for i, m := range cfg.Modes {
		if ctx.Err() != nil {
			break
		}
		res.Modes = append(res.Modes, runMode(ctx, &cfg, i, m, relayCalls, fdLimit))
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

func runMode(ctx context.Context, cfg *Config, idx int, mode string, relayCalls int, fdLimit uint64) (mr ModeResult) {
	mr.Mode = mode
	r := &runner{cfg: cfg, mode: mode, modeIndex: idx}
	r.progress(Progress{Phase: "building lab", StepIndex: 1, Calls: cfg.Calls[0]})
	fail := func(err error) {
		if err != nil && mr.Error == "" {
			mr.Error = err.Error()
		}
	}
	l, err := newLab(cfg.SRTP)
	if err != nil {
		fail(err)
		return mr
	}
	r.l = l
	defer func() { fail(l.close()) }()
	if c0, err := cpu.ReadProcs(nil); err == nil {
		if harness.Sleep(ctx, time.Second) != nil {
			return mr
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
		fail(err)
		return mr
	}
	defer func() {
		if ctx.Err() == nil {
			r.progress(Progress{Phase: "deleting calls", StepIndex: len(mr.Steps), Calls: 0})
			tctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
			fail(r.d.teardown(tctx))
			cancel()
		}
		fail(r.d.stop())
	}()

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
		if cfg.NoStop || si == len(cfg.Calls)-1 {
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
	l, cfg := r.l, r.cfg
	from := len(*aCalls)
	t0 := time.Now()
	r.progress(Progress{Phase: "NG offer/answer", StepIndex: si + 1, Calls: n})
	a, b, err := r.d.setup(ctx, from, n, func(k int) {
		r.progress(Progress{Phase: "NG offer/answer", StepIndex: si + 1, Calls: n, Frac: float64(k) / float64(n-from)})
	})
	if err != nil {
		return Step{}, err
	}
	setup := time.Since(t0)
	*aCalls, *bCalls = append(*aCalls, a...), append(*bCalls, b...)
	if l.srtpA != nil {
		if err := l.srtpA.setCalls(*aCalls, from); err != nil {
			return Step{}, err
		}
		// Before the sinks count anything: one call both ways, decrypted
		// and encrypted as the SDP exchange says.
		if from == 0 {
			r.progress(Progress{Phase: "SRTP check", StepIndex: si + 1, Calls: n})
			if err := checkSRTP(l.srtpA, l.genB, l.caller, l.callee, (*aCalls)[0], (*bCalls)[0]); err != nil {
				return Step{}, fmt.Errorf("%s: %w", r.mode, err)
			}
			r.srtpChecked = true
		}
	} else if err := l.genA.setCalls(*aCalls, from); err != nil {
		return Step{}, err
	}
	if err := errors.Join(l.genB.setCalls(*bCalls, from), l.sinkA.setCalls(n), l.sinkB.setCalls(n)); err != nil {
		return Step{}, err
	}

	// Warm-up: a few packets of every call each way, so the relays latch
	// (xtrunk installs the fast path on the first packet it sees), then a
	// pause for them to settle and for the queues to empty.
	r.progress(Progress{Phase: "warm-up", StepIndex: si + 1, Calls: n})
	if err := both(func() error { return r.srcA().sendRound(cfg.WarmupPackets) },
		func() error { return l.genB.sendRound(cfg.WarmupPackets) }); err != nil {
		return Step{}, err
	}
	// --srtp: the caller's packets for the step are encrypted during the
	// pause, so the crypto of the generator is done before measuring.
	var prep time.Duration
	pause := func() error { return harness.Sleep(ctx, cfg.Warmup) }
	if l.srtpA != nil {
		r.progress(Progress{Phase: "warm-up, encrypting", StepIndex: si + 1, Calls: n})
		err := both(pause, func() error {
			t := time.Now()
			err := l.srtpA.prepare(n, uint64(float64(n*cfg.PacketsPerCall)*cfg.Duration.Seconds()))
			prep = time.Since(t)
			return err
		})
		if err != nil {
			return Step{}, err
		}
	} else if err := pause(); err != nil {
		return Step{}, err
	}
	if err := ctx.Err(); err != nil {
		return Step{}, err
	}
	var settled Step
	if !cfg.NoSettle && l.srtpA == nil {
		r.progress(Progress{Phase: "latching", StepIndex: si + 1, Calls: n})
		if settled.SettleRounds, settled.SettleUnlatched, err = r.settle(ctx, cfg.Warmup/2); err != nil {
			return Step{}, err
		}
	}

	st, err := r.measure(ctx, si, n)
	st.SettleRounds, st.SettleUnlatched = settled.SettleRounds, settled.SettleUnlatched
	st.SetupS = setup.Seconds()
	st.SRTPPrepareS = prep.Seconds()
	return st, err
}

func (r *runner) measure(ctx context.Context, si, n int) (Step, error) {
	st := Step{Calls: n}
	before, err := r.snap(n)
	if err != nil {
		return st, err
	}
	pids := r.d.pids()
	c0, err := cpu.ReadProcs(pids)
	if err != nil {
		return st, err
	}

	rate := float64(n * r.cfg.PacketsPerCall) // per direction
	ga, gb, err := r.send(ctx, si, n, rate)
	if err != nil {
		return st, err
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	c1, err := cpu.ReadProcs(pids)
	if err != nil {
		return st, err
	}
	r.progress(Progress{Phase: "draining", StepIndex: si + 1, Calls: n, Frac: 1})
	if err := harness.Sleep(ctx, drainTime); err != nil {
		return st, err
	}
	after, err := r.snap(n)
	if err != nil {
		return st, err
	}

	da, db := after.a.sub(before.a), after.b.sub(before.b)
	elapsed := max(ga.Elapsed, gb.Elapsed).Seconds()
	st.DurationS = elapsed
	st.Sent = ga.Sent + gb.Sent
	st.Delivered = da.RTP + db.RTP
	st.Lost = int64(st.Sent) - int64(st.Delivered)
	st.OfferedPPS = 2 * rate
	if elapsed > 0 {
		st.SentPPS = float64(st.Sent) / elapsed
		st.DeliveredPPS = float64(st.Delivered) / elapsed
	}
	if st.Sent > 0 {
		st.LossPct = max(0, float64(st.Lost)) / float64(st.Sent) * 100
	}
	st.ToCallee, st.ToCaller = newFlow(ga.Sent, db.RTP), newFlow(gb.Sent, da.RTP)
	if r.l.srtpA == nil {
		// --srtp has no latency: the caller's stamps were encrypted before
		// sending, and the callee's are encrypted by the relay.
		st.LatencyP50us, st.LatencyP99us, st.LatencyP999us = latencies(da, db)
	}
	st.RelayCPUPct, st.SoftirqCPUPct, st.BusyCPUPct = c1.Pct(c0, pids...), c1.SoftirqPct(c0), c1.BusyPct(c0)
	if r.l.srtpA != nil && st.LossPct < CleanLoss && st.RelayCPUPct > 0 {
		st.SRTPCallsPerCore = float64(n) / (st.RelayCPUPct / 100)
	}
	st.count(da, db)
	st.XDPReasons = reasonDeltas(before.reasons, after.reasons)
	st.RelayCounters = reasonDeltas(before.relay, after.relay)
	switch {
	case st.LossPct >= CleanLoss:
		st.Status = StatusLoss
	case st.SentPPS < MinSentRatio*st.OfferedPPS:
		st.Status = StatusShort
	default:
		st.Status = StatusOK
	}
	return st, nil
}

// counters is what measure reads before and after a step: both sinks'
// counters for the first n calls and the device's exit reasons.
type counters struct {
	a, b    sinkSnap
	reasons map[string]uint64
	relay   map[string]uint64 // relayCounters
}

func (r *runner) snap(n int) (c counters, err error) {
	if c.a, err = r.l.sinkA.snap(n); err != nil {
		return c, err
	}
	if c.b, err = r.l.sinkB.snap(n); err != nil {
		return c, err
	}
	if c.reasons, err = r.d.reasons(); err != nil {
		return c, err
	}
	c.relay, err = relayCounters(r.d)
	return c, err
}

// send runs both directions' generators at rate packets a second each for
// the configured duration, reporting progress while they run.
func (r *runner) send(ctx context.Context, si, n int, rate float64) (ga, gb genResult, err error) {
	cfg := r.cfg
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
	err = both(func() error { var err error; ga, err = r.srcA().run(ctx, rate, cfg.Duration, p); return err },
		func() error { var err error; gb, err = r.l.genB.run(ctx, rate, cfg.Duration, p); return err })
	close(stopTick)
	tickWG.Wait()
	return ga, gb, err
}

// latencies is the p50, p99 and p99.9 one-way latency in microseconds over
// both sinks' histograms (0 where nothing was stamped).
func latencies(da, db sinkSnap) (p50, p99, p999 float64) {
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
	return us(0.5), us(0.99), us(0.999)
}

// count adds the sinks' per-call packets, silent calls and bad packets.
func (st *Step) count(snaps ...sinkSnap) {
	for _, d := range snaps {
		for _, v := range d.PerCall {
			st.PerCallSum += v
			if v == 0 {
				st.SilentCalls++
			}
		}
		st.Bad += d.Bad
	}
}

// reasonDeltas is what each exit reason counted between two reads: nil when
// the device has no reasons, reasons that did not grow left out.
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
