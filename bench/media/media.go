// Package media benchmarks RTP relaying: xtrunk's relay with the XDP
// dataplane, the same relay with the userspace dataplane, Debian's
// rtpengine (userspace forwarding), and the ceiling (a trivial XDP
// redirect), each in its own namespace lab built with bench/testbed and
// driven the same way over NG.
//
// The lab is the testbed triangle, caller ⇄ relay ⇄ callee, no default
// route. Caller and callee each run a generator and a sink, both XDP
// programs (media.bpf.c): the generator is run with BPF_PROG_TEST_RUN in
// live-frames mode and builds every frame in the kernel — the next packet
// of the next call, real RTP headers, a send timestamp in the payload —
// because a socket loop cannot offer a million packets a second on a small
// VM; the sink on the receiving veth counts per call and builds a one-way
// latency histogram (same clock: bpf_ktime_get_ns on one machine).
//
// A run steps the number of concurrent G.711 calls (50 pps each way)
// upward per mode until loss passes 1 % or the machine cannot offer the
// rate any more, and reports offered, sent and delivered packet rates,
// loss, latency percentiles and CPU, as a table, JSON and a PNG chart.
//
// With Config.SRTP (xtrunk bench media --srtp) each call's caller side is
// SDES-SRTP and its callee side plain RTP, so the relay transcrypts every
// packet. SRTP's auth tag covers the RTP header, which the XDP generator
// rewrites per packet, so the caller's side is sent by srtpSender instead:
// the step's packets encrypted with pion/srtp before the step, then paced
// out with sendmmsg. Each step then reports SRTP calls per core: calls
// per CPU of the relay process.
// These are measurements, never assertions: the package's test checks the
// machinery, not the speed.
package media

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Modes.
const (
	ModeXDP       = "xdp"       // xtrunk relay --dataplane xdp
	ModeUserspace = "userspace" // xtrunk relay --dataplane userspace
	ModeRTPEngine = "rtpengine" // rtpengine --table=-1
	ModeCeiling   = "ceiling"   // trivial XDP rewrite + redirect
)

// AllModes in the order a run takes them.
var AllModes = []string{ModeXDP, ModeUserspace, ModeRTPEngine, ModeCeiling}

// SRTPModes are the modes --srtp applies to: the ones with a relay that
// terminates SRTP (the ceiling has none).
var SRTPModes = []string{ModeXDP, ModeUserspace, ModeRTPEngine}

// DefaultCalls are the default steps.
var DefaultCalls = []int{100, 500, 1000, 2000, 5000, 10000, 20000}

// Per-call traffic: G.711 with 20 ms packets, both directions.
const (
	PacketsPerSecond = 50
	RTPBytes         = 172 // 12-byte header + 160 bytes of audio
)

// socketsPerCall is what a relay holds per call: an RTP/RTCP socket pair
// for each party (xtrunk and rtpengine alike), so RLIMIT_NOFILE bounds the
// calls one relay process can hold.
const socketsPerCall = 4

// fdReserve are descriptors a relay needs besides its media sockets.
const fdReserve = 256

// Thresholds a run applies.
const (
	// CleanLoss is the loss (%) under which a step counts as carried.
	CleanLoss = 0.1
	// StopLoss ends a mode's steps.
	StopLoss = 1.0
	// MinSentRatio is the share of the offered rate the generators must
	// really send for a step to count as carried.
	MinSentRatio = 0.99
	// StopSentRatio ends a mode's steps: the machine is saturated and more
	// calls would only offer more of what cannot be sent.
	StopSentRatio = 0.95
)

