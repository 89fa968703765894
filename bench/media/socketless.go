package media

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/bench/internal/harness"
)

// ModeXDPSocketless is `xtrunk relay --dataplane xdp --socketless`: no
// socket per call, what needs userspace goes through AF_XDP sockets. It
// passes --socketless explicitly, whatever --dataplane xdp defaults to, so
// the mode means the same on every build. Not in AllModes: asked for by
// name (--modes xdp-socketless).
const ModeXDPSocketless = "xdp-socketless"

// ExtraModes are modes a run accepts but does not take by default.
var ExtraModes = []string{ModeXDPSocketless}

// isXtrunk says whether mode runs the xtrunk binary as its relay.
func isXtrunk(mode string) bool {
	return mode == ModeXDP || mode == ModeUserspace || mode == ModeXDPSocketless
}

// xdpArgs are the relay flags of the XDP modes after --dataplane.
func xdpArgs(mode, pinRoot string) []string {
	args := []string{"xdp", "--xdp-mode", "native", "--pin-path", pinRoot + "/relay", "--remove-on-exit"}
	if mode == ModeXDPSocketless {
		args = append(args, "--socketless")
	}
	return args
}

// ephemeralPorts is the relay namespace's ip_local_port_range in the XDP
// modes: an XDP relay (with or without --socketless) puts its whole port
// range (16000-65535) into ip_local_reserved_ports, which covers the
// kernel's default ephemeral range (32768-60999), and a socket that needs
// an ephemeral port there (the benchmark's NG client, /metrics scrapes)
// would get EAGAIN. Below the relay's range, as an operator would
// configure such a host, and above the fixed ports the namespace listens
// on (NG 2223, metrics 9101): from 1024 a client socket opened while the
// relay started (the NG client waiting for its pong) could take 2223 and
// the relay's NG bind failed (EADDRINUSE, seen in CI).
const ephemeralPorts = "10000 15999"

// prepareXDPPorts sets the relay namespace's ephemeral range for the XDP
// modes.
func prepareXDPPorts(l *lab) error {
	if err := l.relay.SetSysctl("net.ipv4.ip_local_port_range", ephemeralPorts); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	return nil
}

// relayCommand is the command that starts a relay in the lab's relay
// namespace. With nofile > 0 the relay runs under prlimit(1) with
// RLIMIT_NOFILE soft and hard at nofile (what `ulimit -n nofile` does):
// prlimit sets the limit and execs the relay, so the limit is in force
// from the relay's first instruction and the relay (a Go program raises
// its soft limit to the hard one at start) cannot raise it.
func relayCommand(l *lab, nofile uint64, bin string, args ...string) *exec.Cmd {
	if nofile == 0 {
		return l.relay.Command(context.Background(), bin, args...)
	}
	n := strconv.FormatUint(nofile, 10)
	return l.relay.Command(context.Background(), "prlimit", append([]string{"--nofile=" + n + ":" + n, "--", bin}, args...)...)
}

// relayCallLimit is how many calls one relay process of mode holds by its
// descriptors, and the limit that says so: the socketless relay holds no
// descriptor per call (the port plan bounds it); the others hold
// socketsPerCall under the relay's RLIMIT_NOFILE (cfg.RelayNoFile, else
// the one the benchmark runs with).
func relayCallLimit(cfg *Config, mode string, fdLimit uint64) (calls int, limit uint64) {
	limit = fdLimit
	if cfg.RelayNoFile > 0 {
		limit = cfg.RelayNoFile
	}
	if mode == ModeCeiling || mode == ModeXDPSocketless {
		return maxCalls, limit
	}
	return min(maxCalls, int((limit-min(limit, fdReserve))/socketsPerCall)), limit
}

// procStatusKB reads a "Key:   N kB" line of /proc/PID/status.
func procStatusKB(pid int, key string) (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), key+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("media: /proc/%d/status %s: %w", pid, key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("media: /proc/%d/status has no %s", pid, key)
}

