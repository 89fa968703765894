package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// Issue 11's "done when" for make demo: the built binary's `xtrunk demo
// --json F` exits 0 and its JSON shows the three calls answered, ≥ 99 %
// of the packets delivered each way, the plain calls > 90 % on the XDP
// fast path, and their CDRs fetched through the API; and nothing of the
// lab is left behind.
func TestDemo(t *testing.T) {
	labtest.RequirePrivileged(t)
	labtest.RequireCommand(t, "sipp")
	labtest.RequireCommand(t, "baresip")
	bin := xtrunkBinary(t)
	out := filepath.Join(t.TempDir(), "demo.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	stdout, err := exec.CommandContext(ctx, bin, "demo", "--json", out).CombinedOutput()
	t.Logf("xtrunk demo (%.1f s):\n%s", time.Since(start).Seconds(), stdout)
	if err != nil {
		t.Fatalf("xtrunk demo: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The documented fields, decoded apart from the demo's own types.
	var rep struct {
		Calls []struct {
			Name      string             `json:"name"`
			Direction string             `json:"direction"`
			Secure    bool               `json:"secure"`
			SIPStatus int                `json:"sip_status"`
			Sent      map[string]int     `json:"sent"`
			Received  map[string]int     `json:"received"`
			FastPath  map[string]float64 `json:"fast_path"`
			CDRSid    string             `json:"cdr_sid"`
			Pass      bool               `json:"pass"`
		} `json:"calls"`
		Pass bool `json:"pass"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	if len(rep.Calls) != 3 || !rep.Pass {
		t.Fatalf("want 3 calls and pass, got %s", b)
	}
	want := []struct {
		dir    string
		secure bool
	}{{"termination", false}, {"origination", false}, {"termination", true}}
	for i, c := range rep.Calls {
		if c.Direction != want[i].dir || c.Secure != want[i].secure {
			t.Errorf("call %d %q: %s secure=%v, want %s secure=%v", i, c.Name, c.Direction, c.Secure, want[i].dir, want[i].secure)
		}
		if c.SIPStatus != 200 || !c.Pass {
			t.Errorf("%s: SIP %d, pass %v", c.Name, c.SIPStatus, c.Pass)
		}
		for _, dir := range []string{"pbx_to_carrier", "carrier_to_pbx"} {
			sent, got := c.Sent[dir], c.Received[dir]
			if sent < 200 || float64(got) < 0.99*float64(sent) {
				t.Errorf("%s %s: %d of %d packets delivered", c.Name, dir, got, sent)
			}
			if f := c.FastPath[dir]; !c.Secure && f <= 0.9 {
				t.Errorf("%s %s: %.3f on the fast path, want > 0.9", c.Name, dir, f)
			}
		}
		if !strings.HasPrefix(c.CDRSid, "CA") {
			t.Errorf("%s: CDR sid %q", c.Name, c.CDRSid)
		}
	}
	checkDemoGone(t, string(stdout))
}

// TestDemoHelp: -h exits 0 with the usage; a bad flag or argument exits
// non-zero before building anything.
func TestDemoHelp(t *testing.T) {
	bin := xtrunkBinary(t)
	out, err := exec.Command(bin, "demo", "-h").Output()
	if err != nil || !strings.Contains(string(out), "examples:") || !strings.Contains(string(out), "-json") {
		t.Errorf("demo -h: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"demo", "--no-such-flag"}, {"demo", "extra"}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err == nil || !strings.Contains(string(out), "xtrunk demo -h") {
			t.Errorf("%v: %v %s", args, err, out)
		}
	}
}

// TestDemoInterrupted: Ctrl-C during a call still removes everything.
func TestDemoInterrupted(t *testing.T) {
	labtest.RequirePrivileged(t)
	labtest.RequireCommand(t, "sipp")
	labtest.RequireCommand(t, "baresip")
	bin := xtrunkBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo")
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "▸ call 1") {
			time.Sleep(2 * time.Second) // into the call: SIPp, RTP, the relay's session
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	t.Logf("xtrunk demo, interrupted:\n%s", seen.String())
	if err == nil || !strings.Contains(seen.String(), "interrupted") {
		t.Errorf("an interrupted demo exits non-zero saying so: %v", err)
	}
	checkDemoGone(t, seen.String())
}

// checkDemoGone: the namespaces and the directory the demo printed are
// gone, and no process of the demo's peers is left.
func checkDemoGone(t *testing.T, out string) {
	t.Helper()
	ns := regexp.MustCompile(`edge +(xtb[0-9a-f]+-)relay`).FindStringSubmatch(out)
	dir := regexp.MustCompile(`files in (\S+)`).FindStringSubmatch(out)
	if ns == nil || dir == nil {
		t.Fatalf("the demo did not print its namespaces and directory:\n%s", out)
	}
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(list), ns[1]) {
		t.Errorf("namespaces %s* left behind:\n%s", ns[1], list)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("directory %s left behind (%v)", dir[1], err)
	}
	// Peers are started with the lab's directory in their arguments.
	if pids, _ := exec.Command("pgrep", "-f", dir[1]).Output(); len(pids) > 0 {
		t.Errorf("processes left behind: %s", pids)
	}
}
