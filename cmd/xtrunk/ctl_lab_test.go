package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/signalling"
	"github.com/xtrunk/xtrunk/signalling/limit"
)

// TestCtlTopLab (issue 14's console): `xtrunk up` in a namespace lab, a
// SIPp PBX's call to a SIPp carrier held up: `xtrunk ctl calls` lists it
// with both legs' media and quality, `ctl call` shows its SIP ladder,
// `xtrunk top` in tmux shows it on its screen, `ctl hangup` ends it (the
// PBX and the carrier each get a BYE: their scenarios end on it) and its
// CDR's hangup cause is "administratively ended"; then a PBX with a
// wrong password is banned, `ctl bans` lists it and `ctl unban` lifts
// the ban.
func TestCtlTopLab(t *testing.T) {
	labtest.RequirePrivileged(t)
	tmux := labtest.RequireCommand(t, "tmux")
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
	bin := xtrunkBinary(t)
	ctl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return l.tri.Relay.Run(ctx, bin, append([]string{"ctl", "--config", l.config}, args...)...)
	}

	uas := l.carrier(t, 5070)
	uac := l.pbx(t, filepath.Join(l.own, "uac_wait_bye.xml"), "ctl-1", 6200)

	// 1. ctl calls: the call, answered, with media on both legs
	var call signalling.LiveCall
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		out, err := ctl("--json", "calls")
		var calls []signalling.LiveCall
		if err == nil && json.Unmarshal([]byte(out), &calls) == nil && len(calls) == 1 && calls[0].Status == "in-progress" &&
			len(calls[0].Legs) == 2 && calls[0].Legs[0].Packets > 20 && calls[0].Legs[1].Packets > 20 {
			call = calls[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctl calls never listed the answered call with media: %v %s\nPBX:\n%s", err, out, lastN(uac.Output(), 40))
		}
	}
	if call.From != upDID || call.To != upCalled || call.Trunk == "" || !strings.HasPrefix(call.Sid, "CA") || call.Codec == "" {
		t.Errorf("live call %+v", call)
	}
	for _, leg := range call.Legs {
		if leg.MOS < 3.5 || leg.MOS > 4.5 || leg.LossPct != 0 {
			t.Errorf("leg %+v: a clean lab call's MOS should be G.711's (about 4.4), no loss", leg)
		}
	}
	// 3. xtrunk top in tmux shows the call (first, while the PBX's audio
	// still plays: the screenshot shows packets per second)
	screen := topInTmux(t, l, tmux, bin, call.ID)
	t.Logf("xtrunk top:\n%s", screen)

	// the API lists it as in-progress while it is up
	if live := l.apiCalls(t, "in-progress"); len(live) != 1 || live[0].Sid != call.Sid || live[0].AnswerTime == nil || live[0].EndTime != nil {
		t.Errorf("API Calls?Status=in-progress: %+v", live)
	}
	if ringing := l.apiCalls(t, "ringing"); len(ringing) != 0 {
		t.Errorf("API Calls?Status=ringing: %+v", ringing)
	}
	liveQualityInAPI(t, l)
	// the same from another host, with the operator's credentials
	ctlFromAfar(t, l, bin, call.ID)
	table, err := ctl("calls", "--timeout", "20s") // flags after the command too
	if err != nil || !strings.Contains(table, call.ID) || !strings.Contains(table, "in-progress") || !strings.Contains(table, "customer") ||
		!strings.Contains(table, "carrier") || !strings.Contains(table, "MOS") {
		t.Errorf("ctl calls: %v\n%s", err, table)
	}
	t.Logf("xtrunk ctl calls:\n%s", table)

	// 2. ctl call: details and the SIP ladder, by Call SID
	detail, err := ctl("call", call.Sid)
	if err != nil || !strings.Contains(detail, "SIP ladder") || !strings.Contains(detail, "INVITE sip:") || !strings.Contains(detail, "200 OK") ||
		!strings.Contains(detail, "ACK") {
		t.Errorf("ctl call: %v\n%s", err, detail)
	}
	t.Logf("xtrunk ctl call %s:\n%s", call.Sid, detail)

	// 4. carriers and relay
	if out, err := ctl("carriers"); err != nil || !strings.Contains(out, l.tri.CalleeIP.String()+":5070") {
		t.Errorf("ctl carriers: %v\n%s", err, out)
	}
	if out, err := ctl("relay"); err != nil || !strings.Contains(out, "userspace") || !strings.Contains(out, "sessions") {
		t.Errorf("ctl relay: %v\n%s", err, out)
	} else {
		t.Logf("xtrunk ctl relay:\n%s", out)
	}

	// 5. ctl hangup: BYE to both legs (both scenarios end on it), CDR
	if out, err := ctl("hangup", call.ID); err != nil || !strings.Contains(out, "ended") {
		t.Fatalf("ctl hangup: %v %s", err, out)
	}
	sippOK(t, "PBX hung up by ctl", uac)
	sippOK(t, "carrier hung up by ctl", uas)
	if out, err := ctl("calls"); err != nil || strings.Contains(out, call.ID) {
		t.Errorf("ctl calls after the hangup: %v\n%s", err, out)
	}
	if out, err := ctl("hangup", call.ID); err == nil || !strings.Contains(out, "no such call") {
		t.Errorf("a second hangup: %v %s", err, out)
	}
	cause := l.cdrHangupCause(t, call.Sid)
	if live := l.apiCalls(t, "in-progress"); len(live) != 0 {
		t.Errorf("API Calls?Status=in-progress after the hangup: %+v", live)
	}
	if cause != "system: administratively ended" {
		t.Errorf("CDR hangup cause %q", cause)
	}

	// 6. a ban and its lifting
	banAndUnban(t, l, ctl)
}

