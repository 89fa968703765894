package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/media"
)

// runBench dispatches `xtrunk bench KIND`.
func runBench(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: xtrunk bench media|sip [flags]\n\n  media  RTP relaying: xtrunk XDP vs userspace vs rtpengine vs the XDP ceiling\n  sip    call setup rate (CPS): xtrunk sip + relay vs Kamailio + rtpengine\n\nRun 'xtrunk bench media -h' or 'xtrunk bench sip -h' for their flags.")
		if len(args) == 0 {
			return errors.New("missing benchmark")
		}
		return nil
	}
	switch args[0] {
	case "media":
		return runBenchMedia(args[1:])
	case "sip":
		return runBenchSIP(args[1:])
	}
	return fmt.Errorf("unknown benchmark %q (want media or sip)", args[0])
}

// runBenchMedia runs the media benchmark in namespace labs and writes the
// table (stdout), results.json and media.png (--out). Ctrl-C stops it and
// cleans up; a second Ctrl-C exits at once.
func runBenchMedia(args []string) error {
	fs := flag.NewFlagSet("bench media", flag.ContinueOnError)
	modes := fs.String("modes", strings.Join(media.AllModes, ","), "modes to run, in order: xdp, userspace, rtpengine, ceiling, and on request "+strings.Join(media.ExtraModes, ", ")+" (with --srtp: "+strings.Join(media.SRTPModes, ", ")+")")
	calls := fs.String("calls", joinInts(media.DefaultCalls), fmt.Sprintf("concurrent calls per step, ascending (at most %d)", media.MaxCalls))
	dur := fs.Duration("duration", 10*time.Second, "measured time per step")
	warmup := fs.Duration("warmup", time.Second, "pause after the warm-up packets before measuring (latching)")
	chunk := fs.Duration("chunk", 50*time.Millisecond, "generator pacing interval")
	ppc := fs.Int("pps-per-call", media.PacketsPerSecond, "packets per second per call and direction (50: G.711 20 ms; 100: 10 ms)")
	out := fs.String("out", "./bench-out", "directory for results.json and media.png")
	xtrunkBin := fs.String("xtrunk", "", "xtrunk binary to run as the relay (default: this one)")
	rtpengine := fs.String("rtpengine", "rtpengine", "rtpengine binary")
	noStop := fs.Bool("no-stop", false, "run every step, even past 1 % loss or saturation")
	reasons := fs.Bool("reasons", false, "also print the XDP program's exits per step (xdp mode)")
	srtp := fs.Bool("srtp", false, "SDES-SRTP ("+media.SRTPSuite+") on each call's customer leg, plain RTP on the carrier leg; reports SRTP calls per core")
	saturate := fs.Bool("saturate", false, "send back to back (no pacing): every mode is offered more than it can take, the modes side by side in 200 ms turns; reports delivered pps and xdp/ceiling per round")
	progStats := fs.Bool("prog-stats", false, "turn on BPF run-time statistics and report the XDP forwarding program's ns per run (xdp, ceiling); slows every XDP program a little")
	rounds := fs.Int("rounds", 1, "run the modes this many times, fresh labs each round (the spread on a loaded machine)")
	noSettle := fs.Bool("no-settle", false, "measure right after the warm-up, without the latching rounds that make sure an XDP relay has latched every call")
	relayNoFile := fs.Uint64("relay-nofile", 0, "run every relay with RLIMIT_NOFILE (soft and hard) at this, as under `ulimit -n N` (0: the benchmark's own, raised limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	modesSet := false
	fs.Visit(func(f *flag.Flag) { modesSet = modesSet || f.Name == "modes" })
	if *srtp && !modesSet {
		*modes = "" // the SRTP modes
	}
	cfg := media.Config{
		Modes:          splitList(*modes),
		Duration:       *dur,
		Warmup:         *warmup,
		Chunk:          *chunk,
		PacketsPerCall: *ppc,
		XtrunkBin:      *xtrunkBin,
		RTPEngineBin:   *rtpengine,
		NoStop:         *noStop,
		SRTP:           *srtp,
		Saturate:       *saturate,
		ProgStats:      *progStats,
		Rounds:         *rounds,
		RelayNoFile:    *relayNoFile,
		NoSettle:       *noSettle,
	}
	var err error
	if cfg.Calls, err = splitInts("calls", *calls); err != nil {
		return err
	}
	if cfg.XtrunkBin, err = orSelf(cfg.XtrunkBin); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	bar := newProgressLine(os.Stderr)
	cfg.Progress = bar.update

	ctx, stop := interruptible()
	defer stop()
	res, err := media.Run(ctx, cfg)
	bar.clear()
	if res == nil {
		return err
	}
	if werr := res.WriteTable(os.Stdout); werr != nil {
		return werr
	}
	if *reasons {
		fmt.Println()
		res.WriteReasons(os.Stdout)
	}
	jsonPath, pngPath := filepath.Join(*out, "results.json"), filepath.Join(*out, "media.png")
	if werr := res.WriteJSON(jsonPath); werr != nil {
		return werr
	}
	if werr := res.WritePNG(pngPath); werr != nil {
		return werr
	}
	fmt.Printf("\nwrote %s and %s (%.0f s)\n", jsonPath, pngPath, res.ElapsedS)
	if err != nil {
		return err
	}
	for _, m := range res.Modes {
		if m.Error != "" {
			return fmt.Errorf("mode %s failed: %s", m.Mode, m.Error)
		}
	}
	return nil
}

// interruptible is a context for a benchmark run that the first SIGINT or
// SIGTERM cancels (the run stops and cleans up); once it is, the signals'
// default action is back, so a second one exits at once.
func interruptible() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// splitInts parses a comma-separated list of integers ("100,1_000"); name
// is the flag's, for the error.
func splitInts(name, s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// orSelf is bin, or this executable where bin is empty.
func orSelf(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	return os.Executable()
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// progressLine draws the run's progress on one terminal line, or prints a
// line per finished step when stderr is not a terminal.
type progressLine struct {
	f    *os.File
	tty  bool
	last time.Time
	wide int
}

func newProgressLine(f *os.File) *progressLine {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return &progressLine{f: f, tty: err == nil}
}

func (p *progressLine) update(pr media.Progress) {
	if !p.tty {
		if pr.Done && pr.Step != nil {
			s := pr.Step
			fmt.Fprintf(p.f, "[%d/%d %s] %d calls: delivered %.0f of %.0f pps offered, loss %.3f %%, %s (%s)\n",
				pr.ModeIndex, pr.Modes, pr.Mode, pr.Calls, s.DeliveredPPS, s.OfferedPPS, s.LossPct, stepFigure(s), s.Status)
		}
		return
	}
	if !pr.Done && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 24
	fill := int(pr.Frac*width + 0.5)
	fill = min(max(fill, 0), width)
	line := fmt.Sprintf("[%d/%d %s] step %d/%d, %d calls: %-16s %s%s %3.0f%%",
		pr.ModeIndex, pr.Modes, pr.Mode, pr.StepIndex, pr.Steps, pr.Calls, pr.Phase,
		strings.Repeat("█", fill), strings.Repeat("░", width-fill), pr.Frac*100)
	if pr.Done && pr.Step != nil {
		line = fmt.Sprintf("[%d/%d %s] %d calls: delivered %.0f of %.0f pps, loss %.3f %%, %s (%s)",
			pr.ModeIndex, pr.Modes, pr.Mode, pr.Calls, pr.Step.DeliveredPPS, pr.Step.OfferedPPS, pr.Step.LossPct, stepFigure(pr.Step), pr.Step.Status)
		p.clear()
		fmt.Fprintln(p.f, line)
		return
	}
	n := len([]rune(line))
	pad := ""
	if p.wide > n {
		pad = strings.Repeat(" ", p.wide-n)
	}
	p.wide = n
	fmt.Fprint(p.f, "\r"+line+pad)
}

// stepFigure is a finished step's headline besides loss: p99 latency, or
// in --srtp (no latency) the relay's CPU and SRTP calls per core.
func stepFigure(s *media.Step) string {
	if s.LatencyP99us > 0 {
		return fmt.Sprintf("p99 %.0f µs", s.LatencyP99us)
	}
	f := fmt.Sprintf("relay CPU %.0f %%", s.RelayCPUPct)
	if s.SRTPCallsPerCore > 0 {
		f += fmt.Sprintf(", %.0f SRTP calls per core", s.SRTPCallsPerCore)
	}
	return f
}

func (p *progressLine) clear() {
	if p.tty && p.wide > 0 {
		fmt.Fprint(p.f, "\r"+strings.Repeat(" ", p.wide)+"\r")
		p.wide = 0
	}
}
