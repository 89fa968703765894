package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// The lab's operator account (XTRUNK_ACCOUNT_SID / XTRUNK_AUTH_TOKEN),
// PBX credentials and numbers.
const (
	upAccountSid = "AC5a1ab0000000000000000000000000a1"
	upAuthToken  = "1ab70ce01ab70ce01ab70ce01ab70ce0"
	upDomain     = "example.net"
	upTrunkHost  = "acme.pstn." + upDomain
	upUser       = "pbx1"
	upPassword   = "Str0ngPassw0rd!2026"
	upDID        = "+14155550100" // the PBX's caller ID; uas_carrier.xml checks it
	upCalled     = "+16505550199"
)

// upLab is `xtrunk up` in the relay namespace of a Triangle: the PBX
// (SIPp) in the caller namespace, carriers (SIPp) in the callee one.
type upLab struct {
	tri      *testbed.Triangle
	dir      string
	config   string
	sipp     string
	testdata string // signalling's scenarios
	own      string // this package's
	up       *testbed.Process
	log      *lineLog
	api      *http.Client
}

// upConfigYAML is the lab's xtrunk.yaml with the carrier on port.
func (l *upLab) upConfigYAML(carrierPort int) string {
	r, c := l.tri.RelayCallerIP.String(), l.tri.RelayCalleeIP.String()
	return fmt.Sprintf(`up:
  metrics: %[1]s:9100
  stop-timeout: 10s
relay:
  interface: [customer/%[1]s, carrier/%[2]s]
  listen-ng: %[1]s:2223
  ng-allow: [%[1]s/32]
  dataplane: userspace
  metrics: %[1]s:9101
  recording-dir: %[4]s
sip:
  listen-udp: %[1]s:5060
  listen-tcp: ""
  domain: %[5]s
  relay-ng: %[1]s:2223
  carrier: [sip:%[3]s:%[6]d]
  carrier-source: [%[3]s/32]
  carrier-probe-interval: 0s # the SIPp carrier answers calls, not probes
  default-cps: 0
  drain-timeout: 6s
  metrics: %[1]s:9102
api:
  listen: unix:%[7]s
  domain: %[5]s
  metrics: %[1]s:9103
`, r, c, l.tri.CalleeIP, filepath.Join(l.dir, "recordings"), upDomain, carrierPort, filepath.Join(l.dir, "api.sock"))
}

