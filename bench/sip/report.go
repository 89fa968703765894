package sip

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/xtrunk/xtrunk/bench/internal/report"
)

// WriteTable prints the steps of every target, then the summary.
func (r *Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tCPS\tachieved\tattempted\tsucceeded\tfailed\tfailed %\tp50 ms\tp99 ms\tretrans\tsip CPU %\tmedia CPU %\tsip µs/call\tmedia µs/call\tSIPp CPU %\tbusy %\tstatus\t")
	for _, t := range r.Targets {
		for _, s := range t.Steps {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n",
				t.Target, s.OfferedCPS, s.AchievedCPS, s.Attempted, s.Succeeded, s.Failed, report.Pct(s.FailPct),
				msStr(s.SetupP50ms, s.Answered), msStr(s.SetupP99ms, s.Answered), s.Retransmissions,
				s.SIPCPUPct, s.MediaCPUPct, s.SIPCPUusPerCall, s.MediaCPUusPerCall, s.SIPpCPUPct, s.BusyCPUPct, s.Status)
		}
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\terror\t\n", t.Target)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s per step, %s hold; %s\n", fmtS(r.DurationS), fmtS(r.HoldS), r.Scenario)
	fmt.Fprintf(w, "setup latency: %s\n", r.Latency)
	fmt.Fprintf(w, "%d CPUs, kernel %s; xtrunk relay dataplane %s", r.Host.CPUs, r.Host.Kernel, r.Dataplane)
	if r.Host.Kamailio != "" {
		fmt.Fprintf(w, "; %s, rtpengine %s", r.Host.Kamailio, r.Host.RTPEngine)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	for _, t := range r.Targets {
		line := fmt.Sprintf("%-9s highest CPS with < %g %% failed calls: %s", t.Target, CleanFailPct, report.CountOrNone(t.MaxCleanCPS))
		if slices.Contains(r.Summary.Capped, t.Target) {
			line += " (held every step: more is untested)"
		}
		if t.CDRs > 0 {
			line += fmt.Sprintf("; %d CDRs (%d completed)", t.CDRs, t.CDRsCompleted)
		}
		if t.BackgroundCPUPct >= 10 {
			line += fmt.Sprintf("; WARNING: the machine was %.0f %% busy before the target started", t.BackgroundCPUPct)
		}
		if t.Stopped != "" {
			line += "; stopped: " + t.Stopped
		}
		fmt.Fprintln(w, line)
		for _, n := range t.Notes {
			fmt.Fprintf(w, "%-9s note: %s\n", t.Target, report.FirstLine(n))
		}
		if t.Error != "" {
			fmt.Fprintf(w, "%-9s error: %s\n", t.Target, report.FirstLine(t.Error))
		}
	}
	if s := r.Summary; s.XtrunkOverKamailio > 0 {
		fmt.Fprintf(w, "\nxtrunk/kamailio highest clean CPS: %.2f×\n", s.XtrunkOverKamailio)
	}
	return nil
}

func msStr(v float64, n int) string {
	switch {
	case n == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtS(s float64) string {
	if s == float64(int(s)) {
		return fmt.Sprintf("%d s", int(s))
	}
	return fmt.Sprintf("%.1f s", s)
}
