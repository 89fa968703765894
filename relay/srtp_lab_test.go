package relay

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/srtp/v2"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

func savpSDP(addr netip.AddrPort, cryptos ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 7 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n", addr.Addr(), addr.Port())
	for _, c := range cryptos {
		b.WriteString("a=crypto:" + c + "\r\n")
	}
	return b.String()
}

func testKey(seed byte) []byte {
	k := make([]byte, 30)
	for i := range k {
		k[i] = seed + byte(i)*13
	}
	return k
}

func profileOf(t *testing.T, suite string) srtp.ProtectionProfile {
	p, ok := suiteProfile(suite)
	if !ok {
		t.Fatalf("suite %s", suite)
	}
	return p
}

// relayCrypto finds the relay's a=crypto in an SDP (the key the relay
// encrypts with toward that party).
func relayCrypto(t *testing.T, body string) sdp.Crypto {
	t.Helper()
	s, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.Media[0].Cryptos()
	if err != nil || len(cs) == 0 {
		t.Fatalf("no crypto in relay SDP (%v):\n%s", err, body)
	}
	return cs[0]
}

// A customer on SRTP, a carrier on plain RTP, for each suite: what each side
// decrypts or receives is exactly what the other sent, with nothing lost.
func TestSRTPToRTP(t *testing.T) {
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"} {
		for _, mode := range xdpModes {
			t.Run(suite+"/"+mode, func(t *testing.T) { testSRTPCall(t, suite, mode) })
		}
	}
}

