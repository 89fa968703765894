package signalling

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/store"
)

// TestDrainLab: `xtrunk sip` as the built binary, a call up through the
// relay to a SIPp carrier. SIGTERM: a new INVITE gets 503 with
// Retry-After, the call's BYE still goes through, the CDR is written and
// the process exits 0 as soon as the call is over, long before
// --drain-timeout; /metrics shows it all. A second SIGTERM instead hangs
// up the call (BYE both ways) and exits 0 at once.
func TestDrainLab(t *testing.T) {
	tri := labtest.NewTriangle(t, testbed.WithoutIPv6())
	lab := &drainLab{tri: tri, sipp: sippPath(t), p: provision(t), ngAddr: startLabRelay(t, tri), bin: buildXtrunk(t)}
	var err error
	if lab.testdata, err = filepath.Abs("testdata"); err != nil {
		t.Fatal(err)
	}
	lab.config = filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(lab.config, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if lab.open, err = lab.p.st.TrunkByDomain(context.Background(), aclHost); err != nil {
		t.Fatal(err)
	}

	t.Run("the call's BYE ends the drain", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r := lab.start(t, ctx, 5060, "drain-1")
		r.sigterm(t, ctx)
		var got string
		if err := tri.Caller.Do(func() error {
			got = exchange(t, netip.AddrPortFrom(tri.CallerIP, 0).String(), r.sipAddr.String(),
				rawRequest{ruri: "sip:" + labCalled + "@" + aclHost}, 5*time.Second)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if statusLine(got) != "SIP/2.0 503 Service Unavailable" || !strings.Contains(got, "Retry-After: 120") {
			t.Fatalf("new INVITE while draining:\n%s", got)
		}
		m := scrapeIn(t, tri.Relay, r.metricsAddr)
		for series, want := range map[string]float64{
			`xtrunk_sip_refusals_total{code="503",reason="draining",trunk="unknown"}`: 1,
			`xtrunk_sip_draining`: 1,
			fmt.Sprintf(`xtrunk_sip_call_attempts_total{direction="termination",trunk=%q}`, lab.open.Sid):  1,
			fmt.Sprintf(`xtrunk_sip_calls_answered_total{direction="termination",trunk=%q}`, lab.open.Sid): 1,
			fmt.Sprintf(`xtrunk_sip_calls_active{direction="termination",trunk=%q}`, lab.open.Sid):         1,
		} {
			if v := metricValue(m, series); v != want {
				t.Errorf("%s = %v, want %v", series, v, want)
			}
		}
		select {
		case <-r.proc.Done():
			t.Fatalf("exited with the call still up: %v", r.proc.Wait())
		default:
		}
		r.uac.bye(t, r.toTag, r.contact)
		r.exited(t, ctx)
		if !strings.Contains(r.proc.Output(), "drained: no calls left") {
			t.Errorf("no drain in the log:\n%s", r.proc.Output())
		}
		lab.cdr(t, "drain-1", "caller")
	})

	t.Run("a second signal hangs up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r := lab.start(t, ctx, 5062, "drain-2")
		r.sigterm(t, ctx)
		if err := syscall.Kill(r.proc.PID(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r.uac.answerBye(t)
		r.exited(t, ctx)
		lab.cdr(t, "drain-2", "system")
	})
}

// drainLab is TestDrainLab's fixed part: a relay, the store, the binary.
type drainLab struct {
	tri                                 *testbed.Triangle
	p                                   provisioned
	open                                store.Trunk
	sipp, ngAddr, bin, testdata, config string
}

// drainRun is one `xtrunk sip` with one call up through it.
type drainRun struct {
	proc, uas      *testbed.Process
	uac            *rawUAC
	sipAddr        netip.AddrPort
	metricsAddr    string
	metricsNS      *testbed.NS
	toTag, contact string
}

// start runs a SIPp carrier, `xtrunk sip` on port, and places a call.
func (l *drainLab) start(t *testing.T, ctx context.Context, port uint16, callID string) *drainRun {
	t.Helper()
	tri := l.tri
	r := &drainRun{sipAddr: netip.AddrPortFrom(tri.RelayCallerIP, port),
		metricsAddr: netip.AddrPortFrom(tri.RelayCallerIP, port+100).String(), metricsNS: tri.Relay}
	carrier := netip.AddrPortFrom(tri.CalleeIP, port)
	var err error
	r.uas, err = tri.Callee.Start(ctx, l.sipp, "-sf", filepath.Join(l.testdata, "uas_carrier.xml"),
		"-i", tri.CalleeIP.String(), "-p", strconv.Itoa(int(port)), "-mi", tri.CalleeIP.String(), "-mp", strconv.Itoa(40000+int(port)),
		"-m", "1", "-nostdin", "-timeout", "50s", "-timeout_error")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.uas.Stop() })
	waitBoundUDP(t, tri.Callee, port, r.uas)
	r.proc, err = tri.Relay.Start(ctx, l.bin, "sip", "--config", l.config,
		"--listen-udp", r.sipAddr.String(), "--domain", testDomain, "--edge", "lab",
		"--relay-ng", l.ngAddr, "--relay-customer-iface", "customer", "--relay-carrier-iface", "carrier",
		"--db", l.p.dsn, "--default-cps", "0", "--carrier", "sip:"+carrier.String(), "--carrier-probe-interval", "0",
		"--drain-timeout", "120s", "--metrics", r.metricsAddr, "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.proc.Kill()
		if t.Failed() {
			t.Logf("xtrunk sip:\n%s\ncarrier:\n%s", r.proc.Output(), r.uas.Output())
		}
	})
	waitBoundUDP(t, tri.Relay, port, r.proc)
	// The PBX: a raw UAC in the caller namespace (198.18.1.2, in the
	// open trunk's IP ACL).
	r.uac = newRawUAC(t, tri.Caller, netip.AddrPortFrom(tri.CallerIP, port+10), r.sipAddr)
	r.toTag, r.contact = r.uac.invite(t, callID)
	r.uac.ack(t, r.toTag, r.contact)
	return r
}

