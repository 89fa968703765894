package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/api"
)

// TestRunAnEdgeLab is the README's "Run an edge" in a namespace lab
// (PBX 198.18.1.2 | edge 198.18.1.1, 198.18.2.1 | carrier 198.18.2.2, no
// default route): xtrunk init in the edge namespace, xtrunk up (relay on
// XDP, api, sip) on the generated file as written — the environment only
// for what a lab adds (a bpffs of its own, the carrier) — provisioning with
// examples/provision.sh, and a digest-authenticated termination call
// from SIPp through the edge to a SIPp carrier with media both ways; its
// CDR read through the API.
func TestRunAnEdgeLab(t *testing.T) {
	labtest.RequirePrivileged(t)
	sipp := labtest.RequireCommand(t, "sipp")
	labtest.RequireCommand(t, "jq")
	if _, err := os.Stat("/usr/share/sip-tester/g711a.pcap"); err != nil {
		t.Fatalf("uac_auth.xml plays Debian sip-tester's g711a.pcap: %v", err)
	}
	testdata, err := filepath.Abs("../../signalling/testdata")
	if err != nil {
		t.Fatal(err)
	}
	provision, err := filepath.Abs("../../examples/provision.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := xtrunkBinary(t)
	tri := labtest.NewTriangle(t, testbed.WithoutIPv6())
	edge := tri.Relay
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// 1. the configuration, for the edge's two addresses
	dir := t.TempDir()
	conf := filepath.Join(dir, "xtrunk.yaml")
	out, err := edge.Run(ctx, bin, "init", "--dir", dir, "--domain", "example.net",
		"--customer-ip", tri.RelayCallerIP.String(), "--carrier-ip", tri.RelayCalleeIP.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("xtrunk init:\n%s", out)
	if out, err := edge.Run(ctx, bin, "check-config", conf); err != nil || !strings.Contains(out, ": ok") {
		t.Fatalf("check-config: %v %s", err, out)
	}

	// 2. the edge from the file, as the README runs it: xtrunk up. What
	// the lab adds (a bpffs of its own, the carrier) comes through the
	// environment, which up's children inherit, as systemd's
	// Environment= would give it.
	pins := filepath.Join(labtest.MountBPFFS(t), "relay")
	// not ctx: its cancel at return would SIGKILL up before the cleanup's
	// SIGTERM
	up, err := edge.Start(context.Background(), "env", "XTRUNK_PIN_PATH="+pins, "XTRUNK_REMOVE_ON_EXIT=true",
		"XTRUNK_CARRIER=sip:"+tri.CalleeIP.String()+":5060", "XTRUNK_CARRIER_SOURCE=198.18.2.0/24", "XTRUNK_CARRIER_PROBE_INTERVAL=0s",
		bin, "up", "--config", conf, "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM: sip drains (no call left), then api and relay stop;
		// up exits 0 once every child has
		_ = syscall.Kill(up.PID(), syscall.SIGTERM)
		select {
		case <-up.Done():
			if err := up.Wait(); err != nil {
				t.Errorf("xtrunk up after SIGTERM: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("xtrunk up still running 60 s after SIGTERM")
			_ = up.Kill()
		}
		if t.Failed() {
			t.Logf("xtrunk up:\n%s", up.Output())
		}
	})
	for _, url := range []string{"http://127.0.0.1:9110/readyz", "http://127.0.0.1:9101/readyz", "http://127.0.0.1:8080/readyz", "http://127.0.0.1:9102/readyz"} {
		waitInNS(t, ctx, edge, url)
	}

	// 3. provisioning, as an operator would with curl
	// the DID is the PBX's caller ID, which the carrier's scenario
	// (uas_carrier.xml) checks
	const password, did = "Pbx-Lab-Secret-2024", "+14155550100"
	creds := filepath.Join(dir, "credentials")
	if out, err := edge.Run(ctx, "env", "PBX="+tri.CallerIP.String(), "DOMAIN=example.net", "SIP_PASSWORD="+password, "DID="+did,
		"sh", provision, creds); err != nil || !strings.Contains(out, "acme.pstn.example.net") {
		t.Fatalf("provision.sh: %v %s", err, out)
	}

	// 4. the first call: the PBX's termination call to the carrier
	uas, err := tri.Callee.Start(ctx, sipp, "-sf", filepath.Join(testdata, "uas_carrier.xml"),
		"-i", tri.CalleeIP.String(), "-p", "5060", "-mi", tri.CalleeIP.String(), "-mp", "40000", "-rtp_echo",
		"-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error")
	if err != nil {
		t.Fatal(err)
	}
	defer uas.Kill()
	// A fixed sleep raced SIPp's start under load.
	if err := waitBound(ctx, tri.Callee, 5060, uas); err != nil {
		t.Fatal(err)
	}
	const called, trunk = "+15559876543", "acme.pstn.example.net"
	uac, err := tri.Caller.Start(ctx, sipp, "-sf", filepath.Join(testdata, "uac_auth.xml"),
		"-i", tri.CallerIP.String(), "-p", "5060", "-mi", tri.CallerIP.String(), "-mp", "20000",
		"-s", called, "-key", "trunk", trunk, "-key", "caller", did,
		"-au", "pbx1", "-ap", password, "-auth_uri", called+"@"+trunk,
		"-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error", tri.RelayCallerIP.String()+":5060")
	if err != nil {
		t.Fatal(err)
	}
	if err := uac.Wait(); err != nil {
		t.Fatalf("the PBX's call: %v\n%s", err, uac.Output())
	}
	if err := uas.Wait(); err != nil {
		t.Fatalf("the carrier: %v\n%s", err, uas.Output())
	}

	// its CDR, through the API with the generated credentials
	c, err := api.ReadCredentials(creds)
	if err != nil {
		t.Fatal(err)
	}
	var calls struct {
		Calls []struct{ Sid, Status, Direction, To string } `json:"calls"`
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := edge.Run(ctx, "curl", "-sSf", "-u", c.AccountSid+":"+c.AuthToken,
			"http://127.0.0.1:8080/2010-04-01/Accounts/"+c.AccountSid+"/Calls.json")
		if err == nil && json.Unmarshal([]byte(out), &calls) == nil && len(calls.Calls) == 1 && calls.Calls[0].Status == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completed CDR: %v %s", err, out)
		}
	}
	t.Logf("CDR %+v", calls.Calls[0])
}

// waitInNS polls url from inside ns until it answers 200.
func waitInNS(t *testing.T, ctx context.Context, ns *testbed.NS, url string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := ns.Run(ctx, "curl", "-sSf", url)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v %s", url, err, out)
		}
	}
}