func testSRTPCall(t *testing.T, suite, mode string) {
	tri := labtest.NewTriangle(t)
	lr := startLabRelay(t, tri, labConfig(t, tri, mode))
	c := lr.ngClient(t)
	caller := netip.AddrPortFrom(tri.CallerIP, 20000)
	callee := netip.AddrPortFrom(tri.CalleeIP, 40000)
	callerKey := testKey(7)

	// The customer prefers the other suite but lists an MKI line first:
	// the relay must skip the MKI line and honour the order otherwise.
	other := "AES_CM_128_HMAC_SHA1_32"
	if suite == other {
		other = "AES_CM_128_HMAC_SHA1_80"
	}
	offerSDP := savpSDP(caller,
		"1 "+suite+" inline:"+base64.StdEncoding.EncodeToString(callerKey)+"|2^31|1:4",
		"2 "+suite+" inline:"+base64.StdEncoding.EncodeToString(callerKey),
		"3 "+other+" inline:"+base64.StdEncoding.EncodeToString(testKey(9)))
	offer := do(t, c, ng.Dict{"command": "offer", "call-id": "srtp", "from-tag": "cust", "sdp": offerSDP,
		"direction": []any{"customer", "carrier"}, "transport-protocol": "RTP/AVP"})
	if strings.Contains(offer.Str("sdp"), "a=crypto") || !strings.Contains(offer.Str("sdp"), " RTP/AVP ") {
		t.Fatalf("carrier-side offer must be plain RTP/AVP without crypto:\n%s", offer.Str("sdp"))
	}
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": "srtp", "from-tag": "cust", "to-tag": "carr", "sdp": g711SDP(tri.CalleeIP, 40000)})
	rc := relayCrypto(t, answer.Str("sdp"))
	if !strings.Contains(answer.Str("sdp"), " RTP/SAVP ") || rc.Tag != 2 || rc.Suite != suite {
		t.Fatalf("answer to the customer: want RTP/SAVP with tag 2 %s, got\n%s", suite, answer.Str("sdp"))
	}
	toCaller, toCallee := mediaOf(t, answer.Str("sdp")), mediaOf(t, offer.Str("sdp"))

	prof := profileOf(t, suite)
	enc, err := srtp.CreateContext(callerKey[:16], callerKey[16:], prof)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(rc.KeyParams[0].Key[:16], rc.KeyParams[0].Key[16:], prof, srtp.SRTPReplayProtection(64))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := tri.Caller.ListenUDP(caller.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ce, err := tri.Callee.ListenUDP(callee.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()

	const n, pps = 250, 50
	atCallee := rtpgen.NewSink(ce, 0xAAAA)
	atCaller := rtpgen.NewSinkWith(cc, 0xBBBB, func(dst, pkt []byte) ([]byte, error) { return dec.DecryptRTP(dst, pkt, nil) })
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() {
		_, err := rtpgen.SendWith(ctx, cc, toCaller, 0xAAAA, n, pps, func(dst, pkt []byte) ([]byte, error) { return enc.EncryptRTP(dst, pkt, nil) })
		errs <- err
	}()
	go func() { _, err := rtpgen.Send(ctx, ce, toCallee, 0xBBBB, n, pps); errs <- err }()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if good, b := atCallee.Drain(n, drainWait); good != n || b != 0 {
		t.Errorf("carrier received %d/%d intact plain packets, %d bad", good, n, b)
	}
	if good, b := atCaller.Drain(n, drainWait); good != n || b != 0 {
		t.Errorf("customer decrypted %d/%d intact packets, %d bad", good, n, b)
	}

	// Attacks on the SRTP leg: a tampered packet, a replayed one and one
	// under the wrong key are dropped and counted, never forwarded.
	buf := make([]byte, 172)
	good, _ := enc.EncryptRTP(nil, rtpgen.Packet(buf, 0xAAAA, 5000), nil)
	tampered := append([]byte(nil), good...)
	tampered[20] ^= 0xff
	wrong, _ := srtp.CreateContext(testKey(99)[:16], testKey(99)[16:], prof)
	wrongPkt, _ := wrong.EncryptRTP(nil, rtpgen.Packet(buf, 0xAAAA, 5001), nil)
	replay := append([]byte(nil), good...)
	for _, p := range [][]byte{good, tampered, replay, wrongPkt} {
		if _, err := cc.WriteToUDPAddrPort(p, toCaller); err != nil {
			t.Fatal(err)
		}
	}
	if good, b := atCallee.Drain(n+1, drainWait); good != n+1 || b != 0 {
		t.Errorf("after attacks the carrier has %d intact packets (want %d: only the genuine one), %d bad", good, n+1, b)
	}
	q := queryUntil(t, c, "srtp", func(q ng.Dict) bool { return statInt(streamStats(t, q, "cust"), "drops") >= 3 })
	st := streamStats(t, q, "cust")
	if d := statInt(st, "drops"); d != 3 {
		t.Errorf("customer stream drops %d, want 3 (tampered, replayed, wrong key)", d)
	}
	if f := statInt(st, "fast path"); f != 0 {
		t.Errorf("%d SRTP packets took the fast path; SRTP legs must go through userspace", f)
	}
	if f := statInt(streamStats(t, q, "carr"), "fast path"); f != 0 {
		t.Errorf("%d packets toward the SRTP customer skipped encryption in the fast path", f)
	}
}

// An attacker sending SRTP-shaped packets to an SRTP leg during the
// learning window, from the customer's own signalling address, cannot latch
// it: latching waits for a packet that authenticates.
func TestSRTPAttackerCannotLatch(t *testing.T) {
	tri := labtest.NewTriangle(t)
	lr := startLabRelay(t, tri, labConfig(t, tri, DataplaneUserspace))
	c := lr.ngClient(t)
	caller := netip.AddrPortFrom(tri.CallerIP, 20000)
	key := testKey(3)
	do(t, c, ng.Dict{"command": "offer", "call-id": "latch", "from-tag": "cust", "transport-protocol": "RTP/AVP",
		"sdp": savpSDP(caller, "1 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(key))})
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": "latch", "from-tag": "cust", "to-tag": "carr", "sdp": g711SDP(tri.CalleeIP, 40000)})
	toCaller := mediaOf(t, answer.Str("sdp"))

	// the attacker is on the customer's host, another port
	atk, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 20500).String())
	if err != nil {
		t.Fatal(err)
	}
	defer atk.Close()
	wrong, _ := srtp.CreateContext(testKey(50)[:16], testKey(50)[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	buf := make([]byte, 172)
	for i := 0; i < 20; i++ {
		p, _ := wrong.EncryptRTP(nil, rtpgen.Packet(buf, 0x5555, uint16(i)), nil)
		if _, err := atk.WriteToUDPAddrPort(p, toCaller); err != nil {
			t.Fatal(err)
		}
	}
	// The relay may not have read all 20 yet (a fixed 100 ms raced it
	// under load): query until it counts them, then look at the latch.
	q := queryUntil(t, c, "latch", func(q ng.Dict) bool {
		return statInt(q.Dict("tags").Dict("cust").List("medias")[0].(ng.Dict).List("streams")[0].(ng.Dict).Dict("stats"), "drops") >= 20
	})
	ep := q.Dict("tags").Dict("cust").List("medias")[0].(ng.Dict).List("streams")[0].(ng.Dict)
	for _, f := range ep.List("flags") {
		if f == "confirmed" {
			t.Fatalf("SRTP leg latched to an attacker: %v", ep)
		}
	}
	if d := statInt(ep.Dict("stats"), "drops"); d != 20 {
		t.Errorf("drops %d, want 20", d)
	}
}

func TestSRTPOfferErrors(t *testing.T) {
	r := loopbackRelay(t)
	a := netip.MustParseAddrPort("192.0.2.1:4000")
	key := base64.StdEncoding.EncodeToString(testKey(1))
	cases := []struct {
		name, sdp string
		extra     ng.Dict
		reason    string
	}{
		{"MKI only", savpSDP(a, "1 AES_CM_128_HMAC_SHA1_80 inline:"+key+"|2^20|1:4"), nil, "MKI"},
		{"unsupported suite", savpSDP(a, "1 AES_256_CM_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(make([]byte, 46))), nil, "crypto suite"},
		{"no crypto at all", savpSDP(a), nil, "crypto suite"},
		{"suite excluded by SDES", savpSDP(a, "1 AES_CM_128_HMAC_SHA1_32 inline:"+key), ng.Dict{"SDES": []any{"only-AES_CM_128_HMAC_SHA1_80"}}, "crypto suite"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := ng.Dict{"command": "offer", "call-id": fmt.Sprint("e", i), "from-tag": "a", "sdp": c.sdp, "transport-protocol": "RTP/AVP"}
			for k, v := range c.extra {
				req[k] = v
			}
			rep := serve(r, req)
			if rep.Str("result") != "error" || !strings.Contains(rep.Str("error-reason"), c.reason) {
				t.Errorf("reply %v, want an error naming %q", rep, c.reason)
			}
		})
	}
}

// Origination: plain carrier offer, SRTP toward the customer with only the
// suite the trunk allows; the customer's answer picks the relay's tag.
func TestSRTPOfferToCustomer(t *testing.T) {
	r := loopbackRelay(t)
	carrier := "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	rep := serve(r, ng.Dict{"command": "offer", "call-id": "orig", "from-tag": "carr", "sdp": carrier,
		"transport-protocol": "RTP/SAVP", "SDES": []any{"only-AES_CM_128_HMAC_SHA1_80"}})
	if rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	s, err := sdp.Parse([]byte(rep.Str("sdp")))
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := s.Media[0].Cryptos()
	if s.Media[0].Proto != "RTP/SAVP" || len(cs) != 1 || cs[0].Suite != "AES_CM_128_HMAC_SHA1_80" || len(cs[0].KeyParams[0].Key) != 30 {
		t.Fatalf("offer to the customer:\n%s", rep.Str("sdp"))
	}
	// a second offer for another call gets a different key
	rep2 := serve(r, ng.Dict{"command": "offer", "call-id": "orig2", "from-tag": "carr", "sdp": carrier, "transport-protocol": "RTP/SAVP"})
	if relayCrypto(t, rep2.Str("sdp")).KeyParams[0].Key == nil || string(relayCrypto(t, rep2.Str("sdp")).KeyParams[0].Key) == string(cs[0].KeyParams[0].Key) {
		t.Fatal("two calls got the same SRTP key")
	}
	cust := savpSDP(netip.MustParseAddrPort("198.51.100.4:6000"), "1 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(testKey(4)))
	ans := serve(r, ng.Dict{"command": "answer", "call-id": "orig", "from-tag": "carr", "to-tag": "cust", "sdp": cust})
	if ans.Str("result") != "ok" || strings.Contains(ans.Str("sdp"), "crypto") || !strings.Contains(ans.Str("sdp"), "RTP/AVP") {
		t.Fatalf("answer to the carrier must be plain RTP/AVP: %v", ans)
	}
}
