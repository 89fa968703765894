package signalling

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/relay"
)

// The termination lab: pbx (SIPp UAC) in the Triangle's caller namespace,
// the edge (xtrunk relay in-process, `xtrunk sip` as the built binary) in
// its relay namespace, the carrier (SIPp UAS) in its callee namespace.

const labCalled = "+14155550123"

// startLabRelay runs an in-process relay in tri's relay namespace with NG
// on the customer-side address, as relay/lab_test.go does.
func startLabRelay(t *testing.T, tri *testbed.Triangle) string {
	t.Helper()
	cfg := relay.DefaultConfig()
	cfg.Dataplane = relay.DataplaneUserspace
	cfg.Interfaces = []relay.Interface{
		{Name: "customer", Addr: tri.RelayCallerIP, Advertised: tri.RelayCallerIP},
		{Name: "carrier", Addr: tri.RelayCalleeIP, Advertised: tri.RelayCalleeIP},
	}
	var r *relay.Relay
	var pc net.PacketConn
	err := tri.Relay.Do(func() error {
		var err error
		r, err = relay.New(cfg, relay.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)))
		if err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(tri.RelayCallerIP, 2223).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ng.NewServer(r).Serve(ctx, pc) }()
	t.Cleanup(func() { cancel(); <-done; pc.Close(); r.Close() })
	return pc.LocalAddr().String()
}

// buildXtrunk is the xtrunk binary, built once per test binary run.
func buildXtrunk(t *testing.T) string { return xtrunkBinary(t) }

func sippPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("XTRUNK_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("sipp not installed")
		}
		t.Skip("sipp not installed")
	}
	return p
}