// relayRSSKB is the resident memory of the relay's processes (VmRSS, kB);
// 0 for a mode without one (ceiling).
func relayRSSKB(pids []int) (uint64, error) {
	var sum uint64
	for _, pid := range pids {
		kb, err := procStatusKB(pid, "VmRSS")
		if err != nil {
			return 0, err
		}
		sum += kb
	}
	return sum, nil
}

// procNoFile reads the relay's RLIMIT_NOFILE (soft, hard) from
// /proc/PID/limits: what it really ran with, not what was asked.
func procNoFile(pid int) (soft, hard uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, 0, fmt.Errorf("media: %w", err)
	}
	soft, hard, ok := parseNoFile(string(b))
	if !ok {
		return 0, 0, fmt.Errorf("media: /proc/%d/limits has no Max open files", pid)
	}
	return soft, hard, nil
}

// parseNoFile finds the "Max open files" row of a /proc/PID/limits text
// ("unlimited" is the largest value).
func parseNoFile(limits string) (soft, hard uint64, ok bool) {
	for _, line := range strings.Split(limits, "\n") {
		rest, found := strings.CutPrefix(line, "Max open files")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, 0, false
		}
		parse := func(s string) (uint64, bool) {
			if s == "unlimited" {
				return ^uint64(0), true
			}
			n, err := strconv.ParseUint(s, 10, 64)
			return n, err == nil
		}
		soft, okS := parse(f[0])
		hard, okH := parse(f[1])
		if !okS || !okH {
			return 0, 0, false
		}
		return soft, hard, true
	}
	return 0, 0, false
}

// procFDs counts the relay's open descriptors (/proc/PID/fd).
func procFDs(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, fmt.Errorf("media: %w", err)
	}
	return len(ents), nil
}

// relayMemory is what a mode's relay holds before any call: the baseline
// the steps' RSS per call is taken against.
type relayMemory struct {
	pid    int
	baseKB uint64
}

// startMemory reads the relay's baseline after it started, and records
// its descriptor limit in mr.
func startMemory(d dut, mr *ModeResult) (relayMemory, error) {
	pids := d.pids()
	if len(pids) == 0 {
		return relayMemory{}, nil
	}
	m := relayMemory{pid: pids[0]}
	var err error
	if m.baseKB, err = relayRSSKB(pids); err != nil {
		return m, err
	}
	mr.RelayBaseRSSKB = m.baseKB
	if soft, hard, err := procNoFile(m.pid); err == nil {
		mr.RelayNoFile, mr.RelayNoFileHard = soft, hard
	}
	mr.RelayBaseFDs, _ = procFDs(m.pid)
	return m, nil
}

// stepMemory fills the step's relay memory and descriptors with n calls
// set up: RSS per call is (VmRSS now − VmRSS before any call) / n.
func (m relayMemory) stepMemory(st *Step, n int) error {
	if m.pid == 0 || n == 0 {
		return nil
	}
	kb, err := relayRSSKB([]int{m.pid})
	if err != nil {
		return err
	}
	st.RelayRSSKB = kb
	if kb > m.baseKB {
		st.RelayRSSPerCallB = float64(kb-m.baseKB) * 1024 / float64(n)
	}
	st.RelayFDs, _ = procFDs(m.pid)
	return nil
}

// rssPerCall is the table's cell: bytes of relay RSS per call.
func rssPerCall(s Step) string {
	if s.RelayRSSKB == 0 {
		return "-"
	}
	if s.RelayRSSPerCallB >= 1e4 {
		return fmt.Sprintf("%.1fk", s.RelayRSSPerCallB/1e3)
	}
	return fmt.Sprintf("%.0f", s.RelayRSSPerCallB)
}

// socketlessSummary is the figure for the socketless relay: the
// most calls it set up under its descriptor limit, and whether it held
// 10,000 calls at < 0.01 % loss at the full offered rate.
func (r *Results) socketlessSummary(s *Summary) {
	m := r.mode(ModeXDPSocketless)
	if m == nil {
		return
	}
	for _, st := range m.Steps {
		s.SocketlessCallsSetUp = max(s.SocketlessCallsSetUp, st.Calls)
	}
	s.SocketlessNoFile = m.RelayNoFile
	if st := m.step(10000); st != nil {
		cp := *st
		s.SocketlessAt10k = &cp
		s.SocketlessHeld10k = st.LossPct < 0.01 && st.SentPPS >= MinSentRatio*st.OfferedPPS
	}
}

