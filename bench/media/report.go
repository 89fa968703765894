package media

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/xtrunk/xtrunk/bench/internal/report"
)

// WriteTable prints the results as a table per mode, then the summary.
func (r *Results) WriteTable(w io.Writer) error {
	write := r.writeStepsTable
	if r.SRTP {
		write = r.writeSRTPTable
	}
	if err := write(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d pps per call and direction, %d-byte RTP; %s per step; %d CPUs, kernel %s\n",
		r.PacketsPerCall, RTPBytes, r.Duration, r.Host.CPUs, r.Host.Kernel)
	if r.SRTP {
		fmt.Fprintf(w, "SRTP: caller ⇄ relay SDES %s (%d-byte SRTP), relay ⇄ callee plain RTP; no latency (the stamps are encrypted)\n",
			r.SRTPSuite, SRTPBytes)
	}
	for _, m := range r.Modes {
		if r.Saturate {
			continue // writeSaturation has these
		}
		line := fmt.Sprintf("%-10s most calls at < %g %% loss: %s", m.Mode, CleanLoss, report.CountOrNone(m.MaxCleanCalls))
		if m.MaxCleanCalls > 0 {
			line += fmt.Sprintf(" (%s pps)", kpps(m.MaxCleanPPS))
		}
		line += fmt.Sprintf("; peak delivered at < %g %% loss: %s pps", CleanLoss, kpps(m.PeakPPS))
		if m.BackgroundCPUPct >= 10 {
			line += fmt.Sprintf("; WARNING: the machine was %.0f %% busy before the mode started", m.BackgroundCPUPct)
		}
		if r.SRTP && m.SRTPCallsPerCore > 0 {
			line += fmt.Sprintf("; SRTP calls per core %.0f (at %d calls)", m.SRTPCallsPerCore, m.MaxCleanCalls)
		}
		if m.RelayNoFile > 0 {
			line += fmt.Sprintf("; relay RLIMIT_NOFILE %d, %d fds and %.1f MB RSS before calls", m.RelayNoFile, m.RelayBaseFDs, float64(m.RelayBaseRSSKB)/1024)
		}
		if m.Stopped != "" {
			line += "; stopped: " + m.Stopped
		}
		fmt.Fprintln(w, line)
		if m.Error != "" {
			fmt.Fprintf(w, "%-10s error: %s\n", m.Mode, report.FirstLine(m.Error))
		}
	}
	r.writeSaturation(w)
	s := r.Summary
	var parts []string
	if s.SRTPCommonCalls > 0 {
		var kv []string
		for _, m := range r.Modes {
			kv = append(kv, fmt.Sprintf("%s %.0f", m.Mode, s.SRTPCallsPerCoreAt[m.Mode]))
		}
		parts = append(parts, fmt.Sprintf("SRTP calls per core at %d calls (the most every mode carried): %s",
			s.SRTPCommonCalls, strings.Join(kv, ", ")))
	}
	if s.XDPOverCeiling > 0 {
		parts = append(parts, fmt.Sprintf("xdp/ceiling peak pps %.2f (target ≥ 0.80)", s.XDPOverCeiling))
	}
	if s.XDPOverRTPEngine > 0 {
		parts = append(parts, fmt.Sprintf("xdp/rtpengine pps at < %g %% loss %.1f× (target ≥ 8×)", CleanLoss, s.XDPOverRTPEngine))
	}
	if s.XDPOverUserspace > 0 {
		parts = append(parts, fmt.Sprintf("xdp/userspace %.1f×", s.XDPOverUserspace))
	}
	if s.At10k != nil {
		t := fmt.Sprintf("xdp at 10k calls: loss %s %%, p99 %s µs", report.Pct(s.At10k.LossPct), latStr(s.At10k.LatencyP99us, s.At10k.Delivered))
		if s.AddedP99us != nil {
			t += fmt.Sprintf(" (%+.0f µs over ceiling)", *s.AddedP99us)
		}
		if s.Held10k {
			t += ": held (< 0.01 %)"
		} else {
			t += ": not held"
		}
		parts = append(parts, t)
	}
	if t := s.socketlessLine(); t != "" {
		parts = append(parts, t)
	}
	if len(parts) > 0 {
		fmt.Fprintln(w)
		for _, p := range parts {
			fmt.Fprintln(w, p)
		}
	}
	return nil
}

