package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/signalling"
)

func TestSIPConfigFromYAML(t *testing.T) {
	p := writeYAML(t, `sip:
  listen_udp: 203.0.113.5:5060
  listen_tcp: ""
  listen_tls: auto
  tls_cert: /etc/xtrunk/cert.pem
  tls_key: /etc/xtrunk/key.pem
  tls_min_version: "1.1"
  tls_ca: /etc/xtrunk/ca.pem
  tls_insecure_skip_verify: true
  advertise: sip.example.net
  drain_timeout: 90s
  guard_max_requests: 32
  guard_request_window: 4s
  guard_max_auth_failures: 5
  guard_auth_window: 2m
  guard_ban: 1h
  options_interval: 15s
  guard_scanner: [friendly-scanner, evil]
`)
	cfg, cmd, err := sipConfig([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmd.notes) != 16 || !strings.Contains(cmd.notes[0], `"listen_udp" is deprecated, use "listen-udp"`) {
		t.Errorf("deprecation notes: %q", cmd.notes)
	}
	if cfg.ListenUDP != "203.0.113.5:5060" || cfg.ListenTCP != "" || cfg.ListenTLS != "auto" || cfg.TLSCert != "/etc/xtrunk/cert.pem" ||
		cfg.TLSKey != "/etc/xtrunk/key.pem" || cfg.TLSMinVersion != "1.1" || cfg.TLSCA != "/etc/xtrunk/ca.pem" || !cfg.TLSInsecureSkipVerify ||
		cfg.Advertise != "sip.example.net" {
		t.Errorf("listeners/TLS: %+v", cfg)
	}
	if cfg.DrainTimeout != 90*time.Second || cfg.GuardMaxRequests != 32 || cfg.GuardRequestWindow != 4*time.Second ||
		cfg.GuardMaxAuthFailures != 5 || cfg.GuardAuthWindow != 2*time.Minute || cfg.GuardBan != time.Hour ||
		cfg.OptionsInterval != 15*time.Second || strings.Join(cfg.GuardScanners, ",") != "friendly-scanner,evil" {
		t.Errorf("drain/guard: %+v", cfg)
	}
	def := signalling.DefaultConfig()
	if def.ListenTCP != signalling.ListenAuto || def.ListenTLS != signalling.ListenAuto || def.TLSMinVersion != "1.2" ||
		def.DrainTimeout != 10*time.Second || def.GuardMaxRequests != 16 || def.GuardBan != 5*time.Minute || def.OptionsInterval != 10*time.Second {
		t.Errorf("defaults: %+v", def)
	}
}

func TestSIPFlagValidation(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	empty := writeYAML(t, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-min-version", "0.9"}, "tls_min_version"},
		{[]string{"--tls-cert", "/nonexistent.pem"}, "tls_cert and tls_key"},
		{[]string{"--listen-udp", "", "--listen-tcp", ""}, "no listener"},
		{[]string{"--drain-timeout", "-1s"}, "drain_timeout"},
		{[]string{"--memory-limit", "16MiB"}, "below 64MiB"},
		{[]string{"--memory-limit", "1.5GiB"}, "want auto, off or a size"},
		{[]string{"--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key", "--listen-udp", "127.0.0.1:0"}, "tls_cert/tls_key"},
	} {
		args := append([]string{"--db", db, "--metrics", ""}, tc.args...)
		t.Setenv("XTRUNK_CONFIG", empty)
		err := sipDaemon.run(args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.args, err, tc.want)
		}
	}
}
