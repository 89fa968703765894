package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

const testVersion = "v0.0.0-test"

// xtrunkBinary is the binary under test, built once per test binary with
// the version stamped the way the Makefile does.
func xtrunkBinary(t *testing.T) string {
	t.Helper()
	return labtest.Build{LDFlags: "-X main.version=" + testVersion + " -X main.revision=0123abcd"}.Binary(t)
}

// TestMain removes the binaries the tests built.
func TestMain(m *testing.M) { os.Exit(labtest.Main(m)) }

// proc is a running xtrunk subcommand whose stderr (JSON lines) is kept.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	done  chan struct{}
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(xtrunkBinary(t), args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Dir = t.TempDir() // no stray ./xtrunk.yaml
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			p.mu.Lock()
			p.raw.Write(sc.Bytes())
			p.raw.WriteByte('\n')
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.lines = append(p.lines, m)
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", args[0], p.log())
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// waitLine waits for a JSON log line with message msg.
func (p *proc) waitLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, m := range p.lines {
			if m["message"] == msg {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			t.Fatalf("process exited before logging %q", msg)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no %q log line", msg)
	return nil
}

// stop sends sig and waits for a clean exit.
func (p *proc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	errc := make(chan error, 1)
	go func() { errc <- p.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("exit after %v: %v", sig, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after %v", sig)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitStatus polls url until it answers want.
func waitStatus(t *testing.T, url string, want int) string {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, body = get(t, url); code == want {
			return body
		}
	}
	t.Fatalf("%s: %d %s, want %d", url, code, body, want)
	return ""
}

// metricValue is the value of an unlabelled metric in a Prometheus text
// exposition (NaN: not there).
func metricValue(exposition, name string) float64 {
	for line := range strings.SplitSeq(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return math.NaN()
}

func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

func TestVersionAndHelp(t *testing.T) {
	bin := xtrunkBinary(t)
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || !strings.Contains(string(out), "xtrunk "+testVersion) || !strings.Contains(string(out), "commit 0123abcd") || !strings.Contains(string(out), "go1.") {
			t.Errorf("%v: %v %q", args, err, out)
		}
	}
	for _, args := range [][]string{{"-h"}, {"relay", "-h"}, {"sip", "--help"}, {"api", "-h"}, {"up", "-h"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Errorf("%v: exit %v, want 0", args, err)
		}
		if !strings.Contains(string(out), "examples:") || !strings.Contains(string(out), "XTRUNK_") {
			t.Errorf("%v: no examples or XTRUNK_* variables:\n%s", args, out)
		}
	}
	out, _ := exec.Command(bin, "relay", "-h").Output()
	for _, want := range []string{"--listen-ng", "[XTRUNK_LISTEN_NG]", "--log-format", "XTRUNK_CONFIG"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("relay -h lacks %q", want)
		}
	}
	if err := exec.Command(bin, "relay", "--no-such-flag").Run(); err == nil {
		t.Error("unknown flag: exit 0")
	}
}

// TestAPIHealthMetricsNotifyAndHUP runs xtrunk api as a process: health
// without auth beside the authenticated API, /metrics with build info on
// --metrics, READY=1 to $NOTIFY_SOCKET, SIGHUP survived (log level
// re-read), JSON logs with millisecond timestamps on a pipe.
func TestAPIHealthMetricsNotifyAndHUP(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	conf := filepath.Join(dir, "xtrunk.yaml")
	if err := os.WriteFile(conf, []byte("api:\n  listen: 127.0.0.1:0\n  metrics: 127.0.0.1:0\n  log-level: info\n  db: sqlite:"+filepath.Join(dir, "x.db")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, []string{"NOTIFY_SOCKET=" + sock}, "api", "--config", conf)
	rdy := p.waitLine(t, "api ready")
	base, metrics := "http://"+rdy["listen"].(string), "http://"+rdy["metrics"].(string)

	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	n, err := nc.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Errorf("sd_notify: %q %v", buf[:n], err)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, `"store":"ok"`) {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, _ := get(t, base+"/v1/Trunks"); code != 401 {
		t.Errorf("/v1/Trunks without auth: %d, want 401", code)
	}
	code, body := get(t, metrics+"/metrics")
	if code != 200 || !regexp.MustCompile(`xtrunk_build_info\{goversion="go[^"]+",revision="0123abcd",version="`+testVersion+`"\} 1`).MatchString(body) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get(t, metrics+"/readyz"); code != 200 {
		t.Errorf("metrics listener /readyz: %d", code)
	}
	ts, _ := rdy["time"].(string)
	if !regexp.MustCompile(`T\d\d:\d\d:\d\d\.\d{3}`).MatchString(ts) || strings.Contains(p.log(), "\x1b[") {
		t.Errorf("timestamp %q: want milliseconds; colour codes in a pipe: %v", ts, strings.Contains(p.log(), "\x1b["))
	}

	// SIGHUP: re-reads the log level, does not kill
	if err := os.WriteFile(conf, []byte("api:\n  listen: 127.0.0.1:0\n  log-level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	hup := p.waitLine(t, "SIGHUP: configuration reloaded")
	if hup["log_level"] != "debug" || !strings.Contains(fmt.Sprint(hup["restart_needed"]), "metrics") {
		t.Errorf("SIGHUP line %v", hup)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("after SIGHUP: %d", code)
	}
	p.stop(t, syscall.SIGTERM)
}

// TestSIPReadyzFollowsTheRelay: sip is not ready while no relay answers
// NG, and ready once one does; the relay (userspace dataplane) is ready
// itself, and logs one line at the end of a call with its Call-ID.
func TestSIPReadyzFollowsTheRelay(t *testing.T) {
	dir := t.TempDir()
	ngAddr := freeUDPPort(t)
	if err := os.WriteFile(filepath.Join(dir, "none.yaml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sip := startProc(t, nil, "sip", "--config", filepath.Join(dir, "none.yaml"), "--listen-udp", "127.0.0.1:0", "--listen-tcp", "",
		"--metrics", "127.0.0.1:0", "--relay-ng", ngAddr, "--db", "sqlite:"+filepath.Join(dir, "x.db"), "--log-level", "debug",
		"--memory-limit", "512MiB")
	if ml := sip.waitLine(t, "Go memory limit"); ml["memory_limit_bytes"] != float64(512<<20) || ml["gc_percent"] != float64(1000) {
		t.Errorf("sip's memory limit line: %v, want 512 MiB and the default GC target 1000", ml)
	}
	sipURL := "http://" + sip.waitLine(t, "sip ready")["metrics"].(string)
	if code, _ := get(t, sipURL+"/healthz"); code != 200 {
		t.Errorf("sip /healthz: %d", code)
	}
	body := waitStatus(t, sipURL+"/readyz", 503)
	var h health
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.Status != "not ready" || !strings.Contains(h.Checks["relay"], "NG ping") ||
		h.Checks["store"] != "ok" || h.Checks["listeners"] != "ok" {
		t.Errorf("sip /readyz without relay: %s (%v)", body, err)
	}

	relay := startProc(t, nil, "relay", "--config", filepath.Join(dir, "none.yaml"), "--dataplane", "userspace", "--interface", "lo/127.0.0.1",
		"--listen-ng", ngAddr, "--metrics", "127.0.0.1:0", "--port-min", "47000", "--port-max", "47999", "--recording-dir", dir)
	relayURL := "http://" + relay.waitLine(t, "relay ready")["metrics"].(string)
	body = waitStatus(t, relayURL+"/readyz", 200)
	if !strings.Contains(body, `"dataplane":"ok"`) || !strings.Contains(body, `"ng":"ok"`) {
		t.Errorf("relay /readyz: %s", body)
	}
	if _, m := get(t, relayURL+"/metrics"); !strings.Contains(m, `xtrunk_build_info{`) || !strings.Contains(m, "xtrunk_relay_calls") {
		t.Errorf("relay /metrics lacks build info or its own metrics")
	}
	waitStatus(t, sipURL+"/readyz", 200)
	if _, m := get(t, sipURL+"/metrics"); !strings.Contains(m, `xtrunk_build_info{`) || !strings.Contains(m, "xtrunk_sip_") {
		t.Errorf("sip /metrics lacks build info or its own metrics")
	} else if metricValue(m, "go_gc_gomemlimit_bytes") != 512<<20 || metricValue(m, "go_gc_gogc_percent") != 1000 {
		t.Errorf("sip /metrics: go_gc_gomemlimit_bytes %v, go_gc_gogc_percent %v; want 512 MiB and 1000 (the runtime's, as set)",
			metricValue(m, "go_gc_gomemlimit_bytes"), metricValue(m, "go_gc_gogc_percent"))
	}

	// a call through the relay's NG: one line at its end, with the Call-ID
	c, err := ng.Dial(ngAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	for _, req := range []ng.Dict{
		{"command": "offer", "call-id": "end-line-1", "from-tag": "a", "sdp": sdp},
		{"command": "answer", "call-id": "end-line-1", "from-tag": "a", "to-tag": "b", "sdp": strings.ReplaceAll(sdp, "4000", "4002")},
		{"command": "delete", "call-id": "end-line-1", "from-tag": "a"},
	} {
		if _, err := c.Do(ctx, req); err != nil {
			t.Fatalf("%s: %v", req["command"], err)
		}
	}
	end := relay.waitLine(t, "call ended")
	if end["call_id"] != "end-line-1" || end["reason"] != "delete" || end["duration"] == nil || end["packets_from_a"] == nil {
		t.Errorf("relay end-of-call line %v", end)
	}

	relay.stop(t, syscall.SIGTERM)
	waitStatus(t, sipURL+"/readyz", 503)
	sip.stop(t, syscall.SIGINT)

	// sipgo's slog lines are in the same JSON stream, nothing else is
	if l := sip.waitLine(t, "begin listening"); l["via"] != "slog" || l["proc"] != "sip" || l["level"] != "debug" {
		t.Errorf("sipgo line %v", l)
	}
	for _, l := range strings.Split(strings.TrimSpace(sip.log()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("not JSON on a pipe: %q", l)
		}
	}
}

func TestSlogGoesIntoZerolog(t *testing.T) {
	var buf bytes.Buffer
	zerolog.TimeFieldFormat = timeFormat
	defer zerolog.SetGlobalLevel(zerolog.GlobalLevel())
	zerolog.SetGlobalLevel(zerolog.InfoLevel)
	l := slog.New(&slogHandler{log: zerolog.New(&buf).With().Timestamp().Logger()})
	l.With("transport", "udp").WithGroup("req").Warn("parse failed", "len", 12, "src", "192.0.2.1:5060", slog.Group("via", "branch", "z9hG4bK1"),
		"took", 1500*time.Millisecond, "error", errors.New("bad header"))
	l.Debug("noise")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("lines %q: want the warning only (debug below the level)", lines)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m["level"] != "warn" || m["message"] != "parse failed" || m["transport"] != "udp" || m["req.len"] != float64(12) ||
		m["req.src"] != "192.0.2.1:5060" || m["req.via.branch"] != "z9hG4bK1" ||
		m["req.took"] != float64(1500) || m["req.error"] != "bad header" {
		t.Errorf("record %v", m)
	}
}