func TestTerminationLab(t *testing.T) {
	tri := labtest.NewTriangle(t, testbed.WithoutIPv6())
	sipp := sippPath(t)
	if _, err := os.Stat("/usr/share/sip-tester/g711a.pcap"); err != nil {
		t.Fatalf("uac_auth.xml plays Debian sip-tester's g711a.pcap: %v", err)
	}
	p := provision(t)
	ngAddr := startLabRelay(t, tri)
	bin := buildXtrunk(t)
	dir := t.TempDir()
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	emptyConfig := filepath.Join(dir, "xtrunk.yaml")
	if err := os.WriteFile(emptyConfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The first B2BUA listens as the default does, on 0.0.0.0:5060 with
	// no --advertise: its Contact toward the PBX must be 198.18.1.1 (see
	// uac_contact.xml and TestWildcardAddressLab).
	sipAddr := netip.AddrPortFrom(tri.RelayCallerIP, 5060).String()
	carrier := netip.AddrPortFrom(tri.CalleeIP, 5060).String()
	startB2BUA(t, ctx, tri, bin, emptyConfig, p.dsn, ngAddr, "0.0.0.0:5060", "sip:"+carrier+";priority=10;weight=1")

	// A second B2BUA whose first-choice carrier never answers: the call
	// must move to the next after 4 s.
	silentConn, err := tri.Callee.ListenUDP(netip.AddrPortFrom(tri.CalleeIP, 5070).String())
	if err != nil {
		t.Fatal(err)
	}
	defer silentConn.Close()
	silentHeard := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := silentConn.Read(buf)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(buf[:n]), "INVITE ") {
				select {
				case silentHeard <- time.Now():
				default:
				}
			}
		}
	}()
	failoverAddr := netip.AddrPortFrom(tri.RelayCallerIP, 5062).String()
	startB2BUA(t, ctx, tri, bin, emptyConfig, p.dsn, ngAddr, failoverAddr,
		"sip:"+netip.AddrPortFrom(tri.CalleeIP, 5070).String()+";priority=1",
		"sip:"+carrier+";priority=2")

	uasMsgs := filepath.Join(dir, "uas_messages.log")
	uas, err := tri.Callee.Start(ctx, sipp, "-sf", filepath.Join(testdata, "uas_carrier.xml"),
		"-i", tri.CalleeIP.String(), "-p", "5060", "-mi", tri.CalleeIP.String(), "-mp", "40000", "-rtp_echo",
		"-m", "2", "-nostdin", "-timeout", "40s", "-timeout_error",
		"-trace_msg", "-message_file", uasMsgs)
	if err != nil {
		t.Fatal(err)
	}
	waitBoundUDP(t, tri.Callee, 5060, uas) // a fixed sleep raced SIPp's start under load
	runUAC := func(scenario, server string) {
		t.Helper()
		uac, err := tri.Caller.Start(ctx, sipp, "-sf", filepath.Join(testdata, scenario),
			"-i", tri.CallerIP.String(), "-p", "5060", "-mi", tri.CallerIP.String(), "-mp", "20000",
			"-s", labCalled, "-key", "trunk", acmeHost, "-key", "caller", testDID,
			"-au", testUser, "-ap", testPassword, "-auth_uri", labCalled+"@"+acmeHost,
			"-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error",
			server)
		if err != nil {
			t.Fatal(err)
		}
		if err := uac.Wait(); err != nil {
			t.Fatalf("SIPp UAC via %s: %v\n%s", server, err, uac.Output())
		}
	}
	// The PBX sends its INVITE to the edge's other address and its ACK
	// and BYE where the 200's Contact says.
	runUAC("uac_contact.xml", netip.AddrPortFrom(tri.RelayCalleeIP, 5060).String())
	failoverStart := time.Now()
	runUAC("uac_auth.xml", failoverAddr)

	// A third B2BUA toward a carrier that only rings: the PBX cancels.
	cancelAddr := netip.AddrPortFrom(tri.RelayCallerIP, 5064).String()
	ringing := netip.AddrPortFrom(tri.CalleeIP, 5080).String()
	startB2BUA(t, ctx, tri, bin, emptyConfig, p.dsn, ngAddr, cancelAddr, "sip:"+ringing)
	uasRing, err := tri.Callee.Start(ctx, sipp, "-sf", filepath.Join(testdata, "uas_cancel.xml"),
		"-i", tri.CalleeIP.String(), "-p", "5080", "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error")
	if err != nil {
		t.Fatal(err)
	}
	waitBoundUDP(t, tri.Callee, 5080, uasRing)
	runUAC("uac_cancel.xml", cancelAddr)
	if err := uasRing.Wait(); err != nil {
		t.Fatalf("SIPp ringing UAS: %v\n%s", err, uasRing.Output())
	}
	if err := uas.Wait(); err != nil {
		t.Fatalf("SIPp UAS: %v\n%s", err, uas.Output())
	}

	// The carrier saw the relay's carrier-side address, not the PBX's.
	msgs, err := os.ReadFile(uasMsgs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msgs), "c=IN IP4 "+tri.RelayCalleeIP.String()) || strings.Contains(string(msgs), "c=IN IP4 "+tri.CallerIP.String()) {
		t.Fatalf("carrier's INVITE does not carry the relay's SDP:\n%s", msgs)
	}

	// The silent gateway was tried first, then left after 4 s.
	select {
	case at := <-silentHeard:
		if at.Before(failoverStart) {
			t.Fatal("silent gateway heard an INVITE before the failover call")
		}
	default:
		t.Fatal("the priority-1 gateway never got the INVITE")
	}

	// The CDRs, oldest first: the direct call, the failover call, the
	// cancelled call.
	var calls []store.Call
	deadline := time.Now().Add(cdrWait)
	for time.Now().Before(deadline) {
		calls, _, err = p.st.ListCalls(context.Background(), p.account, store.CallFilter{}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if calls = finished(calls); len(calls) >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(calls) != 3 {
		t.Fatalf("want 3 CDRs, got %d", len(calls))
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].Start.Before(calls[j].Start) })
	if c := calls[2]; c.SIPResponseCode != 487 || c.Status != "canceled" || !c.Answer.IsZero() || !strings.HasPrefix(c.HangupCause, string(hangupCaller)) {
		t.Errorf("cancelled call's CDR wrong: %+v", c)
	} else if d := c.End.Sub(c.Start); d > 10*time.Second {
		// A CANCEL not acted on leaves the call ringing until SIPp's 30 s
		// timeout; 2 s here was a timing a loaded machine could miss.
		t.Errorf("cancelled call ended %v after it began: the CANCEL was not acted on at once", d)
	}
	t.Logf("CDR 2: %+v", calls[2])
	calls = calls[:2]
	for i, c := range calls {
		t.Logf("CDR %d: %+v", i, c)
		if c.SIPResponseCode != 200 || c.Status != "completed" || c.Direction != store.DirectionTerminating ||
			c.From != testDID || c.To != labCalled || c.TrunkSid != p.acme.Sid || c.Answer.IsZero() ||
			!strings.HasPrefix(c.HangupCause, string(hangupCaller)) {
			t.Fatalf("CDR %d wrong: %+v", i, c)
		}
	}
	// Media went both ways through the relay: the PBX's pcap in, the
	// carrier's echo back.
	for i, c := range calls {
		if len(c.Quality) != 2 || c.Quality[0].PacketsReceived < 50 || c.Quality[1].PacketsReceived < 50 {
			t.Errorf("CDR %d: media did not flow both ways through the relay: %+v", i, c.Quality)
		}
	}
	// Behaviour, not speed (a loaded machine stretches both): the direct
	// call did not wait out a no-response timer, the failover call did,
	// and left on it rather than on Timer B (32 s).
	if setup := calls[0].Answer.Sub(calls[0].Start); setup >= noResponseTimeout {
		t.Errorf("direct call took %v to answer: it waited for a failover", setup)
	}
	if setup := calls[1].Answer.Sub(calls[1].Start); setup < noResponseTimeout || setup > 3*noResponseTimeout {
		t.Errorf("failover call answered after %v, want the %v no-response timer", setup, noResponseTimeout)
	}

	// Refusals from the PBX's address, on the wire.
	uri := func(user, host string) string { return "sip:" + user + "@" + host }
	laddr := netip.AddrPortFrom(tri.CallerIP, 0).String()
	for _, tc := range []struct {
		name string
		req  rawRequest
		want string
	}{
		{"407 without credentials", rawRequest{ruri: uri(labCalled, acmeHost)}, "SIP/2.0 407"},
		{"400 non-E.164", rawRequest{ruri: uri("14155550123", aclHost)}, "SIP/2.0 400"},
		{"403 caller ID", rawRequest{ruri: uri(labCalled, aclHost), from: "+14155559999"}, "SIP/2.0 403"},
		{"483 Max-Forwards", rawRequest{ruri: uri(labCalled, aclHost), maxForwards: 10}, "SIP/2.0 483"},
		{"403 REGISTER", rawRequest{method: "REGISTER", ruri: "sip:" + aclHost}, "SIP/2.0 403"},
		{"localized host on this edge finds the trunk", rawRequest{ruri: uri("14155550123", "open.pstn.lab.example.net")}, "SIP/2.0 400"},
		{"unknown domain: silence", rawRequest{ruri: uri(labCalled, "nope.pstn.example.net")}, ""},
		{"localized host, wrong edge: silence", rawRequest{ruri: uri(labCalled, "open.pstn.dublin.example.net")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			wait := 2 * time.Second
			if tc.want == "" {
				wait = 700 * time.Millisecond
			}
			err := tri.Caller.Do(func() error { got = exchange(t, laddr, sipAddr, tc.req, wait); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got, tc.want) || (tc.want == "" && got != "") {
				t.Fatalf("want %q, got %q", tc.want, statusLine(got))
			}
		})
	}
}

// startB2BUA runs `xtrunk sip` in the relay namespace and waits until it
// answers OPTIONS.
func startB2BUA(t *testing.T, ctx context.Context, tri *testbed.Triangle, bin, config, dsn, ngAddr, listen string, carriers ...string) {
	t.Helper()
	startB2BUAWith(t, ctx, tri, bin, config, dsn, ngAddr, listen, carriers)
}

// waitUDP waits until something answers OPTIONS at addr from ns.
func waitUDP(t *testing.T, ns *testbed.NS, addr string) {
	t.Helper()
	laddr := "0.0.0.0:0"
	// A deadline, not a count of tries: a try refused at once (nothing
	// bound yet) takes no time, so 50 of them were 5 s, under the 10 s a
	// starting edge may take for its store (startupStoreTimeout).
	for deadline := time.Now().Add(startupStoreTimeout + 10*time.Second); time.Now().Before(deadline); {
		var got string
		_ = ns.Do(func() error {
			got, _ = tryExchange(laddr, addr, rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}, 200*time.Millisecond)
			return nil
		})
		if strings.HasPrefix(got, "SIP/2.0 200") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing answers SIP at %s", addr)
}