// socketlessLine is the summary line of the socketless mode, "" without it.
func (s Summary) socketlessLine() string {
	if s.SocketlessCallsSetUp == 0 {
		return ""
	}
	t := fmt.Sprintf("xdp-socketless: %d calls set up in one relay (RLIMIT_NOFILE %d)", s.SocketlessCallsSetUp, s.SocketlessNoFile)
	if st := s.SocketlessAt10k; st != nil {
		t += fmt.Sprintf("; at 10k calls %s pps delivered, loss %s %%, RSS %s B/call", kpps(st.DeliveredPPS), pctStr(st.LossPct), rssPerCall(*st))
		if s.SocketlessHeld10k {
			t += ": held (< 0.01 %)"
		} else {
			t += ": not held"
		}
	}
	return t
}

func pctStr(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) }

// relayCounterPrefixes are the relay's /metrics families a step reports
// the growth of (Step.RelayCounters): where packets that left XDP for
// userspace went.
var relayCounterPrefixes = []string{
	"xtrunk_relay_userspace_packets_total",
	"xtrunk_relay_userspace_drops_total",
	"xtrunk_relay_xsk_rx_packets_total",
	"xtrunk_relay_xsk_tx_packets_total",
	"xtrunk_relay_xsk_tx_fallback_total",
	"xtrunk_relay_xsk_drops_total",
}

// relayCounters reads relayCounterPrefixes from an xtrunk relay's
// /metrics, keyed by name and labels as exposed; nil for other relays.
func relayCounters(d dut) (map[string]uint64, error) {
	nr, ok := d.(*ngRelay)
	if !ok || !nr.metrics {
		return nil, nil
	}
	body, err := scrapeMetrics(nr.ns)
	if err != nil {
		return nil, err
	}
	return parseCounters(body, relayCounterPrefixes), nil
}

// parseCounters picks the samples of the named families out of a
// Prometheus text exposition.
func parseCounters(body string, prefixes []string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		key := line[:i]
		name, _, _ := strings.Cut(key, "{")
		if !slices.Contains(prefixes, name) {
			continue
		}
		if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil && f >= 0 {
			out[key] = uint64(f)
		}
	}
	return out
}

// maxSettleRounds bounds settle's extra rounds.
const maxSettleRounds = 10

// settle makes sure an XDP relay has latched every call before a step is
// measured. The warm-up sends its packets back to back — 6 per call at
// once, 120,000 frames within milliseconds at 20,000 calls — and a relay
// whose learning path is an AF_XDP ring of a few thousand frames loses
// most of them, so some calls are still learning when the step starts
// and their packets take the slow path during it. settle sends one more
// packet per call and direction, waits, and repeats until a round passes
// nothing up to userspace (xtrunk_relay_xdp_packets_total{reason=
// "pass_userspace"}). It returns the rounds sent and what the last one
// still passed up; 0, 0 for relays without XDP reasons.
func (r *runner) settle(ctx context.Context, pause time.Duration) (rounds int, passed uint64, err error) {
	before, err := r.d.reasons()
	if err != nil || before == nil {
		return 0, 0, err
	}
	for rounds < maxSettleRounds {
		rounds++
		if err := both(func() error { return r.srcA().sendRound(1) },
			func() error { return r.l.genB.sendRound(1) }); err != nil {
			return rounds, 0, err
		}
		if err := harness.Sleep(ctx, pause); err != nil {
			return rounds, 0, err
		}
		after, err := r.d.reasons()
		if err != nil {
			return rounds, 0, err
		}
		passed = after["pass_userspace"] - before["pass_userspace"]
		if passed == 0 {
			return rounds, 0, nil
		}
		before = after
	}
	return rounds, passed, nil
}