// writeStepsTable is the table of a plain-RTP run: one row per mode and
// step.
func (r *Results) writeStepsTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tcalls\toffered pps\tsent pps\tdelivered pps\tloss %\tp50 µs\tp99 µs\trelay CPU %\tsoftirq %\tbusy %\tRSS B/call\tstatus\t")
	for _, m := range r.Modes {
		name := r.modeName(m)
		for _, s := range m.Steps {
			offered := kpps(s.OfferedPPS)
			if r.Saturate {
				offered = "max"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t\n",
				name, s.Calls, offered, kpps(s.SentPPS), kpps(s.DeliveredPPS), report.Pct(s.LossPct),
				latStr(s.LatencyP50us, s.Delivered), latStr(s.LatencyP99us, s.Delivered),
				s.RelayCPUPct, s.SoftirqCPUPct, s.BusyCPUPct, rssPerCall(s), s.Status)
		}
		if m.Error != "" {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t\terror\t\n", m.Mode)
		}
	}
	return tw.Flush()
}

// writeSRTPTable is the table of an --srtp run: no latency, both
// directions' loss (to the callee the relay decrypts, to the caller it
// encrypts) and SRTP calls per core.
func (r *Results) writeSRTPTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tcalls\toffered pps\tsent pps\tdelivered pps\tloss %\tdecrypt loss %\tencrypt loss %\trelay CPU %\tsoftirq %\tbusy %\tSRTP calls/core\tstatus\t")
	for _, m := range r.Modes {
		for _, s := range m.Steps {
			per := "-"
			if s.SRTPCallsPerCore > 0 {
				per = fmt.Sprintf("%.0f", s.SRTPCallsPerCore)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t\n",
				m.Mode, s.Calls, kpps(s.OfferedPPS), kpps(s.SentPPS), kpps(s.DeliveredPPS), report.Pct(s.LossPct),
				report.Pct(s.ToCallee.LossPct), report.Pct(s.ToCaller.LossPct),
				s.RelayCPUPct, s.SoftirqCPUPct, s.BusyCPUPct, per, s.Status)
		}
		if m.Error != "" {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\t\terror\t\n", m.Mode)
		}
	}
	return tw.Flush()
}

// WriteReasons prints the XDP exit reasons per step of the xdp mode.
func (r *Results) WriteReasons(w io.Writer) {
	for _, mode := range []string{ModeXDP, ModeXDPSocketless} {
		if m := r.mode(mode); m != nil {
			writeModeReasons(w, m)
		}
	}
}

// writeModeReasons prints one XDP mode's exit reasons per step.
func writeModeReasons(w io.Writer, m *ModeResult) {
	for _, s := range m.Steps {
		if len(s.XDPReasons) == 0 {
			continue
		}
		keys := make([]string, 0, len(s.XDPReasons))
		for k := range s.XDPReasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, fmt.Sprintf("%s=%d", k, s.XDPReasons[k]))
		}
		fmt.Fprintf(w, "%s %6d calls: %s\n", m.Mode, s.Calls, strings.Join(kv, " "))
	}
}

// modeName is a mode's name in the table, with its round in a run of
// several rounds.
func (r *Results) modeName(m ModeResult) string {
	for _, o := range r.Modes {
		if o.Round > 1 {
			return fmt.Sprintf("%s#%d", m.Mode, m.Round)
		}
	}
	return m.Mode
}

func kpps(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func latStr(us float64, n uint64) string {
	if n == 0 {
		return "-"
	}
	if us >= 10000 {
		return fmt.Sprintf("%.0fk", us/1000)
	}
	return fmt.Sprintf("%.0f", us)
}