// Config is one benchmark run.
type Config struct {
	Modes    []string      // default AllModes
	Calls    []int         // steps, ascending; default DefaultCalls
	Duration time.Duration // measured time per step; default 10s
	Warmup   time.Duration // after the warm-up packets, before measuring; default 1s
	// PacketsPerCall is each call's rate per direction; default 50 (G.711,
	// 20 ms). 100 is G.711 with 10 ms packets: a way to reach a given
	// packet rate with half the calls where a relay cannot hold more.
	PacketsPerCall int
	// WarmupPackets are sent per call and direction before a step is
	// measured, so the relay latches every new call; default 3.
	WarmupPackets int
	// Chunk is the generator's pacing interval; default 50ms.
	Chunk time.Duration
	// XtrunkBin is the xtrunk binary run as the relay (xdp, userspace).
	XtrunkBin string
	// RTPEngineBin is rtpengine's path; default "rtpengine" from PATH.
	RTPEngineBin string
	// WorkDir is where relays run (their cwd); default a temporary directory.
	WorkDir string
	// NoStop runs every step even past StopLoss / StopSentRatio.
	NoStop bool
	// SRTP makes every call's customer leg (the caller's) SDES-SRTP
	// (SRTPSuite) and its carrier leg plain RTP, so the relay decrypts
	// caller→callee and encrypts callee→caller. The caller's packets are
	// encrypted before each step and paced out by a socket sender; the
	// callee keeps the XDP generator. Latency is not measured (the stamps
	// are encrypted), and each step reports SRTP calls per core. Modes:
	// SRTPModes (the default with SRTP).
	SRTP bool
	// Saturate offers every step more than the lab can move: the
	// generators send back to back for Duration instead of PacketsPerCall
	// per call (saturate.go). Steps never stop the run; the summary holds
	// each round's delivered rates and xdp/ceiling.
	Saturate bool
	// ProgStats turns the kernel's BPF run-time statistics on for the run
	// and reports each step's cost per run of the mode's XDP forwarding
	// program (xdp, ceiling). It slows every XDP program a little.
	ProgStats bool
	// Rounds runs the modes this many times, each round with fresh labs
	// (with Saturate, the modes of a round side by side: runPaired);
	// default 1.
	Rounds int
	// NoSettle skips the latching rounds after the warm-up (runner.settle):
	// the step is measured with whatever the warm-up latched.
	NoSettle bool
	// RelayNoFile, if not 0, is the RLIMIT_NOFILE (soft and hard) every
	// relay process runs with, as under `ulimit -n RelayNoFile`; 0 leaves
	// the relays the benchmark's own (raised) limit.
	RelayNoFile uint64
	// Progress, if set, is called as the run advances.
	Progress func(Progress)
}

// Progress is where a run is.
type Progress struct {
	Mode             string
	ModeIndex, Modes int // 1-based
	Calls            int
	StepIndex, Steps int // 1-based
	Phase            string
	Frac             float64 // of the phase, 0..1
	Done             bool    // the step finished; Step holds it
	Step             *Step
}

func (c *Config) defaults() error {
	modes := AllModes
	if c.SRTP {
		modes = SRTPModes
	}
	if len(c.Modes) == 0 {
		c.Modes = modes
	}
	for _, m := range c.Modes {
		if !slices.Contains(modes, m) && !slices.Contains(ExtraModes, m) {
			if c.SRTP && slices.Contains(AllModes, m) {
				return fmt.Errorf("%w: mode %q does not apply to SRTP (no relay to terminate it; want %s)", ErrConfig, m, strings.Join(modes, ", "))
			}
			return fmt.Errorf("%w: mode %q (want %s)", ErrConfig, m, strings.Join(modes, ", "))
		}
	}
	if len(c.Calls) == 0 {
		c.Calls = DefaultCalls
	}
	for i, n := range c.Calls {
		if n <= 0 || (i > 0 && n <= c.Calls[i-1]) {
			return fmt.Errorf("%w: calls must be positive and ascending: %v", ErrConfig, c.Calls)
		}
		if n > maxCalls {
			return fmt.Errorf("%w: %d calls (at most %d: each relay address has %d port pairs in %d-%d)",
				ErrTooManyCalls, n, maxCalls, (relayPortMax-relayPortMin+1)/2, relayPortMin, relayPortMax)
		}
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup <= 0 {
		c.Warmup = time.Second
	}
	if c.PacketsPerCall <= 0 {
		c.PacketsPerCall = PacketsPerSecond
	}
	if c.WarmupPackets <= 0 {
		c.WarmupPackets = 3
	}
	if c.Chunk <= 0 {
		c.Chunk = 50 * time.Millisecond
	}
	if c.Rounds <= 0 {
		c.Rounds = 1
	}
	if c.Saturate && c.SRTP {
		return fmt.Errorf("%w: --saturate and --srtp do not combine (the SRTP sender is paced)", ErrConfig)
	}
	if c.RTPEngineBin == "" {
		c.RTPEngineBin = "rtpengine"
	}
	return nil
}

// MaxCalls is the most calls a step can have in this lab: the relays'
// port range (16000-65535) holds 24,768 RTP/RTCP pairs per address and a
// call takes one pair on each of the relay's two addresses.
const MaxCalls = maxCalls
