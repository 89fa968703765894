package sip

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// WriteTable prints the steps of every target, then the summary.
func (r *Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tCPS\tachieved\tattempted\tsucceeded\tfailed\tfailed %\tp50 ms\tp99 ms\tretrans\tsip CPU %\tmedia CPU %\tSIPp CPU %\tbusy %\tstatus\t")
	for _, t := range r.Targets {
		for _, s := range t.Steps {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n",
				t.Target, s.OfferedCPS, s.AchievedCPS, s.Attempted, s.Succeeded, s.Failed, pctStr(s.FailPct),
				msStr(s.SetupP50ms, s.Answered), msStr(s.SetupP99ms, s.Answered), s.Retransmissions,
				s.SIPCPUPct, s.MediaCPUPct, s.SIPpCPUPct, s.BusyCPUPct, s.Status)
		}
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t\t\t\terror\t\n", t.Target)
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
		line := fmt.Sprintf("%-9s highest CPS with < %g %% failed calls: %s", t.Target, CleanFailPct, cpsStr(t.MaxCleanCPS))
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
			fmt.Fprintf(w, "%-9s note: %s\n", t.Target, firstLine(n))
		}
		if t.Error != "" {
			fmt.Fprintf(w, "%-9s error: %s\n", t.Target, firstLine(t.Error))
		}
	}
	if s := r.Summary; s.XtrunkOverKamailio > 0 {
		fmt.Fprintf(w, "\nxtrunk/kamailio highest clean CPS: %.2f×\n", s.XtrunkOverKamailio)
	}
	return nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

func pctStr(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 0.001:
		return "<0.001"
	case v < 1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1f", v)
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

func cpsStr(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d", n)
}

func fmtS(s float64) string {
	if s == float64(int(s)) {
		return fmt.Sprintf("%d s", int(s))
	}
	return fmt.Sprintf("%.1f s", s)
}
