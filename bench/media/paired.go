package media

import (
	"context"
	"fmt"
	"time"
)

// pairSlice is how long one mode's generators send before the next mode's
// take over in a --saturate run of several modes: short, so the load the
// rest of a shared machine puts on the CPUs is about the same for every
// mode, long against the generator's per-run setup.
const pairSlice = 200 * time.Millisecond

// saturate sends back to back from both sides of r's lab for d.
func (r *runner) saturate(ctx context.Context, d time.Duration) (ga, gb genResult, err error) {
	l := r.l
	err = both(func() error { var err error; ga, err = l.genA.saturate(ctx, d); return err },
		func() error { var err error; gb, err = l.genB.saturate(ctx, d); return err })
	return ga, gb, err
}

func (g *genResult) add(o genResult) {
	g.Sent += o.Sent
	g.Elapsed += o.Elapsed
}

// pairedMode is one mode of a paired round.
type pairedMode struct {
	r              *runner
	aCalls, bCalls []genCall
	setup          time.Duration
	m              *mark
	ga, gb         genResult
	active         bool // its step is being measured
}

// runPaired runs one round of a --saturate run with the modes side by
// side: every mode's lab is up at once, and each step's measured time is
// cut into slices that go to the modes in turn (xdp, ceiling, xdp, …), so
// a loaded machine's drift falls on all of them alike. Each mode's figures
// cover its own slices; its CPU columns span the whole interleaved step.
func runPaired(ctx context.Context, cfg *Config, round, relayCalls int, fdLimit uint64) []ModeResult {
	mrs := make([]ModeResult, len(cfg.Modes))
	pms := make([]*pairedMode, len(cfg.Modes))
	fail := func(i int, err error) {
		if err != nil && mrs[i].Error == "" {
			mrs[i].Error = err.Error()
		}
	}
	for i, mode := range cfg.Modes {
		mrs[i].Mode, mrs[i].Round = mode, round
		r, closeRunner, err := openRunner(ctx, cfg, i, mode, &mrs[i])
		defer func() { fail(i, closeRunner()) }()
		if err != nil || ctx.Err() != nil {
			fail(i, err)
			continue
		}
		pms[i] = &pairedMode{r: r}
	}
	for si, n := range cfg.Calls {
		for i, pm := range pms {
			if pm == nil || ctx.Err() != nil {
				continue
			}
			pm.active = false
			if cfg.Modes[i] != ModeCeiling && n > relayCalls {
				mrs[i].Stopped = fmt.Sprintf("%d calls need %d sockets in one relay process; RLIMIT_NOFILE is %d here, which holds %d calls",
					n, socketsPerCall*n, fdLimit, relayCalls)
				pms[i] = nil
				continue
			}
			var err error
			if pm.setup, _, err = pm.r.prepare(ctx, si, n, &pm.aCalls, &pm.bCalls); err == nil {
				pm.m, err = pm.r.begin(n)
			}
			if err != nil {
				fail(i, err)
				pms[i] = nil
				continue
			}
			pm.active, pm.ga, pm.gb = true, genResult{}, genResult{}
		}
		if err := pairedTraffic(ctx, cfg, pms, si, n); err != nil {
			for i := range mrs {
				fail(i, err)
			}
			return mrs
		}
		for i, pm := range pms {
			if pm == nil || !pm.active {
				continue
			}
			st, err := pm.r.end(ctx, si, n, pm.m, pm.ga, pm.gb)
			if err != nil {
				if ctx.Err() == nil {
					fail(i, err)
				}
				pms[i] = nil
				continue
			}
			st.SetupS = pm.setup.Seconds()
			mrs[i].Steps = append(mrs[i].Steps, st)
			pm.r.progress(Progress{Phase: "done", StepIndex: si + 1, Calls: n, Frac: 1, Done: true, Step: &st})
		}
	}
	return mrs
}

// pairedTraffic gives the active modes' generators pairSlice each in turn
// until each has sent for cfg.Duration.
func pairedTraffic(ctx context.Context, cfg *Config, pms []*pairedMode, si, n int) error {
	for done := time.Duration(0); done < cfg.Duration && ctx.Err() == nil; done += pairSlice {
		for _, pm := range pms {
			if pm == nil || !pm.active {
				continue
			}
			pm.r.progress(Progress{Phase: "measuring (paired)", StepIndex: si + 1, Calls: n,
				Frac: min(1, done.Seconds()/cfg.Duration.Seconds())})
			ga, gb, err := pm.r.saturate(ctx, min(pairSlice, cfg.Duration-done))
			if err != nil {
				return err
			}
			pm.ga.add(ga)
			pm.gb.add(gb)
		}
	}
	return ctx.Err()
}
