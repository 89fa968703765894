package sip

import (
	"time"

	"github.com/xtrunk/xtrunk/bench/internal/report"
)

// Results is one run.
type Results struct {
	Started   time.Time      `json:"started"`
	Host      Host           `json:"host"`
	DurationS float64        `json:"step_duration_s"`
	HoldS     float64        `json:"hold_s"`
	CPS       []int          `json:"cps"`
	Dataplane string         `json:"xtrunk_dataplane"`
	RTP       bool           `json:"rtp,omitempty"` // calls carried media (Config.RTP)
	Scenario  string         `json:"scenario"`
	Latency   string         `json:"latency_method"`
	CPUMethod string         `json:"cpu_method"`
	FDLimit   uint64         `json:"rlimit_nofile"`
	Targets   []TargetResult `json:"targets"`
	Summary   Summary        `json:"summary"`
	ElapsedS  float64        `json:"elapsed_s"`
}

// Host describes the machine and the peers' versions.
type Host struct {
	Kernel    string `json:"kernel"`
	CPUs      int    `json:"cpus"`
	Model     string `json:"cpu_model"`
	SIPp      string `json:"sipp_version,omitempty"`
	Kamailio  string `json:"kamailio_version,omitempty"`
	RTPEngine string `json:"rtpengine_version,omitempty"`
}

// TargetResult is one target's steps.
type TargetResult struct {
	Target string `json:"target"`
	Steps  []Step `json:"steps"`
	// MaxCleanCPS is the highest offered CPS held: < 0.1 % failed calls,
	// answered at ≥ 98 % of the offered rate (status ok); 0 if none.
	MaxCleanCPS int `json:"max_clean_cps"`
	// BackgroundCPUPct is the machine's busy time (percent of one CPU)
	// measured for a second before the target's edge started: other load
	// on the machine skews every figure.
	BackgroundCPUPct float64 `json:"background_cpu_pct"`
	// CDRs and CDRsCompleted are the CDRs xtrunk wrote over the whole
	// run (xtrunk target), read from its store after it stopped.
	CDRs          int    `json:"cdrs,omitempty"`
	CDRsCompleted int    `json:"cdrs_completed,omitempty"`
	Stopped       string `json:"stopped,omitempty"`
	// Notes are things worth knowing that did not fail the target, e.g.
	// an edge process that had to be killed at the end.
	Notes []string `json:"notes,omitempty"`
	Error string   `json:"error,omitempty"`
}

// Step statuses.
const (
	StatusOK    = "ok"    // < 0.1 % failed, answered at ≥ 98 % of the offered CPS
	StatusFail  = "fail"  // ≥ 0.1 % of the calls failed
	StatusShort = "short" // calls answered at < 98 % of the offered CPS
)

// Step is one target at one offered rate.
type Step struct {
	OfferedCPS int `json:"offered_cps"`
	// AchievedCPS is the rate the calls were answered at (first to last
	// 200 received).
	AchievedCPS float64 `json:"achieved_cps"`
	Status      string  `json:"status"`
	// Attempted are the calls SIPp placed (it places OfferedCPS ×
	// duration unless the run was cut short), Succeeded those whose
	// whole scenario completed, Failed the rest (SIPp's failures and
	// calls still open when it stopped), Answered those that got a 200.
	Attempted int     `json:"attempted"`
	Succeeded int     `json:"succeeded"`
	Failed    int     `json:"failed"`
	FailPct   float64 `json:"failed_pct"`
	Answered  int     `json:"answered"`
	// FailReasons are SIPp's failure counters (Failed*(C) without the
	// prefix), plus "Unfinished" for calls open when SIPp stopped.
	FailReasons map[string]int `json:"fail_reasons,omitempty"`
	// ErrorSample is the first lines of SIPp's error log, if any.
	ErrorSample []string `json:"error_sample,omitempty"`
	// Setup latency of the answered calls, INVITE first sent → 200
	// received, ms, from LatencySource: "wire" (kernel timestamps of the
	// datagrams on the PBX's veth, µs resolution; the default) or "sipp"
	// (SIPp's response times, whole ms of its clock, when the capture missed
	// more than 1 % of the answered calls). WireSetups is how many calls
	// the capture paired.
	LatencySource string  `json:"latency_source"`
	WireSetups    int     `json:"wire_setups"`
	SetupP50ms    float64 `json:"setup_p50_ms"`
	SetupP90ms    float64 `json:"setup_p90_ms"`
	SetupP99ms    float64 `json:"setup_p99_ms"`
	SetupMaxms    float64 `json:"setup_max_ms"`
	SetupMeanms   float64 `json:"setup_mean_ms"`
	// SIPp's own response times (-trace_rtt: whole milliseconds of its
	// event-loop clock), for comparison.
	SIPpSetupP50ms float64 `json:"sipp_setup_p50_ms"`
	SIPpSetupP99ms float64 `json:"sipp_setup_p99_ms"`
	// Retransmissions SIPp's UAC made (INVITE or BYE unanswered for
	// 500 ms and more); OutOfCall and DeadCall are messages SIPp could not
	// match to a live call.
	Retransmissions int `json:"uac_retransmissions"`
	OutOfCallMsgs   int `json:"uac_out_of_call_msgs"`
	DeadCallMsgs    int `json:"uac_dead_call_msgs"`
	// CPU in percent of one CPU over the step's steady part (from
	// min(2 s, duration/4) after the first call to the end of placing):
	// the edge's signalling process(es) (xtrunk sip; Kamailio, all its
	// workers) and media relay (xtrunk relay; rtpengine), both SIPp
	// processes, and the whole machine.
	SIPCPUPct   float64 `json:"sip_cpu_pct"`
	MediaCPUPct float64 `json:"media_cpu_pct"`
	EdgeCPUPct  float64 `json:"edge_cpu_pct"`
	SIPpCPUPct  float64 `json:"sipp_cpu_pct"`
	BusyCPUPct  float64 `json:"busy_cpu_pct"`
	// CPU time per call in µs: the CPU percentages above over the
	// achieved call rate (each call's setup, media through its hold, and
	// teardown, at the steady state of placing calls).
	SIPCPUusPerCall   float64 `json:"sip_cpu_us_per_call"`
	MediaCPUusPerCall float64 `json:"media_cpu_us_per_call"`
	EdgeCPUusPerCall  float64 `json:"edge_cpu_us_per_call"`
	// RelaySessionsLeft is how many calls the relay still held after the
	// step and the settle pause: should be 0.
	RelaySessionsLeft int `json:"relay_sessions_left"`
	// RelayXDPPackets and RelayUserspacePackets are the packets xtrunk's
	// relay forwarded during the step (and its settle pause) in its XDP
	// program and its userspace path, from its /metrics (targets with
	// xtrunk relay; 0 for rtpengine). Media only flows with Config.RTP.
	RelayXDPPackets       int64 `json:"relay_xdp_packets,omitempty"`
	RelayUserspacePackets int64 `json:"relay_userspace_packets,omitempty"`
	// CDRs is how many CDRs xtrunk wrote during the step (xtrunk
	// target; -1 where not read).
	CDRs int `json:"cdrs,omitempty"`
	// WallS is how long SIPp ran, first INVITE to its exit.
	WallS float64 `json:"wall_s"`
	// SIPpExit is SIPp's exit status, if not 0 (1: some calls failed).
	SIPpExit string `json:"sipp_exit,omitempty"`
}

