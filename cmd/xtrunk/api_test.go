package main

import (
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/control/api"
)

func TestAPIConfigFromYAML(t *testing.T) {
	p := writeYAML(t, "api:\n  listen: 127.0.0.1:9090\n  db: postgres://x@127.0.0.1/y\n  domain: example.net\n  edges: [ashburn, \"dublin,tokyo\"]\n  realm: sip.example.net\n")
	cfg, _, _, err := apiConfig([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.StoreOptions()
	if cfg.Listen != "127.0.0.1:9090" || cfg.DB != "postgres://x@127.0.0.1/y" || o.Domain != "example.net" || o.Realm != "sip.example.net" ||
		strings.Join(o.Edges, " ") != "ashburn dublin tokyo" {
		t.Errorf("config %+v / %+v", cfg, o)
	}
	if got := api.DefaultConfig(); got.Listen != "127.0.0.1:8080" || got.DB != "sqlite:xtrunk.db" {
		t.Errorf("defaults %+v", got)
	}
	if got := (api.Config{DB: "sqlite:/var/lib/xtrunk/x.db"}).CredentialsPath(); got != "/var/lib/xtrunk/xtrunk-credentials.env" {
		t.Errorf("credentials path %q", got)
	}
}

func TestAPIRejectsBadConfig(t *testing.T) {
	p := writeYAML(t, "api:\n  listen: 127.0.0.1:9090\n  database: x\n")
	if err := apiDaemon.run([]string{"--config", p}); err == nil || !strings.Contains(err.Error(), ":3: api: database: unknown key") {
		t.Errorf("unknown key: %v", err)
	}
	if err := apiDaemon.run([]string{"--config", writeYAML(t, ""), "--db", "mysql://x"}); err == nil || !strings.Contains(err.Error(), "unsupported DSN") {
		t.Errorf("bad DSN: %v", err)
	}
	if err := apiDaemon.run([]string{"--config", writeYAML(t, ""), "--log-level", "loud"}); err == nil {
		t.Error("bad log level accepted")
	}
}
