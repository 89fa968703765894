package sip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/bench/internal/harness"
	"github.com/xtrunk/xtrunk/bench/testbed"
)

// sippBuffer is SIPp's socket buffer size (-buff_size): the load
// generator must not be the one dropping datagrams in a burst.
const sippBuffer = 4 << 20

// rtdName is the scenario's response-time name (start_rtd / rtd).
const rtdName = "setup"

// startCarrier starts SIPp as the carrier gateway (UAS) for a target's
// whole run: it answers every call of every step.
func startCarrier(l *lab, cfg *Config, dir string) (*testbed.Process, *os.File, error) {
	out, err := os.Create(filepath.Join(dir, "carrier-sipp.out"))
	if err != nil {
		return nil, nil, fmt.Errorf("sip: %w", err)
	}
	cmd := l.carrier.Command(context.Background(), cfg.SIPpBin,
		"-sf", filepath.Join(cfg.WorkDir, carrierScenario),
		"-i", carrierIP.String(), "-p", strconv.Itoa(int(carrierSIP.Port())),
		"-mi", carrierIP.String(), "-mp", "40000",
		"-buff_size", strconv.Itoa(sippBuffer),
		"-nostdin", "-pause_msg_ign",
		"-trace_err", "-error_file", filepath.Join(dir, "carrier-errors.log"))
	cmd.Dir, cmd.Env = dir, harness.CleanEnv()
	cmd.Stdout, cmd.Stderr = out, out
	p, err := l.carrier.StartCmd(cmd)
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	return p, out, nil
}

// uacRun is one step's SIPp UAC.
type uacRun struct {
	proc    *testbed.Process
	out     *os.File
	dir     string
	started time.Time
}

// startPBX starts SIPp as the customer PBX placing cps × Duration calls
// at cps, each on port port (a fresh one per step, so a late
// retransmission of one step never lands in the next).
func startPBX(l *lab, cfg *Config, dir string, cps, port int) (*uacRun, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	out, err := os.Create(filepath.Join(dir, "sipp.out"))
	if err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	calls := callsFor(cps, cfg.Duration)
	limit := sippTimeout(cfg)
	cmd := l.pbx.Command(context.Background(), cfg.SIPpBin,
		"-sf", filepath.Join(cfg.WorkDir, pbxScenario),
		"-i", pbxIP.String(), "-p", strconv.Itoa(port),
		"-mi", pbxIP.String(), "-mp", "20000",
		"-s", Called, "-key", "trunk", TrunkHost, "-key", "caller", CallerDID,
		"-r", strconv.Itoa(cps), "-rp", "1000",
		"-m", strconv.Itoa(calls),
		"-l", strconv.Itoa(calls), // open loop: never hold calls back
		"-d", strconv.FormatInt(cfg.Hold.Milliseconds(), 10),
		"-recv_timeout", strconv.FormatInt(cfg.RecvTimeout.Milliseconds(), 10),
		"-timeout", strconv.Itoa(int(limit.Seconds()))+"s",
		"-buff_size", strconv.Itoa(sippBuffer),
		"-nostdin", "-pause_msg_ign",
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"), "-fd", "1",
		"-trace_rtt", "-rtt_freq", "1",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		edgeSIP.String())
	cmd.Dir, cmd.Env = dir, harness.CleanEnv()
	cmd.Stdout, cmd.Stderr = out, out
	u := &uacRun{out: out, dir: dir, started: time.Now()}
	if u.proc, err = l.pbx.StartCmd(cmd); err != nil {
		out.Close()
		return nil, err
	}
	return u, nil
}

// callsFor is how many calls a step places.
func callsFor(cps int, d time.Duration) int {
	return max(1, int(math.Round(float64(cps)*d.Seconds())))
}

// sippTimeout bounds a UAC run: placing, the last calls' hold, and a
// failing call's receive timeouts, with a margin.
func sippTimeout(cfg *Config) time.Duration {
	return cfg.Duration + cfg.Hold + 3*cfg.RecvTimeout + 20*time.Second
}

// wait waits for the UAC to end (killing it past its own timeout plus a
// margin, or when ctx ends).
func (u *uacRun) wait(ctx context.Context, limit time.Duration) error {
	defer u.out.Close()
	t := time.NewTimer(time.Until(u.started.Add(limit + 15*time.Second)))
	defer t.Stop()
	select {
	case <-u.proc.Done():
	case <-t.C:
		_ = u.proc.Kill()
	case <-ctx.Done():
		_ = u.proc.Kill()
		return ctx.Err()
	}
	return nil
}

