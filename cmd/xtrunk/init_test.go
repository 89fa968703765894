package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/api"
)

// initIn runs xtrunk init's plan and write into dir.
func initIn(t *testing.T, dir, customer, carrier string, force bool) *initPlan {
	t.Helper()
	p, err := planInit(dir, "", customer, carrier, force)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.write(force); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInitWritesAFileEveryProcessLoads: the generated file passes
// check-config, loads through each process's config function and
// validation, names every flag of every process, and its sections agree
// with each other; the credentials are 0600 and parse.
func TestInitWritesAFileEveryProcessLoads(t *testing.T) {
	dir := t.TempDir()
	p := initIn(t, dir, "", "", false)
	conf := filepath.Join(dir, "xtrunk.yaml")
	if errs := checkConfigFile(conf); len(errs) != 0 {
		t.Fatalf("check-config: %v", errs)
	}
	rc, _, err := relayConfig([]string{"--config", conf})
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Validate(); err != nil {
		t.Error(err)
	}
	sc, _, err := sipConfig([]string{"--config", conf})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Validate(); err != nil {
		t.Error(err)
	}
	ac, metrics, _, err := apiConfig([]string{"--config", conf})
	if err != nil {
		t.Fatal(err)
	}
	addr := p.customer.addr
	if len(rc.Interfaces) != 2 || rc.Interfaces[0].Name != "customer" || rc.Interfaces[0].Addr != addr || rc.Interfaces[1].Name != "carrier" {
		t.Errorf("relay interfaces %+v, want customer and carrier on %s", rc.Interfaces, addr)
	}
	if sc.ListenUDP != netip.AddrPortFrom(addr, 5060).String() || sc.RelayNG != rc.ListenNG || sc.DB != ac.DB ||
		sc.DB != "sqlite:"+filepath.Join(dir, "xtrunk.db") || ac.RecordingDir != rc.RecordingDir {
		t.Errorf("cross-references: sip listen %s relay-ng %s db %s; relay listen-ng %s; api db %s", sc.ListenUDP, sc.RelayNG, sc.DB, rc.ListenNG, ac.DB)
	}
	for _, m := range []string{rc.Metrics, sc.Metrics, metrics, ac.Listen} {
		if ap, err := netip.ParseAddrPort(m); err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("metrics/api listener %q not on loopback", m)
		}
	}
	creds := filepath.Join(dir, "credentials")
	if ac.CredentialsFile != creds {
		t.Errorf("api credentials %q, want %q", ac.CredentialsFile, creds)
	}
	fi, err := os.Stat(creds)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials: %v %v", fi, err)
	}
	c, err := api.ReadCredentials(creds)
	if err != nil || c != p.credentialsSaved {
		t.Fatalf("credentials %+v %v, init said %+v", c, err, p.credentialsSaved)
	}

	// every flag of every process is in the file, set or commented out
	body, _ := os.ReadFile(conf)
	for _, s := range processSections() {
		fset, err := s.flags()
		if err != nil {
			t.Fatal(err)
		}
		fset.VisitAll(func(f *flag.Flag) {
			if f.Name == "config" || strings.HasPrefix(f.Usage, "deprecated") {
				return
			}
			if !strings.Contains(string(body), "\n  "+f.Name+":") && !strings.Contains(string(body), "\n  # "+f.Name+":") {
				t.Errorf("%s: flag %s not in the file", s.name, f.Name)
			}
		})
	}
}