// Summary holds the comparison.
type Summary struct {
	// XtrunkOverKamailio is MaxCleanCPS(xtrunk) / MaxCleanCPS(kamailio),
	// when both ran and held a step.
	XtrunkOverKamailio float64 `json:"xtrunk_over_kamailio_max_clean_cps,omitempty"`
	// RelayOverRTPEngine is MaxCleanCPS(kamailio-xtrunk) /
	// MaxCleanCPS(kamailio): the same Kamailio driving xtrunk relay vs
	// rtpengine, when both ran and held a step.
	RelayOverRTPEngine float64 `json:"kamailio_xtrunk_over_kamailio_max_clean_cps,omitempty"`
	// Capped lists targets that held every step they ran: their capacity
	// is above the highest step.
	Capped []string `json:"held_every_step,omitempty"`
}

// WriteJSON writes r to path.
func (r *Results) WriteJSON(path string) error {
	return report.Save("sip", path, r)
}

// ReadJSON reads a file WriteJSON wrote.
func ReadJSON(path string) (*Results, error) {
	return report.Load[Results]("sip", path)
}

func (r *Results) target(name string) *TargetResult {
	for i := range r.Targets {
		if r.Targets[i].Target == name {
			return &r.Targets[i]
		}
	}
	return nil
}

// stepStatus classifies a step.
func stepStatus(s Step) string {
	switch {
	case s.Attempted == 0 || s.FailPct >= CleanFailPct:
		return StatusFail
	case s.AchievedCPS < MinAchievedRatio*float64(s.OfferedCPS):
		return StatusShort
	}
	return StatusOK
}

// finish computes the per-target and summary figures.
func (r *Results) finish() {
	var s Summary
	for i := range r.Targets {
		t := &r.Targets[i]
		t.MaxCleanCPS = 0
		all := len(t.Steps) > 0 && t.Error == ""
		for _, st := range t.Steps {
			if st.Status == StatusOK && st.OfferedCPS > t.MaxCleanCPS {
				t.MaxCleanCPS = st.OfferedCPS
			}
			all = all && st.Status == StatusOK
		}
		if all && len(t.Steps) == len(r.CPS) {
			s.Capped = append(s.Capped, t.Target)
		}
	}
	s.XtrunkOverKamailio = r.cleanRatio(TargetXtrunk, TargetKamailio)
	s.RelayOverRTPEngine = r.cleanRatio(TargetKamailioXtrunk, TargetKamailio)
	r.Summary = s
}

// cleanRatio is MaxCleanCPS(a) / MaxCleanCPS(b); 0 unless both ran and
// held a step.
func (r *Results) cleanRatio(a, b string) float64 {
	x, y := r.target(a), r.target(b)
	if x == nil || y == nil || x.MaxCleanCPS == 0 || y.MaxCleanCPS == 0 {
		return 0
	}
	return float64(x.MaxCleanCPS) / float64(y.MaxCleanCPS)
}
