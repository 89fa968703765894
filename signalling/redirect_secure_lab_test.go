package signalling

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/store"
)

// startLab302TLS is a customer's PBX on TLS in the caller namespace that
// answers every INVITE with 302 toward contact; it counts the INVITEs.
func startLab302TLS(t *testing.T, tri *testbed.Triangle, addr netip.AddrPort, certFile, keyFile, contact string) *atomic.Int32 {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var raw net.Listener
	if err := tri.Caller.Do(func() error {
		var err error
		raw, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	l := tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("lab-pbx-302"), sipgo.WithUserAgentHostname(addr.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		n.Add(1)
		res := sip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil)
		res.AppendHeader(sip.NewHeader("Contact", contact))
		_ = tx.Respond(res)
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	go func() { _ = srv.ServeTLS(l) }()
	t.Cleanup(func() { l.Close(); srv.Close(); ua.Close() })
	return &n
}

// TestSecureRedirectLab: on a Secure trunk, PBX A (TLS) redirects to PBX
// B with a Contact that names UDP; the redirected INVITE still goes over
// TLS with an SRTP offer, and SRTP audio flows between B and the carrier
// through the relay (REQUIREMENTS §3.7: TLS/SRTP carry over).
func TestSecureRedirectLab(t *testing.T) {
	tri := labtest.NewTriangle(t, testbed.WithoutIPv6())
	p := provision(t)
	ngAddr := startLabRelay(t, tri)
	bin := buildXtrunk(t)
	certFile, keyFile, _ := selfSigned(t, tri.RelayCallerIP, secureHost, "lab.example.net")
	custCert, custKey, _ := selfSigned(t, tri.CallerIP, "pbx.acme.example")
	tr := secureTrunkOf(t, p)
	const did = "+14155550143"
	secureOrigination(t, p, tr, did, "sip:"+netip.AddrPortFrom(tri.CallerIP, 5061).String())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	bAddr := netip.AddrPortFrom(tri.CallerIP, 5062)
	aInvites := startLab302TLS(t, tri, netip.AddrPortFrom(tri.CallerIP, 5061), custCert, custKey,
		"<sip:"+redirectedUser+"@"+bAddr.String()+";transport=udp;edge=ie1;tnx=RT1>")
	custMedia := netip.AddrPortFrom(tri.CallerIP, 40010)
	key := srtpKey(7)
	b := startLabCustomerTLS(t, tri, bAddr, custCert, custKey, custMedia, key)

	cfgFile := filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(cfgFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sipUDP := netip.AddrPortFrom(tri.RelayCallerIP, 5060)
	startB2BUAWith(t, ctx, tri, bin, cfgFile, p.dsn, ngAddr, sipUDP.String(), nil,
		"--listen-tcp", "", "--listen-tls", netip.AddrPortFrom(tri.RelayCallerIP, 5061).String(), "--tls-cert", certFile, "--tls-key", keyFile,
		"--tls-ca", custCert, "--carrier-source", tri.CalleeIP.String()+"/32")

	carrierMedia := netip.AddrPortFrom(tri.CalleeIP, 40020)
	ds := carrierCall(t, ctx, tri, sipUDP, did, carrierMedia)
	if n := aInvites.Load(); n != 1 {
		t.Errorf("PBX A got %d INVITEs, want 1", n)
	}
	offer, transport := b.lastOffer()
	if transport != "TLS" {
		t.Fatalf("the redirected PBX got the INVITE over %q, want TLS (Secure trunk, whatever the Contact says)", transport)
	}
	if !strings.Contains(offer, " RTP/SAVP ") || strings.Count(offer, "a=crypto:") != 1 {
		t.Fatalf("the redirected PBX must get an SRTP offer:\n%s", offer)
	}
	answer := string(ds.InviteResponse.Body())
	rc := firstCrypto(t, offer)
	sent, got := srtpExchange(t, tri, "AES_CM_128_HMAC_SHA1_80", key, rc.KeyParams[0].Key, custMedia, sdpMedia(t, offer), carrierMedia, sdpMedia(t, answer))
	for dir, n := range got {
		if n != sent {
			t.Errorf("%s: %d of %d packets intact", dir, n, sent)
		}
	}
	if err := tri.Callee.Do(func() error { return ds.Bye(ctx) }); err != nil {
		t.Fatal(err)
	}
	b.waitBye(t)
	want := "sip:" + redirectedUser + "@" + bAddr.String() + ";transport=tls"
	deadline := time.Now().Add(cdrWait)
	for {
		calls, _, err := p.st.ListCalls(ctx, p.account, store.CallFilter{To: did}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) == 1 && calls[0].Status == "completed" && calls[0].RedirectedTo == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one completed CDR redirected to %s, have %+v", want, calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// carrierCall places an origination call to did at sipAddr from a sipgo
// carrier UAC in the callee namespace offering plain RTP at media, and
// returns it answered and ACKed.
func carrierCall(t *testing.T, ctx context.Context, tri *testbed.Triangle, sipUDP netip.AddrPort, did string, carrierMedia netip.AddrPort) *sipgo.DialogClientSession {
	t.Helper()
	carrierUA, err := sipgo.NewUA(sipgo.WithUserAgent("lab-carrier-uac"), sipgo.WithUserAgentHostname(tri.CalleeIP.String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { carrierUA.Close() })
	ccli, err := sipgo.NewClient(carrierUA, sipgo.WithClientHostname(tri.CalleeIP.String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ccli.Close() })
	carrier := &sipgo.DialogUA{Client: ccli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "gw", Host: tri.CalleeIP.String(), Port: 5090}}}
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: did, Host: sipUDP.Addr().String(), Port: int(sipUDP.Port())})
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: labCarrierFrom, Host: tri.CalleeIP.String()}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(12))
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: did, Host: sipUDP.Addr().String()}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte(fmt.Sprintf("v=0\r\no=gw 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
		carrierMedia.Addr(), carrierMedia.Port())))
	var ds *sipgo.DialogClientSession
	if err := tri.Callee.Do(func() error {
		var err error
		ds, err = carrier.WriteInvite(ctx, req)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := ds.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("origination INVITE: %v", err)
	}
	if err := tri.Callee.Do(func() error { return ds.Ack(ctx) }); err != nil {
		t.Fatal(err)
	}
	return ds
}
