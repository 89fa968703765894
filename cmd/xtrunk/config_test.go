package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/relay"
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
	p := writeYAML(t, "relay:\n  interfaces: [\"pub/192.0.2.1!203.0.113.1\", \"priv/10.1.1.1\"]\n  port-min: 40000\n  timeout: 30s\n  dataplane: userspace\n")
	cfg := relay.DefaultConfig()
	if err := loadSection(p, true, "relay", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.PortMin != 40000 || cfg.Timeout != 30*time.Second || cfg.Dataplane != "userspace" || cfg.PortMax != 39999 {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Interfaces) != 2 || cfg.Interfaces[0].Advertised.String() != "203.0.113.1" || cfg.Interfaces[1].Name != "priv" {
		t.Errorf("interfaces %+v", cfg.Interfaces)
	}
}

func TestUnknownYAMLKeysAreErrors(t *testing.T) {
	for _, body := range []string{
		"relay:\n  listen-ngg: 1.2.3.4:5\n",
		"relays:\n  port-min: 1\n",
	} {
		cfg := relay.DefaultConfig()
		err := loadSection(writeYAML(t, body), true, "relay", &cfg)
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("%q: err %v, want an unknown-field error", body, err)
		}
	}
}

func TestMissingDefaultConfigIsFine(t *testing.T) {
	cfg := relay.DefaultConfig()
	if err := loadSection(filepath.Join(t.TempDir(), "xtrunk.yaml"), false, "relay", &cfg); err != nil {
		t.Errorf("missing default file: %v", err)
	}
	if err := loadSection(filepath.Join(t.TempDir(), "nope.yaml"), true, "relay", &cfg); err == nil {
		t.Errorf("missing explicit file: no error")
	}
}

func TestRelayFlagsEnvAndValidation(t *testing.T) {
	t.Setenv("XTRUNK_PORT_MAX", "100")
	err := runRelay([]string{"--config", filepath.Join(t.TempDir(), "none.yaml")})
	if err == nil {
		t.Fatal("missing explicit config accepted")
	}
	err = runRelay([]string{"--interface", "pub/127.0.0.1", "--dataplane", "userspace", "--metrics", ""})
	if err == nil || !strings.Contains(err.Error(), "port range") {
		t.Errorf("XTRUNK_PORT_MAX=100 not applied or not refused: %v", err)
	}
	err = runRelay([]string{"--interface", "pub/127.0.0.1", "--port-max", "39999", "--dataplane", "dpdk"})
	if err == nil || !strings.Contains(err.Error(), "dataplane") {
		t.Errorf("bad dataplane: %v", err)
	}
}

// ng-allow comes from the relay section as a list, or from XTRUNK_NG_ALLOW
// comma-separated; bad CIDRs and an empty list are refused.
func TestRelayNGAllowConfig(t *testing.T) {
	cfg := relay.DefaultConfig()
	if err := loadSection(writeYAML(t, "relay:\n  ng-allow: [\"10.0.0.0/24\", \"2001:db8::1\"]\n"), true, "relay", &cfg); err != nil {
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
