package signalling

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// An INVITE retransmitted after --tx-linger (issue 13): the edge's INVITE
// server transaction (Accepted, Timer L) is gone, so sipgo hands the
// retransmission up as a new INVITE. It must not become a second call:
// the live call's Call-ID answers it 482 (RFC 3261 §8.2.2.2, merged
// request), the carrier sees one INVITE, and the call ends with one CDR.
// A real UDP peer in the caller namespace sends the same bytes (same Via
// branch) 2 s after its ACK, past a linger of 500 ms.
func TestTxLingerInviteRetransmitLab(t *testing.T) {
	l := newTrunkLab(t, relayXtrunk)
	tri := l.tri
	addSecondAddr(t, tri.Caller, tri.CallerIP, betaIP)
	betaHost := l.betaTrunk(t)

	carrierPort, carrierMedia := l.port(), l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort),
		extra: []string{"--tx-linger", "500ms"}})
	uas := l.startUAS(t, tri.Callee, "linger-carrier", "uas_carrier.xml", tri.CalleeIP, carrierPort, carrierMedia, "-m", "1")
	called := l.number()
	beta := netip.AddrPortFrom(betaIP, uint16(l.port()))
	conn, err := tri.Caller.ListenUDP(beta.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const callID = "linger-1@lab"
	invite := rawInvite(beta, called, betaHost, callID, "beta-tag", "z9hG4bK-linger-1")

	ok := lingerSend(t, conn, sipAddr, invite, "1 INVITE")
	if code := statusOf(ok); code != 200 {
		t.Fatalf("INVITE: %d, want 200:\n%s", code, ok)
	}
	toHdr := string(sipHeaderValue([]byte(ok), "To"))
	contact := strings.Trim(string(sipHeaderValue([]byte(ok), "Contact")), "<>")
	inDialog := func(method, branch string, cseq int) string {
		return fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s\r\nFrom: <sip:%s@%s>;tag=beta-tag\r\n"+
			"To: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			method, contact, beta, branch, labDID, betaIP, toHdr, callID, cseq, method)
	}
	if _, err := conn.WriteToUDPAddrPort([]byte(inDialog("ACK", "z9hG4bK-linger-ack", 1)), sipAddr); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // past the linger: the transaction is gone
	again := lingerSend(t, conn, sipAddr, invite, "1 INVITE")
	if code := statusOf(again); code != 482 {
		t.Errorf("INVITE retransmitted after the linger: %d, want 482 (the live call's Call-ID):\n%s", code, again)
	}
	if code := statusOf(lingerSend(t, conn, sipAddr, inDialog("BYE", "z9hG4bK-linger-bye", 2), "2 BYE")); code != 200 {
		t.Errorf("BYE: %d, want 200", code)
	}
	uas.wait(t)
	if c := l.cdrs(t, called, 1)[0]; c.Status != "completed" {
		t.Errorf("CDR status %q, want completed", c.Status)
	}
}

// lingerSend sends msg to dst over conn and returns the first final
// response with the given CSeq (retransmitted 200s of the INVITE and
// other answers are skipped).
func lingerSend(t *testing.T, conn *net.UDPConn, dst netip.AddrPort, msg, cseq string) string {
	t.Helper()
	if _, err := conn.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no final answer to %q: %v", cseq, err)
		}
		res := string(buf[:n])
		if statusOf(res) >= 200 && string(sipHeaderValue(buf[:n], "CSeq")) == cseq {
			return res
		}
	}
}

// statusOf is a response's status code (0 for anything else).
func statusOf(msg string) int {
	f := strings.Fields(msg)
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0
	}
	code, _ := strconv.Atoi(f[1])
	return code
}
