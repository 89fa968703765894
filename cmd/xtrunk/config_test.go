package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRelayConfigFromYAML(t *testing.T) {
	// keys are the flag names, including log-level and interface; a
	// yaml-only tuning key (timeout-linger) goes to the struct
	p := writeYAML(t, "relay:\n  interface: [\"pub/192.0.2.1!203.0.113.1\", \"priv/10.1.1.1\"]\n  port-min: 40000\n  timeout: 30s\n  dataplane: userspace\n  log-level: debug\n  log-format: json\n  timeout-linger: 3s\n")
	cfg, cmd, err := relayConfig([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PortMin != 40000 || cfg.Timeout != 30*time.Second || cfg.Dataplane != "userspace" || cfg.PortMax != 39999 || cfg.TimeoutLinger != 3*time.Second {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Interfaces) != 2 || cfg.Interfaces[0].Advertised.String() != "203.0.113.1" || cfg.Interfaces[1].Name != "priv" {
		t.Errorf("interfaces %+v", cfg.Interfaces)
	}
	if cmd.logLevel != "debug" || cmd.logFormat != "json" || len(cmd.notes) != 0 {
		t.Errorf("log-level %q, log-format %q, notes %q", cmd.logLevel, cmd.logFormat, cmd.notes)
	}
}

func TestOldKeysLoadWithDeprecation(t *testing.T) {
	p := writeYAML(t, "relay:\n  interfaces: [\"pub/192.0.2.1\"]\n  listen_ng: 127.0.0.1:2299\n")
	cfg, cmd, err := relayConfig([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Interfaces) != 1 || cfg.ListenNG != "127.0.0.1:2299" {
		t.Errorf("config %+v", cfg)
	}
	want := []string{p + `:2: relay: "interfaces" is deprecated, use "interface"`, p + `:3: relay: "listen_ng" is deprecated, use "listen-ng"`}
	if len(cmd.notes) != 2 || !strings.HasPrefix(cmd.notes[0], want[0]) || !strings.HasPrefix(cmd.notes[1], want[1]) {
		t.Errorf("notes %q, want prefixes %q", cmd.notes, want)
	}
}

func TestPrecedenceFlagsEnvFile(t *testing.T) {
	p := writeYAML(t, "relay:\n  interface: [pub/192.0.2.1]\n  port-min: 40000\n  port-max: 40100\n  timeout: 30s\n")
	t.Setenv("XTRUNK_PORT_MAX", "40200")
	t.Setenv("XTRUNK_TIMEOUT", "20s")
	cfg, _, err := relayConfig([]string{"--config", p, "--timeout", "10s", "--interface", "a/192.0.2.9", "--interface", "b/192.0.2.10"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PortMin != 40000 || cfg.PortMax != 40200 || cfg.Timeout != 10*time.Second {
		t.Errorf("file < env < flags: %+v", cfg)
	}
	if len(cfg.Interfaces) != 2 || cfg.Interfaces[0].Name != "a" {
		t.Errorf("flags replace the file's list: %+v", cfg.Interfaces)
	}
	t.Setenv("XTRUNK_CONFIG", p)
	cfg, cmd, err := relayConfig(nil)
	if err != nil || !cmd.explicit || cfg.PortMin != 40000 {
		t.Errorf("XTRUNK_CONFIG: explicit %v, %+v, %v", cmd != nil && cmd.explicit, cfg, err)
	}
}

func TestConfigErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"relay:\n  port-min: 1\n  listen-ngg: 1.2.3.4:5\n", ":3: relay: listen-ngg: unknown key"},
		{"relays:\n  port-min: 1\n", ":1: unknown section \"relays\""},
		{"api: {}\nrelay:\n\n  port-min: abc\n", ":4: relay: port-min: invalid value \"abc\""},
		{"relay:\n  timeout: 30s\n  timeout-linger: soon\n", "line 3"},
		{"relay:\n  port-min: [1, 2]\n", ":2: relay: port-min: takes one value"},
		{"relay:\n  port-min: 1\n  port_min: 2\n", ":3: relay: port_min: already set on line 2"},
		{"relay:\n  config: other.yaml\n", ":2: relay: config: the config file cannot name another one"},
		{"relay:\n  port-min: 1\n   bad indent: x\n", ".yaml:3: mapping values"},
		{"relay: [1]\n", ":1: relay: want a mapping"},
	} {
		p := writeYAML(t, tc.body)
		_, _, err := relayConfig([]string{"--config", p})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) && !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%q: err %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestOtherSectionsAndEmptyFiles(t *testing.T) {
	// a file with every section: the relay reads its own only
	p := writeYAML(t, "sip:\n  listen-udp: 127.0.0.1:5070\napi:\n  listen: 127.0.0.1:9999\nrelay:\n  interface: [pub/192.0.2.1]\n")
	if _, _, err := relayConfig([]string{"--config", p}); err != nil {
		t.Errorf("all sections: %v", err)
	}
	for _, body := range []string{"", "# nothing\n", "relay:\n"} {
		if _, _, err := relayConfig([]string{"--config", writeYAML(t, body), "--interface", "pub/192.0.2.1"}); err != nil {
			t.Errorf("%q: %v", body, err)
		}
	}
}

func TestMissingDefaultConfigIsFine(t *testing.T) {
	t.Chdir(t.TempDir())
	if _, _, err := relayConfig(nil); err != nil {
		t.Errorf("missing default file: %v", err)
	}
	if _, _, err := relayConfig([]string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}); err == nil {
		t.Errorf("missing explicit file: no error")
	}
}

func TestRelayFlagsEnvAndValidation(t *testing.T) {
	t.Setenv("XTRUNK_PORT_MAX", "100")
	err := relayDaemon.run([]string{"--config", filepath.Join(t.TempDir(), "none.yaml")})
	if err == nil {
		t.Fatal("missing explicit config accepted")
	}
	empty := writeYAML(t, "")
	err = relayDaemon.run([]string{"--config", empty, "--interface", "pub/127.0.0.1", "--dataplane", "userspace", "--metrics", ""})
	if err == nil || !strings.Contains(err.Error(), "port range") {
		t.Errorf("XTRUNK_PORT_MAX=100 not applied or not refused: %v", err)
	}
	err = relayDaemon.run([]string{"--config", empty, "--interface", "pub/127.0.0.1", "--port-max", "39999", "--dataplane", "dpdk"})
	if err == nil || !strings.Contains(err.Error(), "dataplane") {
		t.Errorf("bad dataplane: %v", err)
	}
	err = relayDaemon.run([]string{"--config", empty, "--interface", "pub/127.0.0.1", "--log-format", "xml"})
	if err == nil || !strings.Contains(err.Error(), "log-format") {
		t.Errorf("bad log format: %v", err)
	}
	t.Setenv("XTRUNK_LOG_LEVEL", "loud")
	if err := relayDaemon.run([]string{"--config", empty, "--interface", "pub/127.0.0.1"}); err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Errorf("bad XTRUNK_LOG_LEVEL: %v", err)
	}
}

// TestReloadFlagsOnly: SIGHUP's reload of a process that applies only
// the log level (the relay): the level from the file, the changed keys
// named as needing a restart, a bad file refused with the level kept.
func TestReloadFlagsOnly(t *testing.T) {
	defer zerolog.SetGlobalLevel(zerolog.GlobalLevel())
	p := writeYAML(t, "relay:\n  log-level: warn\n  interface: [pub/192.0.2.1]\n")
	_, cmd, err := relayConfig([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	reload := reloadFlagsOnly(cmd, func() (*command, error) {
		_, fresh, err := relayConfig([]string{"--config", p})
		return fresh, err
	})
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	if err := os.WriteFile(p, []byte("relay:\n  interface: [pub/192.0.2.1, priv/10.0.0.1]\n  port-max: 35000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.reloadNow(log, reload)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if zerolog.GlobalLevel() != zerolog.InfoLevel || m["message"] != "SIGHUP: configuration reloaded" || m["level"] != "warn" ||
		fmt.Sprint(m["applied"]) != "[log-level]" || fmt.Sprint(m["restart_needed"]) != "[interface port-max]" {
		t.Errorf("level %v, line %v", zerolog.GlobalLevel(), m)
	}

	buf.Reset()
	if err := os.WriteFile(p, []byte("relay:\n  log-level: debug\n  port-max: lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.reloadNow(log, reload)
	if zerolog.GlobalLevel() != zerolog.InfoLevel || !strings.Contains(buf.String(), `"level":"error"`) || !strings.Contains(buf.String(), "port-max") ||
		!strings.Contains(buf.String(), ":3:") {
		t.Errorf("bad file: level %v, log %s", zerolog.GlobalLevel(), buf.String())
	}
}

// ng-allow comes from the relay section as a list, or from XTRUNK_NG_ALLOW
// comma-separated; bad CIDRs and an empty list are refused.
func TestRelayNGAllowConfig(t *testing.T) {
	cfg, _, err := relayConfig([]string{"--config", writeYAML(t, "relay:\n  interface: [pub/192.0.2.1]\n  ng-allow: [\"10.0.0.0/24\", \"2001:db8::1\"]\n")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.NGAllowPrefixes()
	if err != nil || len(got) != 2 || got[0].String() != "10.0.0.0/24" || got[1].String() != "2001:db8::1/128" {
		t.Errorf("ng-allow from yaml: %v, %v", got, err)
	}
	cfg.NGAllow = []string{"127.0.0.1/32,192.0.2.0/28"} // XTRUNK_NG_ALLOW=a,b
	if got, err := cfg.NGAllowPrefixes(); err != nil || len(got) != 2 {
		t.Errorf("comma-separated ng-allow: %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {"not-a-cidr"}, {"10.0.0.0/33"}} {
		cfg.NGAllow = bad
		if _, err := cfg.NGAllowPrefixes(); err == nil {
			t.Errorf("ng-allow %q accepted", bad)
		}
	}
}

// --dataplane xdp is socketless by default; --socketless=false and yaml
// socketless: false bring back bound sockets per call; an explicit
// --socketless with the userspace dataplane is refused.
func TestRelaySocketlessDefault(t *testing.T) {
	empty := writeYAML(t, "")
	cfg, _, err := relayConfig([]string{"--config", empty, "--interface", "pub/192.0.2.1"})
	if err != nil || cfg.Dataplane != "xdp" || !cfg.Socketless {
		t.Errorf("default: dataplane %q socketless %v (%v), want xdp, true", cfg.Dataplane, cfg.Socketless, err)
	}
	cfg, _, err = relayConfig([]string{"--config", empty, "--interface", "pub/192.0.2.1", "--socketless=false"})
	if err != nil || cfg.Socketless {
		t.Errorf("--socketless=false: socketless %v (%v)", cfg.Socketless, err)
	}
	off := writeYAML(t, "relay:\n  socketless: false\n")
	cfg, _, err = relayConfig([]string{"--config", off, "--interface", "pub/192.0.2.1"})
	if err != nil || cfg.Socketless {
		t.Errorf("yaml socketless: false: socketless %v (%v)", cfg.Socketless, err)
	}
	if _, _, err = relayConfig([]string{"--config", empty, "--interface", "pub/192.0.2.1", "--dataplane", "userspace"}); err != nil {
		t.Errorf("--dataplane userspace (socketless by default): %v", err)
	}
	_, _, err = relayConfig([]string{"--config", empty, "--interface", "pub/192.0.2.1", "--dataplane", "userspace", "--socketless"})
	if err == nil || !strings.Contains(err.Error(), "--socketless needs --dataplane xdp") {
		t.Errorf("--dataplane userspace --socketless: %v, want refused", err)
	}
}
