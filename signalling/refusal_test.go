package signalling

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// rawRequest is a minimal SIP request over UDP; the tests vary one thing
// at a time.
type rawRequest struct {
	method, ruri, from, extra string
	maxForwards               int
	body                      string // sent as application/sdp when set
}

func (r rawRequest) bytes(local string) []byte {
	if r.method == "" {
		r.method = "INVITE"
	}
	if r.from == "" {
		r.from = testDID
	}
	if r.maxForwards == 0 {
		r.maxForwards = 70
	}
	cid := fmt.Sprintf("raw-%d", time.Now().UnixNano())
	if r.body != "" {
		r.extra += "Content-Type: application/sdp\r\n"
	}
	return []byte(fmt.Sprintf("%s %s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK%d;rport\r\n"+
		"From: <sip:%s@pbx.example.com>;tag=f%d\r\n"+
		"To: <%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 %s\r\n"+
		"Contact: <sip:pbx@%s>\r\n"+
		"Max-Forwards: %d\r\n"+
		"%s"+
		"Content-Length: %d\r\n\r\n%s",
		r.method, r.ruri, local, time.Now().UnixNano(), r.from, time.Now().UnixNano(), r.ruri, cid, r.method, local, r.maxForwards, r.extra,
		len(r.body), r.body))
}

// exchange sends req from a fresh socket bound to laddr and returns the
// first final response's status line and headers ("" after wait).
func exchange(t *testing.T, laddr, server string, req rawRequest, wait time.Duration) string {
	t.Helper()
	got, err := tryExchange(laddr, server, req, wait)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func tryExchange(laddr, server string, req rawRequest, wait time.Duration) (string, error) {
	la, err := net.ResolveUDPAddr("udp", laddr)
	if err != nil {
		return "", err
	}
	ra, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return "", err
	}
	c, err := net.DialUDP("udp", la, ra)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Write(req.bytes(c.LocalAddr().String())); err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(wait)
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, "SIP/2.0 1") {
			continue
		}
		return msg, nil
	}
}

func statusLine(msg string) string {
	line, _, _ := strings.Cut(msg, "\r\n")
	return line
}

func freeUDPPort(t testing.TB, host string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// TestTerminationRefusals checks each refusal's code on the wire, on
// loopback, without a relay or a carrier (no call gets that far).
func TestTerminationRefusals(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.ListenUDP = serve(t, cfg, p.st).Addr("UDP").String()

	uri := func(user, host string) string { return "sip:" + user + "@" + host }
	cases := []struct {
		name string
		req  rawRequest
		want string // status line prefix; "" means no response at all
	}{
		{"unknown domain", rawRequest{ruri: uri("+14155550123", "nope.pstn.example.net")}, ""},
		{"not our domain", rawRequest{ruri: uri("+14155550123", "example.org")}, ""},
		{"ACL refuses", rawRequest{ruri: uri("+14155550123", deniedHost)}, "SIP/2.0 403"},
		{"trunk without authentication refuses", rawRequest{ruri: uri("+14155550123", noAuthHost)}, "SIP/2.0 403"},
		{"credentials challenged", rawRequest{ruri: uri("+14155550123", acmeHost)}, "SIP/2.0 407"},
		{"bad credentials challenged again", rawRequest{ruri: uri("+14155550123", acmeHost),
			extra: `Proxy-Authorization: Digest username="pbx1", realm="example.net", nonce="bogus", uri="sip:+14155550123@acme.pstn.example.net", response="00000000000000000000000000000000"` + "\r\n"}, "SIP/2.0 407"},
		{"non-E.164", rawRequest{ruri: uri("14155550123", aclHost)}, "SIP/2.0 400"},
		{"caller ID not ours", rawRequest{ruri: uri("+14155550123", aclHost), from: "+14155559999"}, "SIP/2.0 403 Caller ID"},
		{"caller ID anonymous", rawRequest{ruri: uri("+14155550123", aclHost), from: "anonymous"}, "SIP/2.0 403"},
		{"Max-Forwards", rawRequest{ruri: uri("+14155550123", aclHost), maxForwards: 19}, "SIP/2.0 483"},
		{"Require 100rel", rawRequest{ruri: uri("+14155550123", aclHost), extra: "Require: 100rel\r\n"}, "SIP/2.0 420"},
		{"REGISTER", rawRequest{method: "REGISTER", ruri: "sip:" + aclHost}, "SIP/2.0 403"},
		{"REGISTER unknown domain", rawRequest{method: "REGISTER", ruri: "sip:nope.pstn.example.net"}, ""},
		{"OPTIONS", rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}, "SIP/2.0 200"},
		{"OPTIONS unknown domain", rawRequest{method: "OPTIONS", ruri: "sip:nope.pstn.example.net"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wait := 2 * time.Second
			if tc.want == "" {
				wait = 700 * time.Millisecond
			}
			got := exchange(t, "127.0.0.1:0", cfg.ListenUDP, tc.req, wait)
			if tc.want == "" {
				if got != "" {
					t.Fatalf("want silence, got %q", statusLine(got))
				}
				return
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("want %q, got %q", tc.want, statusLine(got))
			}
			if strings.HasPrefix(tc.want, "SIP/2.0 420") && !strings.Contains(got, "Unsupported: 100rel") {
				t.Fatalf("420 without Unsupported: 100rel:\n%s", got)
			}
			if strings.HasPrefix(tc.want, "SIP/2.0 407") && !strings.Contains(got, "Proxy-Authenticate: Digest") {
				t.Fatalf("407 without a challenge:\n%s", got)
			}
		})
	}
}