// TestInitTwoAddresses: distinct customer and carrier addresses give the
// relay two interfaces and sip the matching relay-interface entries.
func TestInitTwoAddresses(t *testing.T) {
	dir := t.TempDir()
	initIn(t, dir, "198.18.0.10", "198.19.0.10", false)
	conf := filepath.Join(dir, "xtrunk.yaml")
	if errs := checkConfigFile(conf); len(errs) != 0 {
		t.Fatalf("check-config: %v", errs)
	}
	rc, _, err := relayConfig([]string{"--config", conf})
	if err != nil {
		t.Fatal(err)
	}
	sc, _, err := sipConfig([]string{"--config", conf})
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []string
	for _, i := range rc.Interfaces {
		ifaces = append(ifaces, i.String())
	}
	if strings.Join(ifaces, " ") != "customer/198.18.0.10 carrier/198.19.0.10" || strings.Join(sc.RelayInterfaces, " ") != strings.Join(ifaces, " ") {
		t.Errorf("relay %q, sip relay-interface %q", ifaces, sc.RelayInterfaces)
	}
	if sc.ListenUDP != "0.0.0.0:5060" {
		t.Errorf("sip listen-udp %q: two addresses need the wildcard", sc.ListenUDP)
	}
}

// TestInitKeepsExistingFiles: a second init refuses; --force rewrites
// the config and keeps the credentials (the store's account is in them).
func TestInitKeepsExistingFiles(t *testing.T) {
	dir := t.TempDir()
	first := initIn(t, dir, "198.18.0.10", "", false)
	if _, err := planInit(dir, "", "198.18.0.10", "", false); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init: %v", err)
	}
	os.Remove(filepath.Join(dir, "xtrunk.yaml"))
	if _, err := planInit(dir, "", "198.18.0.10", "", false); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("init over a credentials file: %v", err)
	}
	second := initIn(t, dir, "198.18.0.11", "", true)
	if !second.keepCredentials || second.credentialsSaved != first.credentialsSaved {
		t.Errorf("--force replaced the credentials")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "xtrunk.yaml")); !strings.Contains(string(b), "customer/198.18.0.11") {
		t.Errorf("--force did not rewrite the config")
	}
}

// TestInitAddressInNamespace runs xtrunk init in a lab namespace with two
// links: without a default route it takes the first global address (the
// first link's), with one the address of the default route's interface
// (the second link's).
func TestInitAddressInNamespace(t *testing.T) {
	labtest.RequirePrivileged(t)
	bin := xtrunkBinary(t)
	lab := labtest.NewLab(t)
	edge, a, b := mustNS(t, lab, "edge"), mustNS(t, lab, "a"), mustNS(t, lab, "b")
	la, err := lab.Link(edge, a, testbed.LinkOptions{AAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.1.1/24")}, BAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.1.2/24")}})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := lab.Link(edge, b, testbed.LinkOptions{AAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.2.1/24")}, BAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.2.2/24")}})
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string) string {
		dir := filepath.Join(t.TempDir(), name)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := edge.Run(ctx, bin, "init", "--dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		rc, _, err := relayConfig([]string{"--config", filepath.Join(dir, "xtrunk.yaml")})
		if err != nil || len(rc.Interfaces) != 2 {
			t.Fatalf("%v %+v\n%s", err, rc.Interfaces, out)
		}
		return rc.Interfaces[0].Addr.String() + " " + out
	}
	if got := run("noroute"); !strings.HasPrefix(got, la.A.IPv4().String()+" ") || !strings.Contains(got, "first global address") {
		t.Errorf("without a default route: %s", got)
	}
	// a default route inside the lab: toward namespace b only, which has
	// no way out
	if _, err := edge.IP("route", "add", "default", "via", lb.B.IPv4().String(), "dev", lb.A.Name); err != nil {
		t.Fatal(err)
	}
	if got := run("route"); !strings.HasPrefix(got, lb.A.IPv4().String()+" ") || !strings.Contains(got, "default route") || !strings.Contains(got, lb.A.Name) {
		t.Errorf("with a default route via %s: %s", lb.A.Name, got)
	}
}

