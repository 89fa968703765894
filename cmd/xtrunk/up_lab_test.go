package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// runSIPp runs SIPp in ns with scenario (a path), bound to addr:port, media
// on port+2; args come last (the remote host for a UAC).
func (l *upLab) runSIPp(t *testing.T, ns *testbed.NS, name, scenario string, addr netip.Addr, port int, args ...string) *testbed.Process {
	t.Helper()
	a := append([]string{"-sf", scenario, "-i", addr.String(), "-p", strconv.Itoa(port), "-mi", addr.String(), "-mp", strconv.Itoa(port + 2),
		"-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(l.dir, name+"_errors.log")}, args...)
	p, err := ns.Start(context.Background(), l.sipp, a...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

// carrier starts a SIPp carrier (uas_carrier.xml: answers one call,
// echoes its RTP, waits for the BYE) on port and waits until it listens.
func (l *upLab) carrier(t *testing.T, port int) *testbed.Process {
	t.Helper()
	p := l.runSIPp(t, l.tri.Callee, fmt.Sprintf("carrier-%d", port), filepath.Join(l.testdata, "uas_carrier.xml"), l.tri.CalleeIP, port, "-rtp_echo", "-m", "1")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := l.tri.Callee.Run(context.Background(), "ss", "-Hlun", fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIPp carrier not listening on %d:\n%s", port, p.Output())
		}
	}
}

// pbx places one termination call with scenario: digest auth with
// -auth_uri (the Request-URI, as the edge requires), the DID as caller
// ID, to upCalled on the acme trunk.
func (l *upLab) pbx(t *testing.T, scenario, callID string, port int) *testbed.Process {
	t.Helper()
	server := netip.AddrPortFrom(l.tri.RelayCallerIP, 5060).String()
	return l.runSIPp(t, l.tri.Caller, "pbx-"+callID, scenario, l.tri.CallerIP, port,
		"-cid_str", callID+"@lab", "-s", upCalled, "-key", "trunk", upTrunkHost, "-key", "caller", upDID,
		"-au", upUser, "-ap", upPassword, "-auth_uri", upCalled+"@"+upTrunkHost, "-m", "1", server)
}

// call places a call from the PBX that must reach the carrier on
// carrierPort (uas_carrier.xml there, the PBX hangs up) and both SIPp
// scenarios must pass.
func (l *upLab) call(t *testing.T, scenario string, carrierPort int, callID string) {
	t.Helper()
	uas := l.carrier(t, carrierPort)
	uac := l.pbx(t, filepath.Join(l.testdata, scenario), callID, 6000+carrierPort%100*10)
	sippOK(t, "PBX "+callID, uac)
	sippOK(t, fmt.Sprintf("carrier on %d", carrierPort), uas)
}

func sippOK(t *testing.T, what string, p *testbed.Process) {
	t.Helper()
	if err := p.Wait(); err != nil {
		t.Fatalf("SIPp %s: %v\n%s", what, err, lastN(p.Output(), 60))
	}
}

// drainAtStop: a call up (the PBX waits for the edge's BYE), SIGTERM to
// up. sip drains: a new INVITE gets 503, the call stays up; when
// drain-timeout (6 s) passes sip hangs it up with a BYE both ways. Then
// api and relay stop, up exits 0, and none of its children is left.
func (l *upLab) drainAtStop(t *testing.T) {
	uas := l.carrier(t, 5080)
	uac := l.pbx(t, filepath.Join(l.own, "uac_wait_bye.xml"), "drain-1", 6200)
	sipMetrics := net.JoinHostPort(l.tri.RelayCallerIP.String(), "9102")
	for deadline := time.Now().Add(20 * time.Second); answered(t, l.tri.Relay, sipMetrics) < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the drain call was not answered:\n%s\n%s", lastN(uac.Output(), 40), lastN(uas.Output(), 40))
		}
	}
	children := procChildren(l.up.PID())
	if len(children) != 3 {
		t.Fatalf("xtrunk up has children %v, want 3", children)
	}
	sigterm := time.Now()
	if err := syscall.Kill(l.up.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l.log.wait(t, "sip's drain", func(m map[string]any) bool {
		return m["proc"] == "sip" && m["message"] == "SIGTERM: draining, new calls get 503" && m["calls"] == float64(1)
	})
	if got := l.newInviteStatus(t); !strings.HasPrefix(got, "SIP/2.0 503") {
		t.Errorf("a new INVITE while sip drains: %q, want 503", got)
	}
	time.Sleep(2 * time.Second) // well inside the 6 s drain
	for what, p := range map[string]*testbed.Process{"the PBX": uac, "the carrier": uas, "xtrunk up": l.up} {
		select {
		case <-p.Done():
			t.Fatalf("%s ended during the drain: %v\n%s", what, p.Wait(), lastN(p.Output(), 40))
		default:
		}
	}
	sippOK(t, "PBX hung up by the drain's end", uac)
	sippOK(t, "carrier hung up by the drain's end", uas)
	t.Logf("the call was hung up %v after SIGTERM (drain-timeout 6 s)", time.Since(sigterm).Round(time.Millisecond))
	l.log.wait(t, "the drain's end", func(m map[string]any) bool {
		return m["proc"] == "sip" && m["message"] == "drain over: hanging up the calls left"
	})
	select {
	case <-l.up.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("xtrunk up did not exit after SIGTERM")
	}
	if err := l.up.Wait(); err != nil {
		t.Errorf("xtrunk up exit: %v", err)
	}
	l.log.wait(t, "up's last line", func(m map[string]any) bool { return m["message"] == "xtrunk up stopped: every child exited" })
	for _, pid := range append(children, l.log.childPIDs()...) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("child %d still there: %q", pid, cmdline)
		}
	}
	for _, name := range []string{"sip", "api", "relay"} {
		l.log.wait(t, name+" stopped", func(m map[string]any) bool {
			return m["message"] == "child stopped" && m["child"] == name && m["status"] == "exit status 0"
		})
	}
}

