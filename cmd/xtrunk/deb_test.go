package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// TestDebPackage builds the .deb the way `make deb` does (the binary
// stamped with a version, then deploy/debian/build-deb.sh), unpacks it
// into a scratch root with dpkg -x, checks its layout, verifies its
// systemd units with systemd-analyze (which must print nothing: it
// reports unknown keys and bad values as warnings with exit 0), and runs
// the packaged /usr/bin/xtrunk --version.
func TestDebPackage(t *testing.T) {
	labtest.RequirePrivileged(t)
	for _, tool := range []string{"dpkg-deb", "dpkg", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (make test-deps installs it)", tool, err)
		}
	}
	dir := t.TempDir()
	bin := labtest.Build{LDFlags: "-X main.version=v1.2.3-4-gabcdef -X main.revision=abcdef", Env: []string{"CGO_ENABLED=0"}}.Binary(t)
	out, err := exec.Command("sh", "../../deploy/debian/build-deb.sh", bin, "v1.2.3-4-gabcdef", filepath.Join(dir, "dist")).CombinedOutput()
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, out)
	}
	deb := strings.TrimSpace(string(out))
	if filepath.Base(deb) != "xtrunk_1.2.3+4+gabcdef_amd64.deb" {
		t.Errorf("package %q", deb)
	}
	if out, err := exec.Command("dpkg-deb", "--info", deb).CombinedOutput(); err != nil || !strings.Contains(string(out), "Package: xtrunk") ||
		!strings.Contains(string(out), "Depends: adduser") || !strings.Contains(string(out), "postinst") {
		t.Errorf("dpkg-deb --info: %v\n%s", err, out)
	}
	// /etc/xtrunk/xtrunk.yaml is postinst's (xtrunk init), not a conffile
	if out, err := exec.Command("dpkg-deb", "--ctrl-tarfile", deb).Output(); err != nil || strings.Contains(string(out), "conffiles") {
		t.Errorf("control: %v, a conffiles entry for a generated file", err)
	}
	if out, err := exec.Command("dpkg-deb", "-I", deb, "postinst").Output(); err != nil || !strings.Contains(string(out), "xtrunk init --dir /etc/xtrunk") {
		t.Errorf("postinst does not generate the config: %v", err)
	}

	root := filepath.Join(dir, "root")
	if out, err := exec.Command("dpkg", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -x: %v\n%s", err, out)
	}
	units := []string{"xtrunk.service", "xtrunk-relay.service", "xtrunk-sip.service", "xtrunk-api.service"}
	for _, p := range append([]string{"usr/bin/xtrunk", "etc/xtrunk", "usr/share/doc/xtrunk/examples/xtrunk.yaml", "var/lib/xtrunk", "usr/lib/sysctl.d/60-xtrunk.conf"}, prefixed("lib/systemd/system/", units)...) {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("package lacks /%s: %v", p, err)
		}
	}

	// the packaged binary runs and says which build it is
	xt := filepath.Join(root, "usr/bin/xtrunk")
	if out, err := exec.Command(xt, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "xtrunk v1.2.3-4-gabcdef") {
		t.Errorf("%s --version: %v %q", xt, err, out)
	}
	// what postinst runs: the packaged binary generates the config and
	// credentials, and checks the result
	etc := filepath.Join(root, "etc/xtrunk")
	if out, err := exec.Command(xt, "init", "--dir", etc, "--force").CombinedOutput(); err != nil || !strings.Contains(string(out), "xtrunk up --config "+etc+"/xtrunk.yaml") {
		t.Errorf("%s init: %v\n%s", xt, err, out)
	}
	if out, err := exec.Command(xt, "check-config", filepath.Join(etc, "xtrunk.yaml")).CombinedOutput(); err != nil || !strings.Contains(string(out), ": ok") {
		t.Errorf("%s check-config: %v\n%s", xt, err, out)
	}
	// the example config loads in every process (keys are flags, none unknown)
	conf := filepath.Join(root, "usr/share/doc/xtrunk/examples/xtrunk.yaml")
	if _, _, err := relayConfig([]string{"--config", conf}); err != nil {
		t.Errorf("example config, relay: %v", err)
	}
	if _, _, err := sipConfig([]string{"--config", conf}); err != nil {
		t.Errorf("example config, sip: %v", err)
	}
	if _, _, _, err := apiConfig([]string{"--config", conf}); err != nil {
		t.Errorf("example config, api: %v", err)
	}

	// systemd-analyze verify with the units' binary pointed at the
	// extracted one (--root would also look for sysinit.target and
	// /bin/kill inside the scratch root)
	udir := filepath.Join(dir, "units")
	if err := os.MkdirAll(udir, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"Type=notify", "Restart=on-failure", "User=xtrunk", "--config /etc/xtrunk/xtrunk.yaml"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", u, want)
			}
		}
		if got := environmentFiles(s); !slices.Equal(got, unitEnvFiles[u]) {
			t.Errorf("%s: EnvironmentFile= %q, want %q", u, got, unitEnvFiles[u])
		}
		p := filepath.Join(udir, u)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(s, "/usr/bin/xtrunk ", xt+" ")), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err = exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// unitEnvFiles are the environment files each unit reads, in order (a
// later one wins), all optional ("-"): the secrets the processes take
// from XTRUNK_* variables only (the relay's operator account, above
// all) reach a service through them, never through the unit itself.
var unitEnvFiles = map[string][]string{
	"xtrunk.service":       {"-/etc/xtrunk/credentials", "-/etc/xtrunk/xtrunk.env"},
	"xtrunk-relay.service": {"-/etc/xtrunk/credentials", "-/etc/xtrunk/xtrunk.env", "-/etc/xtrunk/relay.env"},
	"xtrunk-sip.service":   {"-/etc/xtrunk/xtrunk.env", "-/etc/xtrunk/sip.env"},
	"xtrunk-api.service":   {"-/etc/xtrunk/xtrunk.env", "-/etc/xtrunk/api.env"},
}

// environmentFiles is a unit's EnvironmentFile= values, in order.
func environmentFiles(unit string) []string {
	var out []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "EnvironmentFile="); ok {
			out = append(out, v)
		}
	}
	return out
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}
