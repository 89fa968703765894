package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigErrors: each bad file gives the expected errors, each
// naming the file and its line.
func TestCheckConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string // "LINE: substring", one per error, in order
	}{
		{"unknown section", "relay:\n  interface: [a/192.0.2.1]\nkamailio:\n  x: 1\n", []string{`3: unknown section "kamailio"`}},
		{"duplicate section", "api:\n  listen: 127.0.0.1:8080\napi:\n  listen: 127.0.0.1:8081\n", []string{"3: section api: already on line 1"}},
		{"yaml syntax", "relay:\n  port-min: 1\n  x: y: z\n", []string{"3: mapping values are not allowed"}},
		{"unknown key", "sip:\n  listen-udp: 192.0.2.1:5060\n  listen_udpp: x\n", []string{"3: sip: listen_udpp: unknown key"}},
		{"duplicate key", "relay:\n  interface: [a/192.0.2.1]\n  port-min: 40000\n  port-min: 41000\n", []string{"4: relay: port-min: already set on line 3"}},
		{"bad duration", "sip:\n  drain-timeout: 10 minutes\n", []string{`2: sip: drain-timeout: invalid value "10 minutes"`}},
		{"bad int", "relay:\n  interface: [a/192.0.2.1]\n  port-max: lots\n", []string{`3: relay: port-max: invalid value "lots"`}},
		{"bad bool", "sip:\n  digest-uri-check: maybe\n", []string{`2: sip: digest-uri-check: invalid value "maybe"`}},
		{"bad interface", "relay:\n  interface:\n    - customer/192.0.2.1\n    - carrier/not-an-ip\n", []string{`4: relay: interface: "carrier/not-an-ip"`}},
		{"bad address", "sip:\n  listen-udp: 192.0.2.1\n  relay-ng: 127.0.0.1:99999\napi:\n  listen: 127.0.0.1:8080\n  edge-address: [300.1.1.1]\n",
			[]string{`2: sip: listen-udp: "192.0.2.1"`, `3: sip: relay-ng: "127.0.0.1:99999": port`, `6: api: edge-address: "300.1.1.1"`}},
		{"bad dsn", "api:\n  db: mysql://x\n", []string{`2: api: db: "mysql://x": want sqlite:PATH`}},
		{"relay validation", "relay:\n  interface: [a/192.0.2.1]\n  port-min: 5000\n  port-max: 4000\n", []string{"1: relay: relay config: port range 5000-4000"}},
		{"relay without interfaces", "relay:\n  listen-ng: 127.0.0.1:2223\n", []string{"1: relay: relay config: at least one --interface"}},
		{"sip validation", "\nsip:\n  tls-cert: /x.pem\n", []string{"2: sip: signalling: bad config: tls_cert and tls_key go together"}},
		{"all errors of a file", "relay:\n  interface: [a/192.0.2.1]\n  port-min: x\n  nope: 1\nsip:\n  timeout: 3\n  media-timeout: 2\n",
			[]string{`3: relay: port-min: invalid value "x"`, "4: relay: nope: unknown key", "6: sip: timeout: unknown key", `7: sip: media-timeout: invalid value "2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeYAML(t, tc.body)
			errs := checkConfigFile(p)
			if len(errs) != len(tc.want) {
				t.Fatalf("%d errors %q, want %d", len(errs), errs, len(tc.want))
			}
			for i, w := range tc.want {
				line, msg, _ := strings.Cut(w, ": ")
				got := errs[i].Error()
				if !strings.Contains(got, p+":"+line) || !strings.Contains(got, msg) {
					t.Errorf("error %d: %q, want %s:%s and %q", i, got, p, line, msg)
				}
			}
		})
	}
}

// TestCheckConfigOK: a good file, the packaged example, and a file with
// a section of a process only; a missing file is an error.
func TestCheckConfigOK(t *testing.T) {
	for _, p := range []string{
		writeYAML(t, "api:\n  listen: unix:/run/xtrunk/api.sock\n  db: postgres://x@db/xtrunk\n"),
		"../../deploy/debian/xtrunk.yaml",
		writeYAML(t, ""),
	} {
		if errs := checkConfigFile(p); len(errs) != 0 {
			t.Errorf("%s: %q", p, errs)
		}
	}
	if errs := checkConfigFile(filepath.Join(t.TempDir(), "none.yaml")); len(errs) != 1 {
		t.Errorf("missing file: %q", errs)
	}
}

// TestCheckConfigCredentials: the api's credentials file is checked as
// the api would read it: mode and content.
func TestCheckConfigCredentials(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	p := writeYAML(t, "api:\n  credentials: "+creds+"\n")
	if errs := checkConfigFile(p); len(errs) != 0 {
		t.Errorf("absent credentials (the api generates them): %q", errs)
	}
	if err := os.WriteFile(creds, []byte("XTRUNK_ACCOUNT_SID=AC"+strings.Repeat("0", 32)+"\nXTRUNK_AUTH_TOKEN="+strings.Repeat("a", 32)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := checkConfigFile(p); len(errs) != 1 || !strings.Contains(errs[0].Error(), "chmod 600") || !strings.Contains(errs[0].Error(), p+":1: api") {
		t.Errorf("world-readable credentials: %q", errs)
	}
	if err := os.Chmod(creds, 0o600); err != nil {
		t.Fatal(err)
	}
	if errs := checkConfigFile(p); len(errs) != 0 {
		t.Errorf("good credentials: %q", errs)
	}
}
