package media

import (
	"time"

	"github.com/xtrunk/xtrunk/bench/internal/report"
)

// Results is a whole run: what results.json holds.
type Results struct {
	Started  time.Time `json:"started"`
	Host     Host      `json:"host"`
	Duration string    `json:"step_duration"`
	Warmup   string    `json:"warmup"`
	Calls    []int     `json:"calls"`
	// PacketsPerCall is each call's packet rate per direction.
	PacketsPerCall int `json:"packets_per_call"`
	// FDLimit is RLIMIT_NOFILE (hard) the relays ran with, and
	// MaxRelayCalls the calls that leaves one relay process.
	FDLimit       uint64       `json:"fd_limit"`
	MaxRelayCalls int          `json:"max_relay_calls"`
	Modes         []ModeResult `json:"modes"`
	Summary       Summary      `json:"summary"`
	ElapsedS      float64      `json:"elapsed_s"`
	Generator     string       `json:"generator"`
	// SRTP: every call's customer leg (the caller's) was SDES-SRTP with
	// SRTPSuite, its carrier leg plain RTP (--srtp).
	SRTP      bool   `json:"srtp,omitempty"`
	SRTPSuite string `json:"srtp_suite,omitempty"`
	// Saturate: the generators sent back to back (--saturate).
	Saturate bool `json:"saturate,omitempty"`
	// ProgStats: BPF run-time statistics were on (--prog-stats).
	ProgStats bool `json:"prog_stats,omitempty"`
}

// Host describes the machine.
type Host struct {
	Kernel    string `json:"kernel"`
	CPUs      int    `json:"cpus"`
	Model     string `json:"cpu_model"`
	RTPEngine string `json:"rtpengine_version,omitempty"`
}