func mustNS(t *testing.T, lab *testbed.Lab, name string) *testbed.NS {
	t.Helper()
	n, err := lab.AddNS(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInitThenAPILogsIn starts the real `xtrunk api` on the generated file
// (its listeners moved to free loopback ports by flags) and logs in
// through the REST API with the generated credentials.
func TestInitThenAPILogsIn(t *testing.T) {
	dir := t.TempDir()
	p := initIn(t, dir, "127.0.0.1", "", false)
	proc := startProc(t, nil, "api", "--config", filepath.Join(dir, "xtrunk.yaml"), "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
	rdy := proc.waitLine(t, "api ready")
	acct := "http://" + rdy["listen"].(string) + "/2010-04-01/Accounts/" + p.credentialsSaved.AccountSid + ".json"
	req, _ := http.NewRequest(http.MethodGet, acct, nil)
	req.SetBasicAuth(p.credentialsSaved.AccountSid, p.credentialsSaved.AuthToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET %s with the generated credentials: %d", acct, res.StatusCode)
	}
	if code, _ := get(t, acct); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d", code)
	}
	if !strings.Contains(proc.log(), filepath.Join(dir, "credentials")) {
		t.Errorf("the api does not say where the credentials came from")
	}
	proc.stop(t, os.Interrupt)
}

// TestRunAnEdgeProvisioning runs the README's "Run an edge" provisioning
// on the real `xtrunk api` started from xtrunk init's file: the curl
// script (examples/provision.sh) and the twilio-go example, then checks
// both trunks through the API.
func TestRunAnEdgeProvisioning(t *testing.T) {
	labtest.RequireCommand(t, "jq")
	dir := t.TempDir()
	p := initIn(t, dir, "127.0.0.1", "", false)
	proc := startProc(t, nil, "api", "--config", filepath.Join(dir, "xtrunk.yaml"), "--listen", "127.0.0.1:0", "--metrics", "", "--domain", "example.net")
	base := "http://" + proc.waitLine(t, "api ready")["listen"].(string)
	creds := filepath.Join(dir, "credentials")
	env := append(os.Environ(), "API="+base, "DOMAIN=example.net")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "sh", "../../examples/provision.sh", creds)
	sh.Env = env
	if out, err := sh.CombinedOutput(); err != nil || !strings.Contains(string(out), "acme.pstn.example.net") {
		t.Fatalf("provision.sh: %v\n%s", err, out)
	}
	tw := exec.CommandContext(ctx, "go", "run", "../../examples/twilio-go", "-api", base, "-domain", "example.net")
	tw.Env = append(os.Environ(), "XTRUNK_ACCOUNT_SID="+p.credentialsSaved.AccountSid, "XTRUNK_AUTH_TOKEN="+p.credentialsSaved.AuthToken)
	if out, err := tw.CombinedOutput(); err != nil || !strings.Contains(string(out), "globex.pstn.example.net") {
		t.Fatalf("twilio-go example: %v\n%s", err, out)
	}

	getJSON := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.SetBasicAuth(p.credentialsSaved.AccountSid, p.credentialsSaved.AuthToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var trunks struct {
		Trunks []struct{ Sid, DomainName string } `json:"trunks"`
	}
	getJSON("/v1/Trunks", &trunks)
	if len(trunks.Trunks) != 2 {
		t.Fatalf("trunks %+v", trunks)
	}
	for _, tr := range trunks.Trunks {
		for _, sub := range []string{"OriginationUrls", "IpAccessControlLists", "CredentialLists", "PhoneNumbers"} {
			var list map[string]any
			getJSON("/v1/Trunks/"+tr.Sid+"/"+sub, &list)
			key := map[string]string{"OriginationUrls": "origination_urls", "IpAccessControlLists": "ip_access_control_lists",
				"CredentialLists": "credential_lists", "PhoneNumbers": "phone_numbers"}[sub]
			if items, _ := list[key].([]any); len(items) != 1 {
				t.Errorf("trunk %s: %s %v", tr.Sid, sub, list)
			}
		}
	}
	proc.stop(t, os.Interrupt)
}
