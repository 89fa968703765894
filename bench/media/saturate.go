package media

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Saturation (Config.Saturate, xtrunk bench media --saturate): the
// generators send back to back, with no pacing, so every mode is offered
// more than the lab can move, and a step's delivered rate is what the
// forwarding path carried with the machine's CPUs full. The generator, the
// sinks and the lab are the same in every mode, so the ratio of two modes'
// delivered rates in the same run compares their forwarding paths: the
// relay's XDP program against the ceiling's bare rewrite and redirect.
//
// With Config.ProgStats the kernel's BPF run-time statistics are on for
// the run, and each step reports the relay's XDP program's cost per run
// (run_time_ns / run_cnt, as bpftool prog show prints them): the most
// direct figure of what the relay's program costs against the ceiling's,
// free of the generator's and the sinks' shares. The statistics cost two
// clock reads per program run (every XDP program on the machine, the
// generator's and the sinks' too), so the rates of a run with them are
// lower than without.

// satBurstTarget is how long one back-to-back generator run should take:
// long enough that its setup (milliseconds of wall time) is small beside
// it, short enough that a step ends close to its duration.
const satBurstTarget = 50 * time.Millisecond

// satFirstBurst is the first run's size; later runs are sized from the
// rate the previous ones reached.
const satFirstBurst = 32768

// saturate sends back to back for d and returns what was sent (counted by
// the program) and over how long.
func (g *generator) saturate(ctx context.Context, d time.Duration) (genResult, error) {
	var res genResult
	err := g.end.NS.Do(func() error {
		start0, err := g.sent()
		if err != nil {
			return err
		}
		// The machine may be shared: the generator's thread (where the
		// veths' NAPI polls run too, as softirqs on the way out of the
		// run) gets the CPU ahead of other load for the step, so the step
		// measures the forwarding path rather than the scheduler's share.
		defer raisePriority()()
		t0 := time.Now()
		n := uint32(satFirstBurst)
		for time.Since(t0) < d && ctx.Err() == nil {
			tb := time.Now()
			if err := g.burst(n); err != nil {
				return err
			}
			if el := time.Since(tb); el > 0 {
				next := float64(n) * float64(satBurstTarget) / float64(el)
				n = uint32(min(max(next, genBatch), 1<<22))
			}
		}
		done, err := g.sent()
		if err != nil {
			return err
		}
		res.Sent, res.Elapsed = done-start0, time.Since(t0)
		return nil
	})
	return res, err
}

// satNice is the generator threads' nice value during a --saturate step.
const satNice = -20

// raisePriority sets this thread's nice value to satNice and returns what
// puts the old one back. The caller's goroutine must be locked to its
// thread (testbed.NS.Do does that). Failing to change it only makes the
// figures noisier on a loaded machine, so errors are ignored.
func raisePriority() func() {
	tid := unix.Gettid()
	old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return func() {}
	}
	// The raw system call returns 20 - nice.
	if unix.Setpriority(unix.PRIO_PROCESS, tid, satNice) != nil {
		return func() {}
	}
	return func() { _ = unix.Setpriority(unix.PRIO_PROCESS, tid, 20-old) }
}

// progCost is the BPF statistics of a mode's forwarding programs at one
// moment.
type progCost struct {
	Runtime time.Duration
	Runs    uint64
}

// readProgCost sums the statistics of progs.
func readProgCost(progs []*ebpf.Program) (progCost, error) {
	var c progCost
	for _, p := range progs {
		s, err := p.Stats()
		if err != nil {
			return c, fmt.Errorf("media: program statistics: %w", err)
		}
		c.Runtime += s.Runtime
		c.Runs += s.RunCount
	}
	return c, nil
}

// nsPerRun is the cost per program run between two readings; 0 if the
// programs did not run.
func (c progCost) nsPerRun(before progCost) float64 {
	if c.Runs <= before.Runs {
		return 0
	}
	return float64(c.Runtime-before.Runtime) / float64(c.Runs-before.Runs)
}

// processXDPProgs opens the XDP programs process pid holds a descriptor of
// (a program or a link's), found through /proc/PID/fdinfo: the relay's own
// program, not another of the same name some other lab on the machine has
// loaded.
func processXDPProgs(pid int) ([]*ebpf.Program, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	var ids []ebpf.ProgramID
	for _, e := range ents {
		id, ok := fdinfoProgID(filepath.Join(dir, e.Name()))
		if ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	var progs []*ebpf.Program
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded since
		}
		if info, err := p.Info(); err == nil && info.Type == ebpf.XDP {
			progs = append(progs, p)
			continue
		}
		_ = p.Close()
	}
	if len(progs) == 0 {
		return nil, fmt.Errorf("%w: process %d holds no XDP program", ErrNoProgram, pid)
	}
	return progs, nil
}

