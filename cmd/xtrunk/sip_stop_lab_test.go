package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/store"
)

// stopLabCalls is how many calls each run leaves up when its PBX goes.
const stopLabCalls = 3

// stopMargin bounds, generously, what a stop may take past the drain:
// the BYEs' answers (5 s at most), relay deletes and CDR writes on a
// loaded 2-vCPU box. It is no timing measure: a stop that goes past it
// did not end by itself.
const stopMargin = 30 * time.Second

// TestSIPStopLab: `xtrunk sip` as the built binary in a namespace lab,
// with calls up through a relay to a SIPp carrier whose PBX has gone
// away without hanging up — what a load run (xtrunk bench sip) leaves
// behind. SIGTERM with the default --drain-timeout: new INVITEs get 503,
// the drain runs out, the calls are hung up (the carrier gets its BYEs),
// their CDRs are written and sip exits 0 of itself, well within the
// drain plus stopMargin. A second SIGTERM during the drain hurries the
// stop: sip ends the drain and exits 0 with the CDRs written.
func TestSIPStopLab(t *testing.T) {
	l := newStopLab(t)

	t.Run("the drain runs out, the calls are hung up, sip exits", func(t *testing.T) {
		r := l.run(t, 5060, nil)
		r.sigterm(t)
		drain := r.proc.waitJSON(t, "SIGTERM: draining, new calls get 503")
		if drain["timeout"] != float64(10*time.Second/time.Millisecond) || drain["calls"] != float64(stopLabCalls) {
			t.Errorf("drain: %v, want the default 10 s timeout and %d calls", drain, stopLabCalls)
		}
		if got := l.invite(t, r.port); got != "SIP/2.0 503 Service Unavailable" {
			t.Errorf("a new INVITE while draining: %q, want 503", got)
		}
		r.exited(t, 10*time.Second+stopMargin)
		r.proc.waitJSON(t, "drain over: hanging up the calls left")
		t.Logf("sip stopped %v ms after SIGTERM", r.proc.waitJSON(t, "sip stopped")["stop_took"])
		l.cdrs(t, "system")
	})

	t.Run("a second signal hurries the stop", func(t *testing.T) {
		r := l.run(t, 5062, []string{"--drain-timeout", "120s"})
		r.sigterm(t)
		r.proc.waitJSON(t, "SIGTERM: draining, new calls get 503")
		if err := syscall.Kill(r.proc.PID(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r.exited(t, stopMargin) // long before the 120 s drain
		t.Logf("sip stopped %v ms after the first SIGTERM", r.proc.waitJSON(t, "sip stopped")["stop_took"])
		hurry := r.proc.waitJSON(t, "second signal: hanging up now; a third kills the process")
		if hurry["calls"] != float64(stopLabCalls) {
			t.Errorf("second signal: %v, want %d calls", hurry, stopLabCalls)
		}
		l.cdrs(t, "system")
	})
}

// stopLab is TestSIPStopLab's fixed part: the namespaces, a relay, the
// store with one trunk, the binary.
type stopLab struct {
	tri                 *testbed.Triangle
	bin, sipp, dir, dsn string
	conf, own, signal   string // an empty config; this package's and signalling's scenarios
	st                  *store.Store
	account             string
	seen                map[string]bool // CDRs an earlier run checked
}

func newStopLab(t *testing.T) *stopLab {
	t.Helper()
	labtest.RequirePrivileged(t)
	l := &stopLab{tri: labtest.NewTriangle(t, testbed.WithoutIPv6()), bin: xtrunkBinary(t), sipp: labtest.RequireCommand(t, "sipp"), dir: t.TempDir(), seen: map[string]bool{}}
	var err error
	if l.own, err = filepath.Abs("testdata"); err != nil {
		t.Fatal(err)
	}
	if l.signal, err = filepath.Abs("../../signalling/testdata"); err != nil {
		t.Fatal(err)
	}
	l.conf = filepath.Join(l.dir, "xtrunk.yaml")
	if err := os.WriteFile(l.conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l.provision(t)
	relay, err := l.tri.Relay.Start(context.Background(), l.bin, "relay", "--config", l.conf,
		"--interface", "customer/"+l.tri.RelayCallerIP.String(), "--interface", "carrier/"+l.tri.RelayCalleeIP.String(),
		"--listen-ng", "127.0.0.1:2223", "--dataplane", "userspace", "--metrics", "127.0.0.1:9101")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := relay.Stop(); err != nil {
			t.Logf("relay: %v\n%s", err, lastN(relay.Output(), 40))
		}
	})
	return l
}

// provision writes the acme trunk into a fresh SQLite store: digest
// credentials and an IP ACL for the PBX, the DID its calls come from.
func (l *stopLab) provision(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	l.dsn = "sqlite:" + filepath.Join(l.dir, "xtrunk.db")
	st, err := store.Open(ctx, l.dsn, store.Options{Domain: upDomain})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l.st = st
	acct, _, err := st.Bootstrap(ctx, upAccountSid, upAuthToken, "lab", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.account = acct.Sid
	tr := store.NewTrunk(l.account)
	tr.FriendlyName, tr.DomainName = "acme", upTrunkHost
	if tr, err = st.CreateTrunk(ctx, tr); err != nil {
		t.Fatal(err)
	}
	cl, err := st.CreateCredentialList(ctx, l.account, "pbx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateCredential(ctx, l.account, cl.Sid, upUser, upPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AttachCredentialList(ctx, l.account, tr.Sid, cl.Sid); err != nil {
		t.Fatal(err)
	}
	acl, err := st.CreateIPAccessControlList(ctx, l.account, "pbx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateIPAddress(ctx, store.IPAddress{AccountSid: l.account, ListSid: acl.Sid, FriendlyName: "lab", IPAddress: "198.18.0.0", CIDRPrefixLength: 15}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AttachIPAccessControlList(ctx, l.account, tr.Sid, acl.Sid); err != nil {
		t.Fatal(err)
	}
	n, err := st.CreatePhoneNumber(ctx, store.NewPhoneNumber(l.account, upDID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AssociatePhoneNumber(ctx, l.account, tr.Sid, n.Sid); err != nil {
		t.Fatal(err)
	}
}

// stopRun is one `xtrunk sip` on port with stopLabCalls calls up.
type stopRun struct {
	proc    *jsonProc
	carrier *testbed.Process
	port    int
}

// run starts a SIPp carrier, `xtrunk sip` on port (args added), and a
// SIPp PBX that places stopLabCalls calls; once sip has answered them all
// the PBX is killed: the calls stay up, their A-legs answer nothing.
func (l *stopLab) run(t *testing.T, port int, args []string) *stopRun {
	t.Helper()
	tri := l.tri
	r := &stopRun{port: port}
	carrierPort := port + 10
	var err error
	r.carrier, err = tri.Callee.Start(context.Background(), l.sipp, "-sf", filepath.Join(l.signal, "uas_carrier.xml"),
		"-i", tri.CalleeIP.String(), "-p", strconv.Itoa(carrierPort), "-mi", tri.CalleeIP.String(), "-mp", strconv.Itoa(40000+port),
		"-m", strconv.Itoa(stopLabCalls), "-nostdin", "-timeout", "150s", "-timeout_error")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.carrier.Kill() })
	sipAddr := netip.AddrPortFrom(tri.RelayCallerIP, uint16(port))
	metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(port+100)).String()
	p, err := tri.Relay.Start(context.Background(), l.bin, append([]string{"sip", "--config", l.conf,
		"--listen-udp", sipAddr.String(), "--listen-tcp", "", "--domain", upDomain, "--edge", "lab",
		"--relay-ng", "127.0.0.1:2223", "--relay-customer-iface", "customer", "--relay-carrier-iface", "carrier",
		"--db", l.dsn, "--default-cps", "0", "--carrier", fmt.Sprintf("sip:%s:%d", tri.CalleeIP, carrierPort),
		"--carrier-probe-interval", "0", "--metrics", metrics, "--log-format", "json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	r.proc = &jsonProc{Process: p}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("xtrunk sip:\n%s\ncarrier:\n%s", lastN(p.Output(), 80), lastN(r.carrier.Output(), 40))
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if code, _, err := getIn(t, tri.Relay, metrics, "/readyz"); err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sip not ready:\n%s", lastN(p.Output(), 40))
		}
	}
	pbx, err := tri.Caller.Start(context.Background(), l.sipp, "-sf", filepath.Join(l.own, "uac_wait_bye.xml"),
		"-i", tri.CallerIP.String(), "-p", strconv.Itoa(port+20), "-mi", tri.CallerIP.String(), "-mp", strconv.Itoa(20000+port),
		"-s", upCalled, "-key", "trunk", upTrunkHost, "-key", "caller", upDID, "-au", upUser, "-ap", upPassword,
		"-auth_uri", upCalled+"@"+upTrunkHost, "-m", strconv.Itoa(stopLabCalls), "-l", strconv.Itoa(stopLabCalls),
		"-nostdin", sipAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pbx.Kill() }() // the PBX goes away, hanging up nothing
	for deadline := time.Now().Add(30 * time.Second); r.proc.count("call answered") < stopLabCalls; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls answered:\n%s\nPBX:\n%s", r.proc.count("call answered"), stopLabCalls, lastN(p.Output(), 40), lastN(pbx.Output(), 40))
		}
	}
	_ = pbx.Kill()
	return r
}