// TestUpLab (issue 11's Done-when): `xtrunk up` in a namespace lab; all
// three children ready; the sip child killed with SIGKILL comes back
// ready within 5 s; a carrier changed in the file and SIGHUP: the next
// call reaches the new carrier; SIGTERM with a call up: the call goes on
// through sip's drain and is hung up (BYE both ways) when drain-timeout
// passes, every child exits, up exits 0, no process is left.
func TestUpLab(t *testing.T) {
	l := &upLab{tri: labtest.NewTriangle(t, testbed.WithoutIPv6()), dir: t.TempDir(), sipp: labtest.RequireCommand(t, "sipp")}
	var err error
	if l.testdata, err = filepath.Abs("../../signalling/testdata"); err != nil {
		t.Fatal(err)
	}
	if l.own, err = filepath.Abs("testdata"); err != nil {
		t.Fatal(err)
	}
	l.config = filepath.Join(l.dir, "xtrunk.yaml")
	l.writeConfig(t, 5070)
	l.start(t)
	l.provision(t)
	r := l.tri.RelayCallerIP.String()

	l.call(t, "uac_auth.xml", 5070, "first-1") // carrier A

	// kill -9 the sip child: up restarts it
	sipPID := l.childPID(t, "sip")
	killed := time.Now()
	if err := syscall.Kill(sipPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	restarted := l.log.wait(t, "the sip child's restart", func(m map[string]any) bool {
		return m["message"] == "child started" && m["child"] == "sip" && m["pid"] != float64(sipPID)
	})
	l.waitReady(t, net.JoinHostPort(r, "9102"))
	back := time.Since(killed)
	t.Logf("sip child killed (pid %d): back (pid %v) and ready after %v", sipPID, restarted["pid"], back.Round(time.Millisecond))
	// A first crash is restarted after backoffMin; the rest is the child's
	// start, which a loaded machine stretches (its store alone may take
	// 10 s): no timing here, only that up did not hold it back for long.
	if back > backoffMax {
		t.Errorf("sip back and ready after %v, more than the longest backoff (%v)", back, backoffMax)
	}
	if got := l.childPID(t, "sip"); float64(got) != restarted["pid"] {
		t.Errorf("sip child in /proc: pid %d; up logged %v", got, restarted["pid"])
	}
	l.log.wait(t, "up seeing sip ready again", func(m map[string]any) bool {
		return m["message"] == "child ready" && m["child"] == "sip" && m["pid"] == restarted["pid"]
	})
	if _, m, err := getIn(t, l.tri.Relay, net.JoinHostPort(r, "9100"), "/metrics"); err != nil ||
		!strings.Contains(m, `xtrunk_up_child_restarts_total{child="sip"} 1`) || !strings.Contains(m, `xtrunk_up_child_up{child="sip"} 1`) {
		t.Errorf("up /metrics after the restart (%v):\n%s", err, m)
	}
	l.log.wait(t, "the crash's log line", func(m map[string]any) bool {
		return m["level"] == "error" && m["child"] == "sip" && m["status"] == "signal: killed" && m["restart_in"] != nil
	})

	// carrier B in the file, SIGHUP: the next call goes there
	l.writeConfig(t, 5080)
	if err := syscall.Kill(l.up.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l.log.wait(t, "sip's reload", func(m map[string]any) bool {
		return m["proc"] == "sip" && m["message"] == "SIGHUP: configuration reloaded" && fmt.Sprint(m["applied"]) == "[carrier]"
	})
	l.call(t, "uac_auth.xml", 5080, "second-1")

	l.drainAtStop(t)
}

func (l *upLab) writeConfig(t *testing.T, carrierPort int) {
	t.Helper()
	if err := os.WriteFile(l.config, []byte(l.upConfigYAML(carrierPort)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs `xtrunk up` and waits for every child's /readyz and up's.
func (l *upLab) start(t *testing.T) {
	t.Helper()
	l.log = &lineLog{}
	cmd := l.tri.Relay.Command(context.Background(), xtrunkBinary(t), "up", "--config", l.config, "--data-dir", filepath.Join(l.dir, "state"))
	cmd.Env = append(os.Environ(), "XTRUNK_ACCOUNT_SID="+upAccountSid, "XTRUNK_AUTH_TOKEN="+upAuthToken)
	cmd.Stdout, cmd.Stderr = l.log, l.log
	var err error
	if l.up, err = l.tri.Relay.StartCmd(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range l.log.childPIDs() { // a failed test must not leave children behind either
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("xtrunk up output:\n%s", lastN(l.log.text(), 300))
		}
	})
	r := l.tri.RelayCallerIP.String()
	for _, port := range []string{"9101", "9103", "9102", "9100"} {
		l.waitReady(t, net.JoinHostPort(r, port))
	}
	ready := l.log.wait(t, "the endpoints line", func(m map[string]any) bool { return m["message"] == "xtrunk up: edge ready" })
	if ready["credentials"] != "XTRUNK_ACCOUNT_SID / XTRUNK_AUTH_TOKEN (environment)" || fmt.Sprint(ready["sip"]) != "[udp:"+r+":5060]" ||
		!strings.HasPrefix(fmt.Sprint(ready["store"]), "sqlite:"+l.dir) {
		t.Errorf("endpoints: %v", ready)
	}
	sock := filepath.Join(l.dir, "api.sock")
	l.api = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// waitReady polls /readyz at addr (in the relay namespace) until 200.
func (l *upLab) waitReady(t *testing.T, addr string) {
	t.Helper()
	var code int
	var body string
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body, err = getIn(t, l.tri.Relay, addr, "/readyz"); err == nil && code == 200 {
			return
		}
		select {
		case <-l.up.Done():
			t.Fatalf("xtrunk up exited: %v", l.up.Wait())
		default:
		}
	}
	t.Fatalf("%s/readyz: %d %s %v", addr, code, body, err)
}

// childPID is the PID of up's child running subcommand name, from
// /proc/<up>/task/*/children.
func (l *upLab) childPID(t *testing.T, name string) int {
	t.Helper()
	for _, pid := range procChildren(l.up.PID()) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(string(cmdline), "\x00"); len(args) > 1 && args[1] == name {
			return pid
		}
	}
	t.Fatalf("no %s child of xtrunk up (pid %d) in /proc", name, l.up.PID())
	return 0
}

func procChildren(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// provision makes the acme trunk through the API, as an operator would:
// credential list, trunk, the PBX's DID on it.
func (l *upLab) provision(t *testing.T) {
	t.Helper()
	acc := "/2010-04-01/Accounts/" + upAccountSid
	cl := l.create(t, acc+"/SIP/CredentialLists.json", url.Values{"FriendlyName": {"pbx"}})
	l.create(t, acc+"/SIP/CredentialLists/"+cl+"/Credentials.json", url.Values{"Username": {upUser}, "Password": {upPassword}})
	trunk := l.create(t, "/v1/Trunks", url.Values{"FriendlyName": {"acme"}, "DomainName": {upTrunkHost}})
	l.create(t, "/v1/Trunks/"+trunk+"/CredentialLists", url.Values{"CredentialListSid": {cl}})
	pn := l.create(t, acc+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {upDID}})
	l.create(t, "/v1/Trunks/"+trunk+"/PhoneNumbers", url.Values{"PhoneNumberSid": {pn}})
}

func (l *upLab) create(t *testing.T, path string, form url.Values) string {
	t.Helper()
	req, err := http.NewRequest("POST", "http://xtrunk"+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(upAccountSid, upAuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := l.api.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out struct {
		Sid string `json:"sid"`
	}
	if res.StatusCode != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.Sid == "" {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
	}
	return out.Sid
}
