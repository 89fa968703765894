package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/bench/sip"
)

// runBenchSIP runs the signalling CPS benchmark in namespace labs and
// prints the table (stdout) and, with --json, writes the results. Ctrl-C
// stops it and cleans up; a second Ctrl-C exits at once.
func runBenchSIP(args []string) error {
	fs := flag.NewFlagSet("bench sip", flag.ContinueOnError)
	targets := fs.String("target", strings.Join(sip.AllTargets, ","), "targets to run, in order: xtrunk, kamailio, kamailio-xtrunk (Kamailio driving xtrunk relay)")
	cps := fs.String("cps", joinInts(sip.DefaultCPS), "offered calls per second per step, ascending")
	dur := fs.Duration("duration", 20*time.Second, "how long each step places calls at its rate")
	hold := fs.Duration("hold", time.Second, "call duration between ACK and BYE")
	settle := fs.Duration("settle", 2*time.Second, "pause after a step's last call before the next step (then up to 10s more until the relay holds no call)")
	recvTimeout := fs.Duration("recv-timeout", 10*time.Second, "a call waiting longer than this for an expected message fails")
	dataplane := fs.String("dataplane", sip.DataplaneXDP, "xtrunk relay dataplane: xdp or userspace")
	children := fs.Int("kamailio-children", 4, "Kamailio UDP worker processes")
	threads := fs.Int("rtpengine-threads", 2, "rtpengine worker threads")
	logLevel := fs.String("log-level", "warn", "log level of the edge processes: warn, info or debug")
	jsonPath := fs.String("json", "", "also write the results as JSON to this file")
	workDir := fs.String("workdir", "", "keep the store, configs, scenarios and SIPp's files here (default: a temporary directory, removed)")
	xtrunkBin := fs.String("xtrunk", "", "xtrunk binary to run as relay and sip (default: this one)")
	sippBin := fs.String("sipp", "sipp", "SIPp binary")
	kamailioBin := fs.String("kamailio", "kamailio", "Kamailio binary")
	kamailioModules := fs.String("kamailio-modules", sip.DefaultKamailioModules, "Kamailio module directory")
	rtpengine := fs.String("rtpengine", "rtpengine", "rtpengine binary")
	rtp := fs.Bool("rtp", false, "every call sends 0.8 s of G.711 through the relay during its hold (SIPp play_pcap_audio, a thread per call: low rates only)")
	noStop := fs.Bool("no-stop", false, "run every step, even past 1 % failed calls or a falling-behind edge")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := sip.Config{
		Targets:          splitList(*targets),
		Duration:         *dur,
		Hold:             *hold,
		Settle:           *settle,
		RecvTimeout:      *recvTimeout,
		Dataplane:        *dataplane,
		KamailioChildren: *children,
		RTPEngineThreads: *threads,
		LogLevel:         *logLevel,
		XtrunkBin:        *xtrunkBin,
		SIPpBin:          *sippBin,
		KamailioBin:      *kamailioBin,
		KamailioModules:  *kamailioModules,
		RTPEngineBin:     *rtpengine,
		WorkDir:          *workDir,
		NoStop:           *noStop,
		RTP:              *rtp,
	}
	var err error
	if cfg.CPS, err = splitInts("cps", *cps); err != nil {
		return err
	}
	if cfg.XtrunkBin, err = orSelf(cfg.XtrunkBin); err != nil {
		return err
	}
	cfg.Progress = func(p sip.Progress) {
		if p.Done && p.Step != nil {
			s := p.Step
			fmt.Fprintf(os.Stderr, "[%d/%d %s] %d CPS: achieved %.1f, %d of %d calls failed (%.3f %%), setup p50 %.0f ms p99 %.0f ms, edge CPU %.0f %% (%s)\n",
				p.TargetIndex, p.Targets, p.Target, p.CPS, s.AchievedCPS, s.Failed, s.Attempted, s.FailPct,
				s.SetupP50ms, s.SetupP99ms, s.EdgeCPUPct, s.Status)
		}
	}

	ctx, stop := interruptible()
	defer stop()
	t0 := time.Now()
	res, err := sip.Run(ctx, cfg)
	if res == nil {
		return err
	}
	if werr := res.WriteTable(os.Stdout); werr != nil {
		return werr
	}
	if *jsonPath != "" {
		if werr := res.WriteJSON(*jsonPath); werr != nil {
			return werr
		}
		fmt.Printf("\nwrote %s (%.0f s)\n", *jsonPath, time.Since(t0).Seconds())
	}
	if err != nil {
		return err
	}
	for _, t := range res.Targets {
		if t.Error != "" {
			return fmt.Errorf("target %s failed: %s", t.Target, t.Error)
		}
	}
	return nil
}