// banAndUnban has a PBX with a wrong password banned, sees the ban in
// ctl bans, lifts it with ctl unban and places a good call.
func banAndUnban(t *testing.T, l *upLab, ctl func(...string) (string, error)) {
	t.Helper()
	bad := l.runSIPp(t, l.tri.Caller, "pbx-bad", filepath.Join(l.testdata, "uac_auth.xml"), l.tri.CallerIP, 6300,
		"-s", upCalled, "-key", "trunk", upTrunkHost, "-key", "caller", upDID, "-au", upUser, "-ap", "wrong-password",
		"-auth_uri", upCalled+"@"+upTrunkHost, "-m", "12", "-r", "20", l.tri.RelayCallerIP.String()+":5060")
	var bans []limit.Ban
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		out, err := ctl("--json", "bans")
		if err == nil && json.Unmarshal([]byte(out), &bans) == nil && len(bans) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ban listed: %v %s\n%s", err, out, lastN(bad.Output(), 30))
		}
	}
	_ = bad.Kill()
	if bans[0].Source != l.tri.CallerIP.String() || bans[0].Kind != "auth" {
		t.Errorf("bans %+v", bans)
	}
	if out, err := ctl("bans"); err != nil || !strings.Contains(out, l.tri.CallerIP.String()) {
		t.Errorf("ctl bans: %v\n%s", err, out)
	}
	if out, err := ctl("unban", l.tri.CallerIP.String()); err != nil || !strings.Contains(out, "unbanned") {
		t.Fatalf("ctl unban: %v %s", err, out)
	}
	if out, err := ctl("--json", "bans"); err != nil || strings.TrimSpace(out) != "[]" && strings.TrimSpace(out) != "null" {
		t.Errorf("bans after unban: %v %s", err, out)
	}
	// the PBX is heard again: a good call goes through
	l.call(t, "uac_auth.xml", 5070, "after-unban")
}

// topInTmux runs xtrunk top in a detached tmux session (160x48) in the
// edge's namespace until its screen shows callID, and quits it with q.
func topInTmux(t *testing.T, l *upLab, tmux, bin, callID string) string {
	t.Helper()
	sock := filepath.Join(l.dir, "tmux.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) (string, error) {
		return l.tri.Relay.Run(ctx, tmux, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...)
	}
	if out, err := run("new-session", "-d", "-s", "top", "-x", "160", "-y", "48",
		fmt.Sprintf("%s top --config %s; sleep 30", bin, l.config)); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	t.Cleanup(func() { _, _ = run("kill-server") })
	var screen string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, err := run("capture-pane", "-p", "-t", "top")
		screen = out
		if err == nil && strings.Contains(out, callID) && strings.Contains(out, "CPS") && strings.Contains(out, "pps") &&
			!strings.Contains(out, "over the last 0 s") { // a second frame: rates
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xtrunk top's screen never showed the call: %v\n%s", err, out)
		}
	}
	topScreenshot(t, run, 160, 48)
	if out, err := run("send-keys", "-t", "top", "q"); err != nil {
		t.Errorf("send-keys: %v %s", err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := run("capture-pane", "-p", "-t", "top")
		if !strings.Contains(out, "xtrunk top") {
			break // top left the alternate screen: q quit it
		}
		if time.Now().After(deadline) {
			t.Errorf("q did not quit xtrunk top:\n%s", out)
			break
		}
	}
	return strings.TrimRight(screen, "\n")
}

// cdrHangupCause is the hangup cause of the CDR with Call SID sid, read
// through the API once written.
func (l *upLab) cdrHangupCause(t *testing.T, sid string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest("GET", "http://xtrunk/2010-04-01/Accounts/"+upAccountSid+"/Calls/"+sid+".json", nil)
		req.SetBasicAuth(upAccountSid, upAuthToken)
		res, err := l.api.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var c struct {
				Status      string  `json:"status"`
				HangupCause *string `json:"hangup_cause"`
			}
			if res.StatusCode == 200 && json.Unmarshal(b, &c) == nil && c.HangupCause != nil {
				t.Logf("CDR %s: %s", sid, b)
				return *c.HangupCause
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CDR %s: %v", sid, err)
		}
	}
}

// apiCall is what the lab reads of an API Call.
type apiCall struct {
	Sid        string                `json:"sid"`
	Status     string                `json:"status"`
	AnswerTime *string               `json:"answer_time"`
	EndTime    *string               `json:"end_time"`
	Quality    map[string]apiQuality `json:"quality"`
}

// apiQuality is a leg's entry in a Call's "quality".
type apiQuality struct {
	Packets  uint64  `json:"packets"`
	LossPct  float64 `json:"loss_pct"`
	JitterMs float64 `json:"jitter_ms"`
	MOS      float64 `json:"mos"`
}

// apiCalls lists the account's calls with status through the API.
func (l *upLab) apiCalls(t *testing.T, status string) []apiCall {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://xtrunk/2010-04-01/Accounts/"+upAccountSid+"/Calls.json?Status="+status, nil)
	req.SetBasicAuth(upAccountSid, upAuthToken)
	res, err := l.api.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out struct {
		Calls []apiCall `json:"calls"`
	}
	if res.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("GET Calls.json?Status=%s: %d %s", status, res.StatusCode, b)
	}
	return out.Calls
}
