package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/signalling"
)

// ctlFromAfar runs xtrunk ctl from the PBX's namespace — another host
// as far as the edge can tell — against the edge's metrics listeners
// (sip checks the store's main account, the relay the credentials in
// its environment): without credentials 401 with a JSON error, with a
// wrong token 401 and counted in xtrunk_admin_auth_failures_total,
// with the credentials file it lists callID; /metrics stays open.
func ctlFromAfar(t *testing.T, l *upLab, bin, callID string) {
	t.Helper()
	r := l.tri.RelayCallerIP.String()
	sip, relay := "--sip="+net.JoinHostPort(r, "9102"), "--relay="+net.JoinHostPort(r, "9101")
	ctl := func(env []string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := l.tri.Caller.Command(ctx, bin, append([]string{"ctl", sip, relay}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := ctl([]string{"XTRUNK_ACCOUNT_SID=", "XTRUNK_AUTH_TOKEN="}, "calls"); err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "operator credentials") {
		t.Errorf("ctl calls from another host without credentials: %v %s", err, out)
	}
	wrong := []string{"XTRUNK_ACCOUNT_SID=" + upAccountSid, "XTRUNK_AUTH_TOKEN=00000000000000000000000000000000"}
	if out, err := ctl(wrong, "calls"); err == nil || !strings.Contains(out, "401") || !strings.Contains(out, "invalid operator credentials") {
		t.Errorf("ctl calls from another host with a wrong token: %v %s", err, out)
	}
	code, metrics, err := getIn(t, l.tri.Caller, net.JoinHostPort(r, "9102"), "/metrics")
	if err != nil || code != 200 || !strings.Contains(metrics, `xtrunk_admin_auth_failures_total{reason="wrong"} 1`) ||
		!strings.Contains(metrics, `xtrunk_admin_auth_failures_total{reason="missing"} 1`) {
		t.Errorf("sip /metrics from another host (%d, %v): want it open, with the failures counted:\n%s", code, err, grepLines(metrics, "xtrunk_admin_auth"))
	}
	creds := filepath.Join(l.dir, "operator-credentials")
	if err := os.WriteFile(creds, []byte("XTRUNK_ACCOUNT_SID="+upAccountSid+"\nXTRUNK_AUTH_TOKEN="+upAuthToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := ctl(nil, "--json", "--credentials", creds, "calls")
	var calls []signalling.LiveCall
	if err != nil || json.Unmarshal([]byte(out), &calls) != nil || len(calls) != 1 || calls[0].ID != callID {
		t.Errorf("ctl calls from another host with the credentials file: %v %s", err, out)
	}
	if out, err := ctl(nil, "--credentials", creds, "relay"); err != nil || !strings.Contains(out, "sessions") {
		t.Errorf("ctl relay from another host with the credentials file: %v %s", err, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// liveQualityInAPI: the API's in-progress call shows both legs' quality
// so far (sip refreshes the live row from the relay every few seconds).
func liveQualityInAPI(t *testing.T, l *upLab) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		live := l.apiCalls(t, "in-progress")
		if len(live) == 1 {
			cu, ca := live[0].Quality["customer"], live[0].Quality["carrier"]
			if cu.Packets > 20 && ca.Packets > 20 {
				for _, q := range []apiQuality{cu, ca} {
					if q.MOS < 3.5 || q.MOS > 4.5 || q.LossPct != 0 {
						t.Errorf("live quality %+v: a clean lab call's MOS should be about 4.4, no loss", q)
					}
				}
				t.Logf("API Calls?Status=in-progress quality: customer %+v, carrier %+v", cu, ca)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("API Calls?Status=in-progress never showed both legs' quality: %+v", live)
		}
	}
}
