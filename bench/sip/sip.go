// Package sip benchmarks call setup through the edge: how many calls per
// second (CPS) it sets up, and how fast, with media anchored in a relay.
//
// The lab is the testbed triangle, no default route:
//
//	pbx 198.18.1.2 ⇄ 198.18.1.1 edge 198.18.2.1 ⇄ 198.18.2.2 carrier
//
// The customer PBX is SIPp as UAC, the carrier gateway SIPp as UAS, and
// the edge one of the targets, each started by the benchmark in the edge
// namespace:
//
//   - xtrunk: `xtrunk relay` and `xtrunk sip` as separate processes, the
//     termination direction, a trunk authenticated by IP ACL (a SQLite store
//     provisioned here through control/store), no CPS or concurrency limit.
//     The B2BUA asks the relay for the carrier leg's SDP (NG offer) and the
//     customer leg's (NG answer), writes a CDR per call.
//   - kamailio: Debian's Kamailio as a stateful proxy (tm, rr, rtpengine
//     module; the source address checked against the PBX's subnet) with
//     Debian's rtpengine anchoring the media (userspace forwarding), from a
//     configuration generated into a temporary directory.
//   - kamailio-xtrunk: the same Kamailio and configuration, its rtpengine
//     module driving `xtrunk relay` (the xtrunk target's relay) over NG
//     instead of rtpengine: the relays compared under one proxy.
//
// Every call is INVITE (SDP offer) → [100] → 180 → 200 (SDP answer) →
// ACK, the hold time (1 s), BYE → 200. Both SIPp scenarios check that
// the SDP they receive points at the edge's relay address on their side,
// so a call whose media was not anchored counts as failed.
//
// A run steps the offered CPS upward per target; each step is one SIPp
// UAC run placing offered × duration calls at the offered rate. Per step
// it reports the offered and achieved CPS, calls attempted, succeeded and
// failed, setup latency percentiles (INVITE sent → 200 received, per call
// from SIPp's -trace_rtt: whole milliseconds, SIPp's clock), and the CPU
// of the edge's signalling and media processes, the SIPp processes and the
// machine. The headline per target is the highest CPS with < 0.1 % failed
// calls at the offered rate.
//
// With Config.RTP every call also carries media from the PBX through the
// relay during its hold, and a step records how many packets xtrunk's
// relay forwarded (XDP and userspace, from its /metrics).
//
// These are measurements, never assertions: the package's test checks the
// machinery, not the speed.
package sip

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Targets.
const (
	TargetXtrunk   = "xtrunk"   // xtrunk relay + xtrunk sip
	TargetKamailio = "kamailio" // Kamailio (tm, rr, rtpengine) + rtpengine
	// TargetKamailioXtrunk is the same Kamailio with its rtpengine module
	// driving xtrunk relay instead of rtpengine: the two relays compared
	// under one SIP proxy.
	TargetKamailioXtrunk = "kamailio-xtrunk"
)

// AllTargets in the order a run takes them.
var AllTargets = []string{TargetXtrunk, TargetKamailio, TargetKamailioXtrunk}

// usesKamailio is whether a target runs Kamailio.
func usesKamailio(target string) bool {
	return target == TargetKamailio || target == TargetKamailioXtrunk
}

// usesXtrunk is whether a target runs the xtrunk binary.
func usesXtrunk(target string) bool {
	return target == TargetXtrunk || target == TargetKamailioXtrunk
}

// DefaultCPS are the default steps.
var DefaultCPS = []int{100, 200, 400, 800, 1000}

// Dataplanes of xtrunk's relay.
const (
	DataplaneXDP       = "xdp"
	DataplaneUserspace = "userspace"
)

// Thresholds a run applies.
const (
	// CleanFailPct is the share of failed calls (%) under which a step
	// counts as held.
	CleanFailPct = 0.1
	// StopFailPct ends a target's steps.
	StopFailPct = 1.0
	// MinAchievedRatio is the share of the offered CPS the calls must have
	// been answered at for a step to count as held.
	MinAchievedRatio = 0.98
	// StopAchievedRatio ends a target's steps: the edge (or the machine)
	// cannot keep up, and more offered load only queues.
	StopAchievedRatio = 0.9
)

