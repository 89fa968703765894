package signalling

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/ng"
)

// Relay errors become the SIP answers they mean (issue 10 item 10), with
// `xtrunk relay` given two port pairs (one call's worth): while another
// session holds them, an INVITE gets 503 with Retry-After (the relay's
// "ran out of ports"), not 488; a body that is not SDP still gets 488;
// with the relay killed an INVITE gets 503 with Retry-After and
// xtrunk_sip_relay_up drops to 0 (1 while it answers pings). With a stock
// rtpengine (its port range is the testbed's), its own wording for a body
// that is not SDP gets 488 too.
func TestRelayErrorsLab(t *testing.T) {
	t.Run(relayXtrunk, testRelayErrorsXtrunk)
	t.Run(relayRtpengine, func(t *testing.T) {
		l := newTrunkLab(t, relayRtpengine)
		tri := l.tri
		addSecondAddr(t, tri.Caller, tri.CallerIP, betaIP)
		host := l.betaTrunk(t)
		metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
		sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(l.port()), metrics: metrics})
		waitSeries(t, func() string { return httpGetIn(t, tri.Relay, "http://"+metrics+"/metrics") }, "xtrunk_sip_relay_up 1")
		beta := netip.AddrPortFrom(betaIP, uint16(l.port()))
		code, res := sipExchangeMsg(t, tri.Caller, beta, sipAddr,
			rawInviteSDP(beta, l.number(), host, "junk-2@beta", "b4", "z9hG4bK-junk-2", "this is not SDP\r\n"))
		if code != 488 {
			t.Errorf("INVITE with a body that is not SDP, through rtpengine: %d, want 488:\n%s", code, res)
		}
		// sip's output reaches the test through a pipe: its "call
		// admitted" line may land a moment after the 488 does.
		id, _ := l.relayCallID("junk-2@beta")
		for deadline := time.Now().Add(5 * time.Second); id == "" && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			id, _ = l.relayCallID("junk-2@beta")
		}
		if id == "" {
			t.Error("the INVITE never reached the relay")
		}
		l.sipsMu.Lock()
		t.Logf("xtrunk sip: %s", grepLines(l.sips[0].Output(), "relay offer failed"))
		l.sipsMu.Unlock()
	})
}

func testRelayErrorsXtrunk(t *testing.T) {
	l := newTrunkLab(t, relayXtrunk, "--port-min", "30000", "--port-max", "30003")
	tri := l.tri
	addSecondAddr(t, tri.Caller, tri.CallerIP, betaIP)
	host := l.betaTrunk(t)
	metrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(l.port()), metrics: metrics})
	scrape := func() string { return httpGetIn(t, tri.Relay, "http://"+metrics+"/metrics") }
	waitSeries(t, scrape, "xtrunk_sip_relay_up 1")

	// Other sessions take every port pair the relay has (per interface
	// address), until it says so.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var hogs []string
	for i := 0; ; i++ {
		id := "hog-" + strconv.Itoa(i)
		hog := ng.Dict{"command": "offer", "call-id": id, "from-tag": "hog", "direction": []any{"customer", "carrier"},
			"sdp": "v=0\r\no=- 1 1 IN IP4 198.18.1.2\r\ns=-\r\nc=IN IP4 198.18.1.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"}
		_, err := l.ng.Do(ctx, hog)
		var re *ng.ReplyError
		if errors.As(err, &re) && re.Class == ng.ClassNoCapacity {
			t.Logf("relay full after %d sessions: %v", i, err)
			break
		}
		if err != nil || i > 8 {
			t.Fatalf("offer %d: %v (the relay should run out of its two port pairs)", i, err)
		}
		hogs = append(hogs, id)
	}
	beta := netip.AddrPortFrom(betaIP, uint16(l.port()))
	code, res := sipExchangeMsg(t, tri.Caller, beta, sipAddr, rawInvite(beta, l.number(), host, "full-1@beta", "b1", "z9hG4bK-full-1"))
	if code != 503 || !strings.Contains(res, "Retry-After: ") {
		t.Errorf("INVITE with the relay out of ports: %d, want 503 with Retry-After:\n%s", code, res)
	}
	for _, id := range hogs {
		if _, err := l.ng.Do(ctx, ng.Dict{"command": "delete", "call-id": id, "from-tag": "hog"}); err != nil {
			t.Fatal(err)
		}
	}

	code, res = sipExchangeMsg(t, tri.Caller, beta, sipAddr,
		rawInviteSDP(beta, l.number(), host, "junk-1@beta", "b2", "z9hG4bK-junk-1", "this is not SDP\r\n"))
	if code != 488 {
		t.Errorf("INVITE with a body that is not SDP: %d, want 488:\n%s", code, res)
	}

	if err := l.relay.Stop(); err != nil {
		t.Fatal(err)
	}
	code, res = sipExchangeMsg(t, tri.Caller, beta, sipAddr, rawInvite(beta, l.number(), host, "gone-1@beta", "b3", "z9hG4bK-gone-1"))
	if code != 503 || !strings.Contains(res, "Retry-After: ") {
		t.Errorf("INVITE with the relay killed: %d, want 503 with Retry-After:\n%s", code, res)
	}
	waitSeries(t, scrape, "xtrunk_sip_relay_up 0")
}

// httpGetIn fetches url from inside ns and returns the body.
func httpGetIn(t *testing.T, ns *testbed.NS, url string) string {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).Dial(network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitSeries waits (up to 20 s) until a scrape has the line want.
func waitSeries(t *testing.T, scrape func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		page := scrape()
		for _, line := range strings.Split(page, "\n") {
			if line == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in /metrics within 20 s:\n%s", want, grepLines(page, strings.Fields(want)[0]))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