// ModeResult is one mode's steps.
type ModeResult struct {
	Mode string `json:"mode"`
	// Round is the 1-based round of a run with Config.Rounds.
	Round int    `json:"round"`
	Steps []Step `json:"steps"`
	// MaxCleanCalls is the most calls carried with < 0.1 % loss at the
	// full offered rate (status "ok"); 0 if none.
	MaxCleanCalls int `json:"max_clean_calls"`
	// MaxCleanPPS is the delivered rate of that step.
	MaxCleanPPS float64 `json:"max_clean_pps"`
	// PeakPPS is the highest delivered rate of any step with < 0.1 % loss,
	// including steps the generators could not fully offer: with those,
	// the whole machine was saturated, and this is what it moved.
	PeakPPS float64 `json:"peak_pps"`
	// BackgroundCPUPct is the machine's busy time (percent of one CPU)
	// measured for a second before the mode started: other load on the
	// machine skews every figure.
	BackgroundCPUPct float64 `json:"background_cpu_pct"`
	// SRTPCallsPerCore is the step's SRTPCallsPerCore at MaxCleanCalls
	// (--srtp): measured at the most calls carried, where the relay's
	// fixed costs weigh least.
	SRTPCallsPerCore float64 `json:"srtp_calls_per_core,omitempty"`
	// SRTPChecked: before the first step, one call's packets went through
	// the relay both ways and came out decrypted toward the callee (byte
	// for byte) and encrypted with the key of the relay's answer toward
	// the caller (--srtp).
	SRTPChecked bool `json:"srtp_checked,omitempty"`
	// RelayNoFile and RelayNoFileHard are the relay process's
	// RLIMIT_NOFILE as /proc/PID/limits showed it (--relay-nofile sets
	// it), RelayBaseFDs its open descriptors and RelayBaseRSSKB its VmRSS
	// before any call (none for ceiling).
	RelayNoFile     uint64 `json:"relay_nofile,omitempty"`
	RelayNoFileHard uint64 `json:"relay_nofile_hard,omitempty"`
	RelayBaseFDs    int    `json:"relay_base_fds,omitempty"`
	RelayBaseRSSKB  uint64 `json:"relay_base_rss_kb,omitempty"`
	// Stopped says why the steps ended early, if they did.
	Stopped string `json:"stopped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Step statuses.
const (
	StatusOK    = "ok"    // < 0.1 % loss at the offered rate
	StatusLoss  = "loss"  // >= 0.1 % loss
	StatusShort = "short" // generators sent < 99 % of the offered rate: the machine is saturated
	StatusSat   = "sat"   // --saturate: offered more than the lab moves; delivered is the result
)

// Step is one mode at one number of calls.
type Step struct {
	Calls        int     `json:"calls"`
	Status       string  `json:"status"`
	DurationS    float64 `json:"duration_s"`
	OfferedPPS   float64 `json:"offered_pps"`
	SentPPS      float64 `json:"sent_pps"`
	DeliveredPPS float64 `json:"delivered_pps"`
	Sent         uint64  `json:"sent"`
	Delivered    uint64  `json:"delivered"`
	Lost         int64   `json:"lost"`
	LossPct      float64 `json:"loss_pct"`
	// One-way latency, generator to sink (both in XDP, same clock), in µs:
	// the upper edge of the histogram bucket (1 µs wide below 1 ms).
	LatencyP50us  float64 `json:"latency_p50_us"`
	LatencyP99us  float64 `json:"latency_p99_us"`
	LatencyP999us float64 `json:"latency_p999_us"`
	// CPU in percent of one CPU (the machine has Host.CPUs): the relay's
	// process (utime+stime; none for ceiling), softirq time on all CPUs
	// (where XDP, the veths and the kernel's UDP receive run), and all
	// non-idle time.
	RelayCPUPct   float64 `json:"relay_cpu_pct"`
	SoftirqCPUPct float64 `json:"softirq_cpu_pct"`
	BusyCPUPct    float64 `json:"busy_cpu_pct"`
	// Per direction: from the caller's generator to the callee's sink
	// (through the customer leg: SRTP in --srtp, decrypted by the relay),
	// and back (encrypted by the relay in --srtp).
	ToCallee Flow `json:"caller_to_callee"`
	ToCaller Flow `json:"callee_to_caller"`
	// SRTPCallsPerCore is Calls / (RelayCPUPct / 100): SRTP calls one CPU
	// of the relay process carries, for steps with < 0.1 % loss (--srtp).
	SRTPCallsPerCore float64 `json:"srtp_calls_per_core,omitempty"`
	// SRTPPrepareS is how long encrypting the caller's packets for the
	// step took, before it was measured (--srtp).
	SRTPPrepareS float64 `json:"srtp_prepare_s,omitempty"`
	// Consistency of the counts: per-call sink counts summed (must equal
	// Delivered), call directions that received nothing during the step,
	// and frames at the sinks' call ports that were not RTP.
	PerCallSum  uint64 `json:"per_call_sum"`
	SilentCalls int    `json:"silent_call_directions"`
	Bad         uint64 `json:"bad"`
	// SetupS is how long NG offer/answer took for the calls new in this
	// step.
	SetupS float64 `json:"setup_s"`
	// RelayRSSKB is the relay's VmRSS at the end of the step, with Calls
	// calls set up; RelayRSSPerCallB is (RelayRSSKB − the mode's
	// RelayBaseRSSKB) / Calls in bytes (BPF maps are kernel memory, not
	// in it); RelayFDs its open descriptors then.
	RelayRSSKB       uint64  `json:"relay_rss_kb,omitempty"`
	RelayRSSPerCallB float64 `json:"relay_rss_per_call_bytes,omitempty"`
	RelayFDs         int     `json:"relay_fds,omitempty"`
	// XDPReasons are the XDP program's exits during the step, by reason
	// (xdp mode: xtrunk_relay_xdp_packets_total).
	XDPReasons map[string]uint64 `json:"xdp_reasons,omitempty"`
	// NsPerRun is the mode's XDP forwarding program's cost per run during
	// the step (run_time_ns / run_cnt, --prog-stats), and ProgRuns its
	// runs.
	NsPerRun float64 `json:"ns_per_run,omitempty"`
	ProgRuns uint64  `json:"prog_runs,omitempty"`
	// RelayCounters are what the xtrunk relay's userspace and AF_XDP
	// counters (relayCounterPrefixes, keyed as /metrics exposes them)
	// grew by during the step: where the packets XDP passed up went.
	RelayCounters map[string]uint64 `json:"relay_counters,omitempty"`
	// SettleRounds are the rounds of one packet per call and direction
	// sent after the warm-up until the XDP relay passed none up to
	// userspace (every call latched), and SettleUnlatched what the last
	// round still passed up (0: settled); see runner.settle.
	SettleRounds    int    `json:"settle_rounds,omitempty"`
	SettleUnlatched uint64 `json:"settle_unlatched,omitempty"`
}

// Flow is one direction of a step.
type Flow struct {
	Sent      uint64  `json:"sent"`
	Delivered uint64  `json:"delivered"`
	LossPct   float64 `json:"loss_pct"`
}

func newFlow(sent, delivered uint64) Flow {
	f := Flow{Sent: sent, Delivered: delivered}
	if sent > 0 && delivered < sent {
		f.LossPct = float64(sent-delivered) / float64(sent) * 100
	}
	return f
}

// Summary holds the figures the issue asks for.
type Summary struct {
	// XDPOverCeiling is PeakPPS(xdp) / PeakPPS(ceiling).
	XDPOverCeiling float64 `json:"xdp_over_ceiling_pps,omitempty"`
	// XDPOverRTPEngine is MaxCleanPPS(xdp) / MaxCleanPPS(rtpengine); with
	// XDPOverRTPEnginePeak the same for PeakPPS.
	XDPOverRTPEngine     float64 `json:"xdp_over_rtpengine_pps,omitempty"`
	XDPOverRTPEnginePeak float64 `json:"xdp_over_rtpengine_peak_pps,omitempty"`
	XDPOverUserspace     float64 `json:"xdp_over_userspace_pps,omitempty"`
	// At10k is the xdp step with 10,000 calls, if it ran.
	At10k *Step `json:"xdp_at_10k,omitempty"`
	// Held10k: 10,000 calls with < 0.01 % loss at the full offered rate.
	Held10k bool `json:"xdp_10k_under_0.01pct_loss"`
	// AddedP99us is the xdp p99 latency at 10k calls minus the ceiling's
	// at the same step: what the relay adds over a bare redirect.
	AddedP99us *float64 `json:"xdp_added_p99_us_at_10k,omitempty"`
	// SRTPCommonCalls is the most calls every mode of an --srtp run
	// carried (status ok), and SRTPCallsPerCoreAt each mode's SRTP calls
	// per core there: the like-for-like comparison (calls per core rises
	// with load, as the relays' fixed and per-wakeup costs spread).
	SRTPCommonCalls    int                `json:"srtp_common_calls,omitempty"`
	SRTPCallsPerCoreAt map[string]float64 `json:"srtp_calls_per_core_at_common_calls,omitempty"`
	// Saturation holds each round's delivered rates at saturation
	// (--saturate).
	Saturation []SatRound `json:"saturation,omitempty"`
	// The socketless relay (mode xdp-socketless): the most calls a step
	// set up in its one process, its RLIMIT_NOFILE, its step at 10,000
	// calls and whether that held < 0.01 % loss at the full offered rate.
	SocketlessCallsSetUp int    `json:"socketless_calls_set_up,omitempty"`
	SocketlessNoFile     uint64 `json:"socketless_relay_nofile,omitempty"`
	SocketlessAt10k      *Step  `json:"socketless_at_10k,omitempty"`
	SocketlessHeld10k    bool   `json:"socketless_10k_under_0.01pct_loss,omitempty"`
}

// srtpCommon finds the most calls every mode carried with status ok and
// the SRTP calls per core of each there.
func (r *Results) srtpCommon() (int, map[string]float64) {
	if len(r.Modes) == 0 {
		return 0, nil
	}
	for i := len(r.Calls) - 1; i >= 0; i-- {
		n := r.Calls[i]
		at := map[string]float64{}
		for j := range r.Modes {
			st := r.Modes[j].step(n)
			if st == nil || st.Status != StatusOK || st.SRTPCallsPerCore == 0 {
				at = nil
				break
			}
			at[r.Modes[j].Mode] = st.SRTPCallsPerCore
		}
		if at != nil {
			return n, at
		}
	}
	return 0, nil
}

// WriteJSON writes r to path.
func (r *Results) WriteJSON(path string) error {
	return report.Save("media", path, r)
}

// ReadJSON reads results.json.
func ReadJSON(path string) (*Results, error) {
	return report.Load[Results]("media", path)
}

func (r *Results) mode(m string) *ModeResult {
	for i := range r.Modes {
		if r.Modes[i].Mode == m {
			return &r.Modes[i]
		}
	}
	return nil
}

func (m *ModeResult) step(calls int) *Step {
	if m == nil {
		return nil
	}
	for i := range m.Steps {
		if m.Steps[i].Calls == calls {
			return &m.Steps[i]
		}
	}
	return nil
}

// finish computes the per-mode and summary figures.
func (r *Results) finish() {
	for i := range r.Modes {
		m := &r.Modes[i]
		m.MaxCleanCalls, m.MaxCleanPPS, m.PeakPPS, m.SRTPCallsPerCore = 0, 0, 0, 0
		for _, s := range m.Steps {
			if s.Status == StatusOK && s.Calls > m.MaxCleanCalls {
				m.MaxCleanCalls, m.MaxCleanPPS, m.SRTPCallsPerCore = s.Calls, s.DeliveredPPS, s.SRTPCallsPerCore
			}
			if s.LossPct < CleanLoss && s.DeliveredPPS > m.PeakPPS {
				m.PeakPPS = s.DeliveredPPS
			}
		}
	}
	ratio := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return a / b
	}
	x, c, re, us := r.mode(ModeXDP), r.mode(ModeCeiling), r.mode(ModeRTPEngine), r.mode(ModeUserspace)
	var s Summary
	if r.Saturate {
		// Loss is the point of a saturation run: the targets below do
		// not apply.
		r.Summary = Summary{Saturation: r.satRounds()}
		return
	}
	if r.SRTP {
		// The targets below are for plain RTP through XDP; an SRTP call
		// leaves XDP by design.
		x, c, re, us = nil, nil, nil, nil
		s.SRTPCommonCalls, s.SRTPCallsPerCoreAt = r.srtpCommon()
	}
	if x != nil && c != nil {
		s.XDPOverCeiling = ratio(x.PeakPPS, c.PeakPPS)
	}
	if x != nil && re != nil {
		s.XDPOverRTPEngine = ratio(x.MaxCleanPPS, re.MaxCleanPPS)
		s.XDPOverRTPEnginePeak = ratio(x.PeakPPS, re.PeakPPS)
	}
	if x != nil && us != nil {
		s.XDPOverUserspace = ratio(x.MaxCleanPPS, us.MaxCleanPPS)
	}
	if st := x.step(10000); st != nil {
		cp := *st
		s.At10k = &cp
		s.Held10k = st.LossPct < 0.01 && st.SentPPS >= MinSentRatio*st.OfferedPPS
		if cs := c.step(10000); cs != nil && cs.Delivered > 0 && st.Delivered > 0 {
			d := st.LatencyP99us - cs.LatencyP99us
			s.AddedP99us = &d
		}
	}
	r.socketlessSummary(&s)
	r.Summary = s
}