// Config is one benchmark run.
type Config struct {
	Targets []string // default AllTargets
	CPS     []int    // offered calls per second per step, ascending; default DefaultCPS
	// Duration is how long each step places calls at the offered rate
	// (offered × Duration calls); default 20s.
	Duration time.Duration
	// Hold is the time between ACK and BYE; default 1s.
	Hold time.Duration
	// Settle is the pause after a step's last call ended, before the
	// next: the edge finishes its deletes and CDRs; default 2s. Past it
	// the step waits (up to 10 s more) for the relay to hold no call.
	Settle time.Duration
	// RecvTimeout fails a call that waits longer than this for any
	// expected message (SIPp -recv_timeout); default 10s.
	RecvTimeout time.Duration
	// Dataplane is xtrunk's relay dataplane: xdp (default) or userspace.
	Dataplane string
	// KamailioChildren is Kamailio's UDP worker processes; default 4.
	KamailioChildren int
	// RTPEngineThreads is rtpengine's worker threads; default 2.
	RTPEngineThreads int
	// LogLevel of the edge processes: warn (default), info or debug.
	LogLevel string
	// RTP makes every call carry media: the PBX sends 0.8 s of G.711
	// (40 RTP packets, 20 ms apart) to the edge's relay during the hold
	// (SIPp play_pcap_audio, a thread per call in SIPp: for checks at low
	// rates, not for the CPS ladder). Off by default: the benchmark
	// measures call setup.
	RTP bool

	XtrunkBin    string // xtrunk binary (required for the xtrunk target)
	SIPpBin      string // default "sipp" from PATH
	KamailioBin  string // default "kamailio" from PATH
	RTPEngineBin string // default "rtpengine" from PATH
	// KamailioModules is Kamailio's module directory; default Debian's.
	KamailioModules string

	// WorkDir holds the store, the generated configurations, the
	// scenarios and SIPp's and the edges' output; default a temporary
	// directory, removed at the end.
	WorkDir string
	// NoStop runs every step even past StopFailPct / StopAchievedRatio.
	NoStop bool
	// Progress, if set, is called as the run advances.
	Progress func(Progress)
}

// Progress is where a run is.
type Progress struct {
	Target               string
	TargetIndex, Targets int // 1-based
	CPS                  int
	StepIndex, Steps     int // 1-based
	Phase                string
	Done                 bool // the step finished; Step holds it
	Step                 *Step
}

// DefaultKamailioModules is Debian's module directory.
const DefaultKamailioModules = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

func (c *Config) defaults() error {
	if len(c.Targets) == 0 {
		c.Targets = AllTargets
	}
	seen := map[string]bool{}
	for _, t := range c.Targets {
		if !slices.Contains(AllTargets, t) {
			return fmt.Errorf("%w: target %q (want %s)", ErrConfig, t, strings.Join(AllTargets, ", "))
		}
		if seen[t] {
			return fmt.Errorf("%w: target %q twice", ErrConfig, t)
		}
		seen[t] = true
	}
	if len(c.CPS) == 0 {
		c.CPS = DefaultCPS
	}
	for i, n := range c.CPS {
		if n <= 0 || (i > 0 && n <= c.CPS[i-1]) {
			return fmt.Errorf("%w: CPS steps must be positive and ascending: %v", ErrConfig, c.CPS)
		}
	}
	if c.Duration <= 0 {
		c.Duration = 20 * time.Second
	}
	if c.Hold <= 0 {
		c.Hold = time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
	// Every call of the top step is in progress for its hold: past the
	// relays' port range, calls would fail for want of ports, and the
	// run would measure that instead of the edges.
	top := c.CPS[len(c.CPS)-1]
	if inProgress := float64(top) * c.Hold.Seconds(); inProgress > relayMaxCalls {
		return fmt.Errorf("%w: %d CPS with a %v hold is ~%.0f calls in progress; the relays' media ports (%d-%d, an RTP and an RTCP port per leg) hold %d: lower --cps or --hold",
			ErrConfig, top, c.Hold, inProgress, relayPortMin, relayPortMax, relayMaxCalls)
	}
	if c.RecvTimeout <= 0 {
		c.RecvTimeout = 10 * time.Second
	}
	switch c.Dataplane {
	case "":
		c.Dataplane = DataplaneXDP
	case DataplaneXDP, DataplaneUserspace:
	default:
		return fmt.Errorf("%w: dataplane %q (want xdp or userspace)", ErrConfig, c.Dataplane)
	}
	if c.KamailioChildren <= 0 {
		c.KamailioChildren = 4
	}
	if c.RTPEngineThreads <= 0 {
		c.RTPEngineThreads = 2
	}
	switch c.LogLevel {
	case "":
		c.LogLevel = "warn"
	case "warn", "info", "debug":
	default:
		return fmt.Errorf("%w: log level %q (want warn, info or debug)", ErrConfig, c.LogLevel)
	}
	if c.SIPpBin == "" {
		c.SIPpBin = "sipp"
	}
	if c.KamailioBin == "" {
		c.KamailioBin = "kamailio"
	}
	if c.RTPEngineBin == "" {
		c.RTPEngineBin = "rtpengine"
	}
	if c.KamailioModules == "" {
		c.KamailioModules = DefaultKamailioModules
	}
	for _, t := range c.Targets {
		if usesXtrunk(t) && c.XtrunkBin == "" {
			return fmt.Errorf("%w: target %s needs the xtrunk binary (Config.XtrunkBin)", ErrConfig, t)
		}
	}
	return nil
}