// TestTerminationCPS: the second call in the same second on a trunk with
// CPS 1 gets 503 "Trunk CPS limit exceeded". The first is admitted and
// fails at the (absent) relay, which is not what is tested.
func TestTerminationCPS(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.DefaultCPS = 1
	cfg.ListenUDP = serve(t, cfg, p.st).Addr("UDP").String()
	req := rawRequest{ruri: "sip:+14155550123@" + aclHost}
	first, err := net.Dial("udp", cfg.ListenUDP)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := first.Write(req.bytes(first.LocalAddr().String())); err != nil {
		t.Fatal(err)
	}
	// The edge answers 100 Trying once the call is admitted (its CPS
	// token spent): only then is the second INVITE over the limit. A
	// fixed sleep raced the edge under load.
	_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := first.Read(buf)
	if err != nil {
		t.Fatalf("first INVITE: no answer: %v", err)
	}
	if got := statusLine(string(buf[:n])); got != "SIP/2.0 100 Trying" {
		t.Fatalf("first INVITE: want 100 Trying, got %q", got)
	}
	got := exchange(t, "127.0.0.1:0", cfg.ListenUDP, req, 2*time.Second)
	if want := "SIP/2.0 503 Trunk CPS limit exceeded"; statusLine(got) != want {
		t.Fatalf("want %q, got %q", want, statusLine(got))
	}
}

// TestConfigChangeTakesEffect: a caller ID verified through the store is
// accepted within a second, without a restart (the cache follows the
// change feed).
func TestConfigChangeTakesEffect(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.ListenUDP = serve(t, cfg, p.st).Addr("UDP").String()
	// Max-Forwards 10 stops an admitted caller ID at the next check (483),
	// so no call is placed.
	req := rawRequest{ruri: "sip:+14155550123@" + aclHost, from: "+14155558888", maxForwards: 10}
	if got := statusLine(exchange(t, "127.0.0.1:0", cfg.ListenUDP, req, 2*time.Second)); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Fatalf("before: want 403, got %q", got)
	}
	if _, err := p.st.RequestCallerID(context.Background(), p.account, "+14155558888", "new", true); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	for {
		// Judged by when the request was sent: an exchange begun in time
		// but slow to come back on a loaded machine is no late change.
		sent := time.Now()
		got := statusLine(exchange(t, "127.0.0.1:0", cfg.ListenUDP, req, 2*time.Second))
		if strings.HasPrefix(got, "SIP/2.0 483") {
			t.Logf("took effect after %v", time.Since(changed))
			return
		}
		if sent.Sub(changed) > time.Second {
			t.Fatalf("still %q a second after the change", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