// sigterm sends sip SIGTERM.
func (r *stopRun) sigterm(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(r.proc.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// exited waits up to within for sip to exit of itself, with status 0,
// and for the carrier to have had its BYEs (its SIPp passes once all
// its calls are hung up).
func (r *stopRun) exited(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-r.proc.Done():
	case <-time.After(within):
		t.Fatalf("sip still running %v after SIGTERM:\n%s", within, lastN(r.proc.Output(), 40))
	}
	if err := r.proc.Wait(); err != nil {
		t.Fatalf("sip exit: %v (want 0: it stops by itself)", err)
	}
	select {
	case <-r.carrier.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the carrier is still waiting for BYEs:\n%s", lastN(r.carrier.Output(), 40))
	}
	if err := r.carrier.Wait(); err != nil {
		t.Fatalf("carrier: %v\n%s", err, lastN(r.carrier.Output(), 40))
	}
}

// cdrs wants the stopLabCalls calls of the run that just ended in the
// store as completed, hung up by hangupBy: written before sip exited.
func (l *stopLab) cdrs(t *testing.T, hangupBy string) {
	t.Helper()
	calls, _, err := l.st.ListCalls(context.Background(), l.account, store.CallFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range calls {
		if l.seen[c.Sid] {
			continue
		}
		l.seen[c.Sid] = true
		n++
		if c.Status != "completed" || !strings.HasPrefix(c.HangupCause, hangupBy) {
			t.Errorf("call %s: status %q, hangup cause %q; want completed, %s", c.Sid, c.Status, c.HangupCause, hangupBy)
		}
	}
	if n != stopLabCalls {
		t.Errorf("%d new calls in the store, want %d CDRs", n, stopLabCalls)
	}
}

// invite sends one new INVITE from the PBX's namespace to sip on port
// and returns the final answer's status line.
func (l *stopLab) invite(t *testing.T, port int) string {
	t.Helper()
	return inviteStatus(t, l.tri, netip.AddrPortFrom(l.tri.RelayCallerIP, uint16(port)))
}

// jsonProc is a process logging JSON lines (zerolog).
type jsonProc struct{ *testbed.Process }

// all is every line of the output whose message is msg.
func (p *jsonProc) all(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.Output(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// count is how many lines have message msg.
func (p *jsonProc) count(msg string) int { return len(p.all(msg)) }

// waitJSON waits (30 s at most) for a line with message msg and returns
// the first.
func (p *jsonProc) waitJSON(t *testing.T, msg string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m := p.all(msg); len(m) > 0 {
			return m[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", msg, lastN(p.Output(), 40))
		}
	}
}
