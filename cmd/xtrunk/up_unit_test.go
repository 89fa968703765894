package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestUpPlan: up's own section, and what up adds to its children's
// flags — one store for sip and api, loopback HTTP listeners where the
// file sets none or port 0 — while the other processes accept a file
// with an up: section.
func TestUpPlan(t *testing.T) {
	dir := t.TempDir()
	p := writeYAML(t, `up:
  data-dir: `+dir+`
  metrics: 127.0.0.1:0
  stop-timeout: 3s
relay:
  interface: [pub/192.0.2.1]
  metrics: 127.0.0.1:0
sip:
  metrics: 127.0.0.1:9999
api:
  listen: 0.0.0.0:8080
`)
	cfg, cmd, err := upCommand([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != dir || cfg.StopTimeout != 3*time.Second || cfg.Metrics != "127.0.0.1:0" {
		t.Errorf("up section: %+v", cfg)
	}
	e, err := planEdge(cmd, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	db := "sqlite:" + filepath.Join(dir, "xtrunk.db")
	if e.sip.DB != db || e.api.DB != db || !hasFlag(e.extra["sip"], "--db", db) || !hasFlag(e.extra["api"], "--db", db) {
		t.Errorf("store: sip %s, api %s, flags %v", e.sip.DB, e.api.DB, e.extra)
	}
	if e.relay.Metrics == "127.0.0.1:0" || !hasFlag(e.extra["relay"], "--metrics", e.relay.Metrics) ||
		e.apiMetrics == "" || !hasFlag(e.extra["api"], "--metrics", e.apiMetrics) ||
		e.sip.Metrics != "127.0.0.1:9999" || hasFlag(e.extra["sip"], "--metrics", e.sip.Metrics) {
		t.Errorf("metrics: relay %s, api %s, sip %s, flags %v", e.relay.Metrics, e.apiMetrics, e.sip.Metrics, e.extra)
	}
	if got := apiURL(e.api); got != "http://127.0.0.1:8080" {
		t.Errorf("api URL %s", got)
	}
	cred := filepath.Join(dir, "xtrunk-credentials.env")
	if got := e.credentials(); !strings.HasPrefix(got, cred+" (absent") {
		t.Errorf("credentials before the api made them: %s", got)
	}
	if err := os.WriteFile(cred, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := e.credentials(); got != cred {
		t.Errorf("credentials %s, want %s", got, cred)
	}
	t.Setenv("XTRUNK_ACCOUNT_SID", "AC00000000000000000000000000000001")
	if got := e.credentials(); !strings.Contains(got, "XTRUNK_ACCOUNT_SID") {
		t.Errorf("credentials from the environment: %s", got)
	}
	if _, _, err := relayConfig([]string{"--config", p}); err != nil {
		t.Errorf("relay refuses a file with an up: section: %v", err)
	}

	// a db in one section is the other's too
	p2 := writeYAML(t, "api:\n  db: sqlite:/srv/x.db\n")
	_, cmd2, err := upCommand([]string{"--config", p2})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := planEdge(cmd2, cfg, zerolog.Nop()); err != nil || e.sip.DB != "sqlite:/srv/x.db" || !hasFlag(e.extra["sip"], "--db", "sqlite:/srv/x.db") || len(e.extra["api"]) != 2 {
		t.Errorf("api's db for sip: %+v %v", e, err)
	}

	// bad files: refused before anything starts, with the line
	for body, want := range map[string]string{
		"up:\n  data-dir: /x\n  colour: blue\n": ":3: up: colour: unknown key",
		"up:\n  stop-timeout: 0s\n":             "stop-timeout must be positive",
		"sip:\n  default-cps: many\n":           ":2: sip: default-cps",
		"relay:\n  interface: [nonsense]\n":     "relay",
		"upp:\n  metrics: 127.0.0.1:1\n":        `unknown section "upp"`,
	} {
		pb := writeYAML(t, body)
		_, c, err := upCommand([]string{"--config", pb})
		if err == nil {
			_, err = planEdge(c, cfg, zerolog.Nop())
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

func hasFlag(args []string, name, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name && args[i+1] == value {
			return true
		}
	}
	return false
}

// loopbackEdge is a config file for an edge on loopback: the relay's
// userspace dataplane, every listener on a free port.
func loopbackEdge(t *testing.T, dir, sipListen string) string {
	t.Helper()
	conf := filepath.Join(dir, "xtrunk.yaml")
	ng := freeUDPPort(t)
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`up:
  metrics: 127.0.0.1:0
relay:
  interface: [lo/127.0.0.1]
  listen-ng: %[1]s
  dataplane: userspace
  port-min: 47000
  port-max: 47999
  metrics: 127.0.0.1:0
  recording-dir: %[2]s
sip:
  listen-udp: %[3]s
  listen-tcp: ""
  relay-ng: %[1]s
  drain-timeout: 5s
api:
  listen: 127.0.0.1:0
`, ng, dir, sipListen)), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestUpNotify: up alone speaks to systemd — READY=1 once the three
// children are ready, STOPPING=1 at SIGTERM — and its children do not get
// NOTIFY_SOCKET; up's /readyz is 200 with a check per child.
func TestUpNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := startProc(t, []string{"NOTIFY_SOCKET=" + sock}, "up", "--config", loopbackEdge(t, dir, "127.0.0.1:0"), "--data-dir", filepath.Join(dir, "state"))
	ready := p.waitLine(t, "xtrunk up: edge ready")
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 256)
	if n, err := nc.Read(buf); err != nil || string(buf[:n]) != "READY=1" {
		t.Errorf("sd_notify: %q %v", buf[:n], err)
	}
	body := waitStatus(t, "http://"+ready["up_metrics"].(string)+"/readyz", 200)
	for _, c := range []string{"relay", "api", "sip"} {
		if !strings.Contains(body, `"`+c+`":"ok"`) {
			t.Errorf("up /readyz lacks %s: %s", c, body)
		}
	}
	pids := procChildren(p.cmd.Process.Pid)
	if len(pids) != 3 {
		t.Fatalf("children %v, want 3", pids)
	}
	for _, pid := range pids {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || strings.Contains(string(env), "NOTIFY_SOCKET=") {
			t.Errorf("child %d environment: NOTIFY_SOCKET inherited (%v)", pid, err)
		}
	}
	p.stop(t, syscall.SIGTERM)
	if n, err := nc.Read(buf); err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Errorf("sd_notify at SIGTERM: %q %v", buf[:n], err)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("child %d left behind", pid)
		}
	}
}

// TestUpStartFailure: a child that cannot start (sip on an address this
// host does not have) stops the start: up stops the children already
// up, names the one that failed, exits 1, and leaves no process.
func TestUpStartFailure(t *testing.T) {
	dir := t.TempDir()
	conf := loopbackEdge(t, dir, "192.0.2.1:5060")
	p := startProc(t, nil, "up", "--config", conf, "--data-dir", filepath.Join(dir, "state"))
	errc := make(chan error, 1)
	go func() { errc <- p.cmd.Wait() }()
	select {
	case err := <-errc:
		if ee, ok := err.(interface{ ExitCode() int }); !ok || ee.ExitCode() != 1 {
			t.Errorf("exit: %v, want status 1", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("xtrunk up did not give up")
	}
	<-p.done
	if !strings.Contains(p.log(), "child failed: sip exited while starting") {
		t.Errorf("no error naming sip:\n%s", p.log())
	}
	var pids []int
	p.mu.Lock()
	for _, m := range p.lines {
		if m["message"] == "child started" {
			pids = append(pids, int(m["pid"].(float64)))
		}
		if m["message"] == "child stopped" && m["child"] != "sip" && m["status"] != "exit status 0" {
			t.Errorf("%v stopped with %v", m["child"], m["status"])
		}
	}
	p.mu.Unlock()
	if len(pids) < 3 {
		t.Errorf("children started: %v, want relay, api and sip", pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("child %d is still there", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestUpHUPAndInterrupt: SIGHUP reaches every child (each logs its
// reload) and up; SIGINT stops all three at once with SIGINT, up exits 0
// and none is left.
func TestUpHUPAndInterrupt(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, nil, "up", "--config", loopbackEdge(t, dir, "127.0.0.1:0"), "--data-dir", filepath.Join(dir, "state"))
	p.waitLine(t, "xtrunk up: edge ready")
	pids := procChildren(p.cmd.Process.Pid)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for _, proc := range []string{"up", "relay", "api", "sip"} {
		waitFor(t, p, proc+"'s reload", func(m map[string]any) bool {
			return m["proc"] == proc && m["message"] == "SIGHUP: configuration reloaded"
		})
	}
	p.stop(t, syscall.SIGINT)
	for _, child := range []string{"relay", "api", "sip"} {
		waitFor(t, p, child+" stopped by SIGINT", func(m map[string]any) bool {
			return m["message"] == "child stopped" && m["child"] == child && m["after"] == "[interrupt]" && m["status"] == "exit status 0"
		})
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("child %d left behind", pid)
		}
	}
}

// waitFor waits for a JSON line of p that pred accepts.
func waitFor(t *testing.T, p *proc, what string, pred func(map[string]any) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		p.mu.Lock()
		for _, m := range p.lines {
			if pred(m) {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
	}
	t.Fatalf("no log line for %s", what)
}