// uacResult is what one UAC run's files say.
type uacResult struct {
	stats map[string]string // the stat file's last (cumulative) row
	// rtts are the setup times (ms) of the answered calls, and answeredAt
	// when each 200 arrived (ms since SIPp started), in file order.
	rtts, answeredAt []float64
	exitErr          error
}

// readUAC parses the stat and response-time files a UAC run left.
func (u *uacRun) read() (*uacResult, error) {
	r := &uacResult{exitErr: u.proc.Wait()}
	var err error
	if r.stats, err = readStatFile(filepath.Join(u.dir, "stat.csv")); err != nil {
		return nil, fmt.Errorf("%w: %w (exit: %v)\n%s", ErrSIPp, err, r.exitErr, tailFile(filepath.Join(u.dir, "sipp.out"), 2000))
	}
	// SIPp names the file after the scenario and its PID, in its cwd.
	matches, _ := filepath.Glob(filepath.Join(u.dir, "*_"+strconv.Itoa(u.proc.PID())+"_rtt.csv"))
	if len(matches) == 0 {
		matches, _ = filepath.Glob(filepath.Join(u.dir, "*_rtt.csv"))
	}
	for _, m := range matches {
		rtts, at, err := readRTTFile(m)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSIPp, err)
		}
		r.rtts, r.answeredAt = append(r.rtts, rtts...), append(r.answeredAt, at...)
	}
	return r, nil
}

// readStatFile returns the last row of a SIPp -trace_stat file keyed by
// its header.
func readStatFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var header, last []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fs := strings.Split(strings.TrimSuffix(line, ";"), ";")
		if header == nil {
			header = fs
			continue
		}
		last = fs
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if header == nil || last == nil {
		return nil, fmt.Errorf("%s: no statistics row", path)
	}
	out := make(map[string]string, len(header))
	for i, k := range header {
		if i < len(last) {
			out[strings.TrimSpace(k)] = strings.TrimSpace(last[i])
		}
	}
	return out, nil
}

// readRTTFile reads a SIPp -trace_rtt file: "Date_ms;response_time_ms;rtd_no"
// rows, one per completed response-time measurement.
func readRTTFile(path string) (rtts, at []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(strings.TrimSpace(sc.Text()), ";")
		if len(fs) < 3 || strings.TrimSpace(fs[2]) != rtdName {
			continue // the header, or another measurement
		}
		d, err1 := strconv.ParseFloat(strings.TrimSpace(fs[0]), 64)
		v, err2 := strconv.ParseFloat(strings.TrimSpace(fs[1]), 64)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("%s: bad row %q", path, sc.Text())
		}
		at, rtts = append(at, d), append(rtts, v)
	}
	return rtts, at, sc.Err()
}

func (r *uacResult) count(key string) int {
	n, _ := strconv.Atoi(r.stats[key])
	return n
}

// failReasons are the stat file's nonzero Failed*(C) counters.
func (r *uacResult) failReasons() map[string]int {
	out := map[string]int{}
	for k, v := range r.stats {
		if !strings.HasPrefix(k, "Failed") || !strings.HasSuffix(k, "(C)") || k == "FailedCall(C)" {
			continue
		}
		if n, _ := strconv.Atoi(v); n > 0 {
			out[strings.TrimSuffix(strings.TrimPrefix(k, "Failed"), "(C)")] = n
		}
	}
	return out
}

// percentile is the p-th percentile (0..100) of sorted by the
// nearest-rank method.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p / 100 * float64(len(sorted))))
	k = min(max(k, 1), len(sorted))
	return sorted[k-1]
}

// achievedCPS is the rate the calls were answered at: answered calls over
// the time from the first 200 to the last (answered−1 intervals). A step
// whose setups fall behind the offered rate stretches that window.
func achievedCPS(answeredAt []float64) float64 {
	if len(answeredAt) < 2 {
		return 0
	}
	lo, hi := slices.Min(answeredAt), slices.Max(answeredAt)
	if hi <= lo {
		return 0
	}
	return float64(len(answeredAt)-1) / ((hi - lo) / 1000)
}

// firstLines returns up to n non-empty lines of a file, for diagnostics.
func firstLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < n {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "---") {
			out = append(out, l)
		}
	}
	return out
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return harness.Tail(string(b), n)
}