// answered is the calls sip answered (xtrunk_sip_calls_answered_total,
// every label set).
func answered(t *testing.T, ns *testbed.NS, addr string) float64 {
	_, body, err := getIn(t, ns, addr, "/metrics")
	if err != nil {
		return 0
	}
	var n float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "xtrunk_sip_calls_answered_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += v
		}
	}
	return n
}

// lineLog is the output of xtrunk up (its lines and its children's),
// kept whole and as JSON lines.
type lineLog struct {
	mu    sync.Mutex
	raw   bytes.Buffer
	part  []byte
	lines []map[string]any
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(b)
	l.part = append(l.part, b...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		var m map[string]any
		if json.Unmarshal(l.part[:i], &m) == nil {
			l.lines = append(l.lines, m)
		}
		l.part = l.part[i+1:]
	}
	return len(b), nil
}

func (l *lineLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

func (l *lineLog) find(pred func(map[string]any) bool) map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.lines {
		if pred(m) {
			return m
		}
	}
	return nil
}

// wait waits (30 s at most) for a line pred accepts.
func (l *lineLog) wait(t *testing.T, what string, pred func(map[string]any) bool) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := l.find(pred); m != nil {
			return m
		}
	}
	t.Fatalf("no log line for %s", what)
	return nil
}

// childPIDs are the PIDs of every child up started.
func (l *lineLog) childPIDs() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for _, m := range l.lines {
		if pid, ok := m["pid"].(float64); ok && m["proc"] == "up" && m["message"] == "child started" {
			out = append(out, int(pid))
		}
	}
	return out
}

func lastN(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// newInviteStatus sends one new INVITE from the PBX's namespace and
// returns the status line of the final answer ("" if none came).
func (l *upLab) newInviteStatus(t *testing.T) string {
	t.Helper()
	return inviteStatus(t, l.tri, netip.AddrPortFrom(l.tri.RelayCallerIP, 5060))
}

// inviteStatus sends one new INVITE from the PBX's namespace to server
// and returns the status line of the final answer ("" if none came).
func inviteStatus(t *testing.T, tri *testbed.Triangle, server netip.AddrPort) string {
	t.Helper()
	var status string
	err := tri.Caller.Do(func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tri.CallerIP, 0)))
		if err != nil {
			return err
		}
		defer c.Close()
		local := c.LocalAddr().String()
		msg := "INVITE sip:" + upCalled + "@" + upTrunkHost + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-drain-probe\r\nMax-Forwards: 70\r\n" +
			"From: <sip:" + upDID + "@" + local + ">;tag=probe\r\nTo: <sip:" + upCalled + "@" + upTrunkHost + ">\r\n" +
			"Call-ID: drain-probe@lab\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@" + local + ">\r\nContent-Length: 0\r\n\r\n"
		if _, err := c.WriteToUDPAddrPort([]byte(msg), server); err != nil {
			return err
		}
		buf := make([]byte, 4096)
		for {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				return nil // no answer: status stays ""
			}
			line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			if !strings.HasPrefix(line, "SIP/2.0 1") { // past 100 Trying
				status = line
				return nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return status
}