// fdinfoProgID reads the prog_id line of a BPF program's or link's fdinfo.
func fdinfoProgID(path string) (ebpf.ProgramID, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "prog_id:")
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || id == 0 {
			return 0, false
		}
		return ebpf.ProgramID(id), true
	}
	return 0, false
}

// SatRound is one step of one round of a --saturate run: each mode's
// delivered rate and, with --prog-stats, its program's cost per run, at
// the same number of calls.
type SatRound struct {
	Round        int                `json:"round"`
	Calls        int                `json:"calls"`
	DeliveredPPS map[string]float64 `json:"delivered_pps"`
	NsPerRun     map[string]float64 `json:"ns_per_run,omitempty"`
	// XDPOverCeiling is DeliveredPPS[xdp] / DeliveredPPS[ceiling].
	XDPOverCeiling float64 `json:"xdp_over_ceiling,omitempty"`
}

// satRounds collects the steps of a --saturate run by round and calls.
func (r *Results) satRounds() []SatRound {
	var out []SatRound
	for _, m := range r.Modes {
		for _, st := range m.Steps {
			i := slices.IndexFunc(out, func(s SatRound) bool { return s.Round == m.Round && s.Calls == st.Calls })
			if i < 0 {
				out = append(out, SatRound{Round: m.Round, Calls: st.Calls, DeliveredPPS: map[string]float64{}})
				i = len(out) - 1
			}
			s := &out[i]
			s.DeliveredPPS[m.Mode] = st.DeliveredPPS
			if st.NsPerRun > 0 {
				if s.NsPerRun == nil {
					s.NsPerRun = map[string]float64{}
				}
				s.NsPerRun[m.Mode] = st.NsPerRun
			}
		}
	}
	for i := range out {
		x, c := out[i].DeliveredPPS[ModeXDP], out[i].DeliveredPPS[ModeCeiling]
		if x > 0 && c > 0 {
			out[i].XDPOverCeiling = x / c
		}
	}
	return out
}

// satSpread is the smallest, the median and the largest of v.
func satSpread(v []float64) (lo, med, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

// writeSaturation prints the rounds of a --saturate run and, per number
// of calls, the spread of xdp/ceiling.
func (r *Results) writeSaturation(w io.Writer) {
	rounds := r.Summary.Saturation
	if len(rounds) == 0 {
		return
	}
	fmt.Fprintln(w)
	ratios := map[int][]float64{}
	for _, s := range rounds {
		var kv []string
		for _, m := range modeOrder(r) {
			if v, ok := s.DeliveredPPS[m]; ok {
				t := fmt.Sprintf("%s %s pps", m, kpps(v))
				if ns := s.NsPerRun[m]; ns > 0 {
					t += fmt.Sprintf(" (%.0f ns/run)", ns)
				}
				kv = append(kv, t)
			}
		}
		line := fmt.Sprintf("saturation round %d, %d calls: %s", s.Round, s.Calls, strings.Join(kv, ", "))
		if s.XDPOverCeiling > 0 {
			line += fmt.Sprintf("; xdp/ceiling %.2f", s.XDPOverCeiling)
			ratios[s.Calls] = append(ratios[s.Calls], s.XDPOverCeiling)
		}
		fmt.Fprintln(w, line)
	}
	for _, n := range r.Calls {
		if v := ratios[n]; len(v) > 0 {
			lo, med, hi := satSpread(v)
			fmt.Fprintf(w, "xdp/ceiling at saturation, %d calls: median %.2f (%.2f–%.2f over %d rounds; target ≥ 0.80)\n", n, med, lo, hi, len(v))
		}
	}
	if len(ratios) > 0 && strings.HasPrefix(r.Generator, packetTxKind) {
		fmt.Fprintln(w, "generators: AF_PACKET (this kernel refuses XDP live frames): both modes get what the generators can send, so xdp/ceiling measures the generators, not the relay")
	}
}

// modeOrder is the run's modes in first-run order, each once.
func modeOrder(r *Results) []string {
	var out []string
	for _, m := range r.Modes {
		if !slices.Contains(out, m.Mode) {
			out = append(out, m.Mode)
		}
	}
	return out
}
