package signalling

import (
	"bytes"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/store"
)

// A second tenant reusing a live call's Call-ID (issue 10 item 4): the
// acme PBX (198.18.1.2, digest) holds a call with media through the
// relay; the beta PBX (198.18.1.3, its own trunk by IP ACL) sends an
// INVITE with the same Call-ID (482, nothing changes), a BYE with it
// (481), a BYE with acme's own From tag from beta's address (481) and a
// CANCEL (no effect). Acme's media keeps flowing through the relay, its
// call ends by its own BYE, and its CDR is whole. Against both relays.
func TestCallIDCollisionLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) { testCallIDCollision(t, kind) })
	}
}

// betaIP is the second tenant's PBX, an extra address in the caller
// namespace.
var betaIP = netip.MustParseAddr("198.18.1.3")

func testCallIDCollision(t *testing.T, kind string) {
	l := newTrunkLab(t, kind)
	tri := l.tri
	addSecondAddr(t, tri.Caller, tri.CallerIP, betaIP)
	betaHost := l.betaTrunk(t)

	carrierPort, carrierMedia := l.port(), l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, "victim-carrier", "uas_carrier.xml", tri.CalleeIP, carrierPort, carrierMedia, "-rtp_echo", "-m", "1")
	called := l.number()
	const callID = "victim-1@lab"
	uac := l.startSIPp(t, tri.Caller, "victim-pbx", "uac_auth_hold.xml", tri.CallerIP, l.port(), l.port(),
		append([]string{"-cid_str", "victim-%u@lab", "-d", "8000"}, pbxArgs(called, sipAddr.String())...)...)
	before := l.waitPackets(t, callID, 20)

	beta := netip.AddrPortFrom(betaIP, uint16(l.port()))
	invite := rawInvite(beta, called, betaHost, callID, "beta-tag", "z9hG4bK-beta-1")
	if got := sipExchange(t, tri.Caller, beta, sipAddr, invite); got != 482 {
		t.Errorf("beta's INVITE reusing acme's live Call-ID: %d, want 482", got)
	}
	bye := func(fromTag, branch string) string {
		return fmt.Sprintf("BYE sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s\r\nFrom: <sip:%s@%s>;tag=%s\r\n"+
			"To: <sip:%s@%s>;tag=guessed\r\nCall-ID: %s\r\nCSeq: 9 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			called, sipAddr, beta, branch, labDID, betaIP, fromTag, called, labTrunkHost, callID)
	}
	if got := sipExchange(t, tri.Caller, beta, sipAddr, bye("beta-tag", "z9hG4bK-beta-2")); got != 481 {
		t.Errorf("beta's BYE with acme's Call-ID: %d, want 481", got)
	}
	acmeTag := sippFromTag(t, uac)
	if got := sipExchange(t, tri.Caller, beta, sipAddr, bye(acmeTag, "z9hG4bK-beta-3")); got != 481 {
		t.Errorf("beta's BYE with acme's Call-ID and From tag: %d, want 481", got)
	}
	after := l.waitPackets(t, callID, before+50)
	t.Logf("acme's RTP through the relay: %d packets before beta's attempts, %d after", before, after)
	cancel := strings.Replace(strings.Replace(invite, "INVITE sip:", "CANCEL sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	cancel = cancel[:strings.Index(cancel, "Content-Type:")] + "Content-Length: 0\r\n\r\n"
	t.Logf("beta's CANCEL with acme's Call-ID: %d", sipExchange(t, tri.Caller, beta, sipAddr, cancel))

	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
}

// betaTrunk provisions the second tenant's trunk: its own domain and an
// IP ACL of betaIP alone. It returns the trunk's domain.
func (l *trunkLab) betaTrunk(t *testing.T) string {
	acl := l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/SIP/IpAccessControlLists.json", url.Values{"FriendlyName": {"beta"}})
	l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/SIP/IpAccessControlLists/"+acl+"/IpAddresses.json",
		url.Values{"FriendlyName": {"beta pbx"}, "IpAddress": {betaIP.String()}})
	host := "beta.pstn." + testDomain
	sid := l.api.create(t, "/v1/Trunks", url.Values{"FriendlyName": {"beta"}, "DomainName": {host}})
	l.api.create(t, "/v1/Trunks/"+sid+"/IpAccessControlLists", url.Values{"IpAccessControlListSid": {acl}})
	return host
}

// waitPackets waits until the relay has forwarded at least min RTP
// packets from the call's parties (the least of the two) and returns
// that count.
func (l *trunkLab) waitPackets(t *testing.T, callID string, min int64) int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := l.relayCounts(callID)
		least := int64(-1)
		for _, c := range got {
			if least < 0 || c.packets < least {
				least = c.packets
			}
		}
		if err == nil && len(got) >= 2 && least >= min {
			return least
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay counts for %s: %v (%v), want %d packets from each party", callID, got, err, min)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// addSecondAddr adds addr (a /24 like next's) to the device of ns that
// carries next.
func addSecondAddr(t *testing.T, ns *testbed.NS, next, addr netip.Addr) {
	t.Helper()
	out, err := ns.IP("-o", "-4", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], next.String()+"/") {
			if _, err := ns.IP("addr", "add", addr.String()+"/24", "dev", f[1]); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no device of %s carries %s:\n%s", ns, next, out)
}

// rawInvite is a plain PBX INVITE (G.711 A-law offer) from src.
func rawInvite(src netip.AddrPort, called, host, callID, fromTag, branch string) string {
	return rawInviteSDP(src, called, host, callID, fromTag, branch, "")
}

// rawInviteSDP is rawInvite with body sdp ("" for a G.711 A-law offer).
func rawInviteSDP(src netip.AddrPort, called, host, callID, fromTag, branch, sdp string) string {
	if sdp != "" {
		return rawInviteBody(src, called, host, callID, fromTag, branch, sdp)
	}
	sdp = fmt.Sprintf("v=0\r\no=beta 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n",
		src.Addr(), src.Addr(), src.Port()+2)
	return rawInviteBody(src, called, host, callID, fromTag, branch, sdp)
}

func rawInviteBody(src netip.AddrPort, called, host, callID, fromTag, branch, sdp string) string {
	return fmt.Sprintf("INVITE sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s\r\nFrom: <sip:%s@%s>;tag=%s\r\n"+
		"To: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:beta@%s>\r\nMax-Forwards: 70\r\n"+
		"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		called, host, src, branch, labDID, src.Addr(), fromTag, called, host, callID, src, len(sdp), sdp)
}

// sipExchange sends msg from src in ns to dst and returns the final
// response's status (0 if none came within 10 s).
func sipExchange(t *testing.T, ns *testbed.NS, src, dst netip.AddrPort, msg string) int {
	t.Helper()
	code, _ := sipExchangeMsg(t, ns, src, dst, msg)
	return code
}

// sipExchangeMsg is sipExchange returning the final response too.
func sipExchangeMsg(t *testing.T, ns *testbed.NS, src, dst netip.AddrPort, msg string) (int, string) {
	t.Helper()
	conn, err := ns.ListenUDP(src.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
		t.Fatal(err)
	}
	// Only this request's answer (Call-ID and CSeq): a caller reusing src
	// gets the edge's retransmissions of an earlier final (Timer G:
	// nobody ACKs them here), which under load arrived first and read as
	// this one's (TestRelayErrorsLab: the junk INVITE's 488 for the next).
	callID, cseq := sipHeaderValue([]byte(msg), "Call-ID"), sipHeaderValue([]byte(msg), "CSeq")
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return 0, ""
		}
		f := strings.Fields(string(buf[:n]))
		if len(f) < 2 || f[0] != "SIP/2.0" || !bytes.Equal(sipHeaderValue(buf[:n], "Call-ID"), callID) ||
			!bytes.Equal(sipHeaderValue(buf[:n], "CSeq"), cseq) {
			continue
		}
		if code, _ := strconv.Atoi(f[1]); code >= 200 {
			return code, string(buf[:n])
		}
	}
}

// sippFromTag is the From tag of the SIPp's first call, from its message
// trace.
func sippFromTag(t *testing.T, sp *sippProc) string {
	t.Helper()
	b, err := os.ReadFile(sp.msgs)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`tag=(\d+SIPpTag001)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no From tag in %s", sp.msgs)
	}
	return string(m[1])
}