// sigterm sends SIGTERM and waits until /metrics says draining.
func (r *drainRun) sigterm(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := syscall.Kill(r.proc.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for metricValue(scrapeIn(t, r.metricsNS, r.metricsAddr), "xtrunk_sip_draining") != 1 {
		select {
		case <-r.proc.Done():
			t.Fatalf("exited on SIGTERM with a call up: %v", r.proc.Wait())
		case <-ctx.Done():
			t.Fatal("never drained")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exited waits for the process to end and wants exit status 0 and the
// carrier's SIPp to have seen its BYE.
func (r *drainRun) exited(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-r.proc.Done():
	case <-ctx.Done():
		t.Fatal("still running")
	}
	if err := r.proc.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if err := r.uas.Wait(); err != nil {
		t.Fatalf("carrier: %v\n%s", err, r.uas.Output())
	}
}

// cdr wants the call's CDR written before the process exited.
func (l *drainLab) cdr(t *testing.T, callID, hangupBy string) {
	t.Helper()
	calls, _, err := l.p.st.ListCalls(context.Background(), l.p.account, store.CallFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if c.Status == "completed" && c.TrunkSid == l.open.Sid && strings.HasPrefix(c.HangupCause, hangupBy) {
			return
		}
	}
	t.Fatalf("no CDR of %s hung up by %s: %+v", callID, hangupBy, calls)
}

// scrapeIn GETs /metrics at addr from inside ns.
func scrapeIn(t *testing.T, ns *testbed.NS, addr string) string {
	t.Helper()
	var body string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	if !strings.HasPrefix(body, "HTTP/1.0 200") {
		t.Fatalf("scrape %s: %q", addr, statusLine(body))
	}
	return body
}

// waitBoundUDP waits until something in ns has UDP port bound, without
// sending it anything.
func waitBoundUDP(t *testing.T, ns *testbed.NS, port uint16, p *testbed.Process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := ns.Run(context.Background(), "ss", "-Hlun", fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("%s exited before binding port %d:\n%s", p, port, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing bound to UDP port %d in %s", port, ns)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rawUAC is a PBX placing one call with hand-written SIP over a socket in
// its namespace.
type rawUAC struct {
	conn          *net.UDPConn
	local, server netip.AddrPort
	callID, tag   string
	branch        int
}

func newRawUAC(t *testing.T, ns *testbed.NS, local, server netip.AddrPort) *rawUAC {
	t.Helper()
	c, err := ns.ListenUDP(local.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawUAC{conn: c, local: local, server: server, tag: "pbx-1"}
}

func (u *rawUAC) send(t *testing.T, method, ruri, toTag string, cseq int, body string) {
	t.Helper()
	u.branch++
	to := "<sip:" + labCalled + "@" + aclHost + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	msg := fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d;rport\r\n"+
		"From: <sip:%s@pbx.example.com>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"+
		"Contact: <sip:pbx@%s>\r\nMax-Forwards: 70\r\n%sContent-Length: %d\r\n\r\n%s",
		method, ruri, u.local, u.callID, u.branch, testDID, u.tag, to, u.callID, cseq, method, u.local, ct, len(body), body)
	if _, err := u.conn.WriteToUDPAddrPort([]byte(msg), u.server); err != nil {
		t.Fatal(err)
	}
}

// final reads until a final response to method.
func (u *rawUAC) final(t *testing.T, method string) *sip.Response {
	t.Helper()
	buf := make([]byte, 8192)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = u.conn.SetReadDeadline(deadline)
		n, err := u.conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for the answer to %s: %v", method, err)
		}
		msg, err := sip.NewParser().ParseSIP(buf[:n])
		if err != nil {
			continue
		}
		res, ok := msg.(*sip.Response)
		if !ok || res.IsProvisional() || res.CSeq() == nil || res.CSeq().MethodName != sip.RequestMethod(method) {
			continue
		}
		return res
	}
}

func (u *rawUAC) invite(t *testing.T, callID string) (toTag string, contact string) {
	t.Helper()
	u.callID = callID
	ip := u.local.Addr().String()
	sdp := "v=0\r\no=pbx 1 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\nm=audio 20000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
	u.send(t, "INVITE", "sip:"+labCalled+"@"+aclHost, "", 1, sdp)
	res := u.final(t, "INVITE")
	if res.StatusCode != 200 {
		t.Fatalf("INVITE: %d %s", res.StatusCode, res.Reason)
	}
	toTag, _ = res.To().Params.Get("tag")
	if res.Contact() == nil || toTag == "" {
		t.Fatalf("200 without Contact or To tag:\n%s", res)
	}
	return toTag, res.Contact().Address.String()
}

func (u *rawUAC) ack(t *testing.T, toTag, contact string) {
	t.Helper()
	u.send(t, "ACK", contact, toTag, 1, "")
}

func (u *rawUAC) bye(t *testing.T, toTag, contact string) {
	t.Helper()
	u.send(t, "BYE", contact, toTag, 2, "")
	if res := u.final(t, "BYE"); res.StatusCode != 200 {
		t.Fatalf("BYE while draining: %d %s", res.StatusCode, res.Reason)
	}
}

// answerBye waits for xtrunk's BYE and answers it 200.
func (u *rawUAC) answerBye(t *testing.T) {
	t.Helper()
	buf := make([]byte, 8192)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = u.conn.SetReadDeadline(deadline)
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("waiting for a BYE: %v", err)
		}
		msg, err := sip.NewParser().ParseSIP(buf[:n])
		if err != nil {
			continue
		}
		req, ok := msg.(*sip.Request)
		if !ok || req.Method != sip.BYE {
			continue
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if _, err := u.conn.WriteToUDPAddrPort([]byte(res.String()), from); err != nil {
			t.Fatal(err)
		}
		return
	}
}
