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
		fmt.Fprintf(w, "; %s", r.Host.Kamailio)
	}
	if r.Host.RTPEngine != "" {
		fmt.Fprintf(w, ", rtpengine %s", r.Host.RTPEngine)
	}
	if r.RTP {
		fmt.Fprintf(w, "; every call carried %d RTP packets PBX → carrier", rtpPackets)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	w9 := 9
	for _, t := range r.Targets {
		w9 = max(w9, len(t.Target))
	}
	for _, t := range r.Targets {
		line := fmt.Sprintf("%-*s highest CPS with < %g %% failed calls: %s", w9, t.Target, CleanFailPct, report.CountOrNone(t.MaxCleanCPS))
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
			fmt.Fprintf(w, "%-*s note: %s\n", w9, t.Target, report.FirstLine(n))
		}
		if t.Error != "" {
			fmt.Fprintf(w, "%-*s error: %s\n", w9, t.Target, report.FirstLine(t.Error))
		}
	}
	if s := r.Summary; s.XtrunkOverKamailio > 0 || s.RelayOverRTPEngine > 0 {
		fmt.Fprintln(w)
		if s.XtrunkOverKamailio > 0 {
			fmt.Fprintf(w, "xtrunk/kamailio highest clean CPS: %.2f×\n", s.XtrunkOverKamailio)
		}
		if s.RelayOverRTPEngine > 0 {
			fmt.Fprintf(w, "kamailio-xtrunk/kamailio (xtrunk relay vs rtpengine under Kamailio) highest clean CPS: %.2f×\n", s.RelayOverRTPEngine)
		}
	}
	r.writeRelayCPU(w)
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

// writeRelayCPU prints, for each CPS step that both kamailio targets
// held, the relays' CPU per call (xtrunk relay vs rtpengine under the
// same Kamailio) and its ratio.
func (r *Results) writeRelayCPU(w io.Writer) {
	k, x := r.target(TargetKamailio), r.target(TargetKamailioXtrunk)
	if k == nil || x == nil {
		return
	}
	header := false
	for _, ks := range k.Steps {
		for _, xs := range x.Steps {
			if xs.OfferedCPS != ks.OfferedCPS || xs.Status != StatusOK || ks.Status != StatusOK || ks.MediaCPUusPerCall <= 0 {
				continue
			}
			if !header {
				fmt.Fprintln(w, "\nrelay CPU per call under Kamailio, steps both held (xtrunk relay / rtpengine):")
				header = true
			}
			fmt.Fprintf(w, "  %5d CPS: %5.0f µs / %5.0f µs = %.2f×\n", ks.OfferedCPS,
				xs.MediaCPUusPerCall, ks.MediaCPUusPerCall, xs.MediaCPUusPerCall/ks.MediaCPUusPerCall)
		}
	}
}
