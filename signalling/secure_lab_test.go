package signalling

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/srtp/v2"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

const secureHost = "secure.pstn.example.net"

// selfSigned writes a certificate for the given IP and names, and returns
// the cert and key files and a pool trusting it.
func selfSigned(t *testing.T, ip netip.Addr, names ...string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certFile, keyFile, pool, err := testbed.SelfSigned(t.TempDir(), ip, names...)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

// secureTrunkOf adds a Secure trunk with an ACL for the lab's addresses.
func secureTrunkOf(t *testing.T, p provisioned) store.Trunk {
	t.Helper()
	ctx := context.Background()
	tr := store.NewTrunk(p.account)
	tr.FriendlyName, tr.DomainName, tr.Secure = "secure", secureHost, true
	tr, err := p.st.CreateTrunk(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.st.CreateIPAccessControlList(ctx, p.account, "secure")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.CreateIPAddress(ctx, store.IPAddress{AccountSid: p.account, ListSid: l.Sid, FriendlyName: "lab", IPAddress: "198.18.0.0", CIDRPrefixLength: 15}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.AttachIPAccessControlList(ctx, p.account, tr.Sid, l.Sid); err != nil {
		t.Fatal(err)
	}
	return tr
}

// labUAS is a peer on sipgo that answers every INVITE with the SDP
// answer(offer) returns and remembers each offer and its transport: a
// carrier gateway on UDP or a customer's PBX on TLS.
type labUAS struct {
	mu         sync.Mutex
	offers     []string
	transports []string
	byes       chan string // Call-IDs of the BYEs it answered
}

// waitBye waits for the BYE the edge sends this UA as a call ends: the UA
// must outlive it, or the edge's BYE goes unanswered.
func (u *labUAS) waitBye(t *testing.T) {
	t.Helper()
	select {
	case <-u.byes:
	case <-time.After(byeTimeout + 10*time.Second): // the edge's BYE is sent at once; the margin is for a loaded machine
		t.Fatal("the edge sent this UA no BYE")
	}
}

func (u *labUAS) lastOffer() (string, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.offers) == 0 {
		return "", ""
	}
	return u.offers[len(u.offers)-1], u.transports[len(u.transports)-1]
}

// startLabUAS serves on conn (a UDP socket) or l (a TLS listener), made
// in the peer's namespace; contact is its Contact.
func startLabUAS(t testing.TB, contact sip.Uri, answer func(offer string) string, serve func(*sipgo.Server) error) *labUAS {
	t.Helper()
	u := &labUAS{byes: make(chan string, 16)}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("lab-peer"), sipgo.WithUserAgentHostname(contact.Host))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(contact.Host))
	if err != nil {
		t.Fatal(err)
	}
	dua := &sipgo.DialogUA{Client: cli, ContactHDR: sip.ContactHeader{Address: contact}}
	var dmu sync.Mutex
	dialogs := map[string]*sipgo.DialogServerSession{}
	dialog := func(req *sip.Request) *sipgo.DialogServerSession {
		dmu.Lock()
		defer dmu.Unlock()
		return dialogs[req.CallID().Value()]
	}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		u.mu.Lock()
		u.offers = append(u.offers, string(req.Body()))
		u.transports = append(u.transports, req.Transport())
		u.mu.Unlock()
		ds, err := dua.ReadInvite(req, tx)
		if err != nil {
			return
		}
		dmu.Lock()
		dialogs[req.CallID().Value()] = ds
		dmu.Unlock()
		_ = ds.Respond(180, "Ringing", nil)
		_ = ds.RespondSDP([]byte(answer(string(req.Body()))))
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		if ds := dialog(req); ds != nil {
			_ = ds.ReadAck(req, tx)
		}
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if ds := dialog(req); ds != nil && ds.ReadBye(req, tx) == nil {
			select {
			case u.byes <- req.CallID().Value():
			default:
			}
		}
	})
	go func() { _ = serve(srv) }()
	t.Cleanup(func() { srv.Close(); cli.Close(); ua.Close() })
	return u
}

// startLabCarrier is a carrier gateway on UDP in the callee namespace
// answering with plain RTP at media.
func startLabCarrier(t *testing.T, tri *testbed.Triangle, addr netip.AddrPort, media netip.AddrPort) *labUAS {
	t.Helper()
	conn, err := tri.Callee.ListenUDP(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	answer := func(string) string {
		return fmt.Sprintf("v=0\r\no=carrier 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
			media.Addr(), media.Port())
	}
	contact := sip.Uri{Scheme: "sip", User: "carrier", Host: addr.Addr().String(), Port: int(addr.Port())}
	return startLabUAS(t, contact, answer, func(srv *sipgo.Server) error { return srv.ServeUDP(conn) })
}

// startLabCustomerTLS is a customer's PBX on TLS in the caller namespace
// answering with SRTP (key) at media.
func startLabCustomerTLS(t *testing.T, tri *testbed.Triangle, addr netip.AddrPort, certFile, keyFile string, media netip.AddrPort, key []byte) *labUAS {
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
	t.Cleanup(func() { l.Close() })
	tp := sip.NewParams()
	tp.Add("transport", "tls")
	contact := sip.Uri{Scheme: "sip", User: "pbx", Host: addr.Addr().String(), Port: int(addr.Port()), UriParams: tp}
	answer := func(string) string { return savpOffer(media, "AES_CM_128_HMAC_SHA1_80", key) }
	return startLabUAS(t, contact, answer, func(srv *sipgo.Server) error { return srv.ServeTLS(l) })
}

// TestSecureTrunkLab: a Secure trunk over TLS with SRTP toward the
// customer and plain RTP toward the carrier, audio intact both ways, for
// both suites and for origination; an unencrypted offer over TLS gets 488
// and the same call over UDP 403 (Done-when 4 of issue 6) — with
// xtrunk's relay and with Debian's rtpengine.
func TestSecureTrunkLab(t *testing.T) {
	for _, kind := range []string{"xtrunk", "rtpengine"} {
		t.Run(kind, func(t *testing.T) { testSecureTrunk(t, kind) })
	}
}

func testSecureTrunk(t *testing.T, kind string) {
	tri := labtest.NewTriangle(t, testbed.WithoutIPv6())
	p := provision(t)
	var ngAddr string
	if kind == "rtpengine" {
		ngAddr = labtest.StartRtpengine(t, tri)
	} else {
		ngAddr = startLabRelay(t, tri)
	}
	bin := buildXtrunk(t)
	certFile, keyFile, pool := selfSigned(t, tri.RelayCallerIP, secureHost, "lab.example.net")
	custCert, custKey, _ := selfSigned(t, tri.CallerIP, "pbx.acme.example")
	custCA := custCert // self-signed: the customer's certificate is its own CA
	tr := secureTrunkOf(t, p)
	const secureDID = "+14155550142"
	// The origination URI names UDP: a Secure trunk must use TLS anyway.
	secureOrigination(t, p, tr, secureDID, "sip:"+netip.AddrPortFrom(tri.CallerIP, 5061).String()+";transport=udp")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	carrierAddr := netip.AddrPortFrom(tri.CalleeIP, 5060)
	carrierMedia := netip.AddrPortFrom(tri.CalleeIP, 40000)
	lc := startLabCarrier(t, tri, carrierAddr, carrierMedia)

	cfgFile := filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(cfgFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sipUDP := netip.AddrPortFrom(tri.RelayCallerIP, 5060)
	sipTLS := netip.AddrPortFrom(tri.RelayCallerIP, 5061)
	startB2BUAWith(t, ctx, tri, bin, cfgFile, p.dsn, ngAddr, sipUDP.String(), []string{"sip:" + carrierAddr.String()},
		"--listen-tcp", "", "--listen-tls", sipTLS.String(), "--tls-cert", certFile, "--tls-key", keyFile,
		"--tls-ca", custCA, "--carrier-source", tri.CalleeIP.String()+"/32")

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("lab-pbx"), sipgo.WithUserAgentHostname(tri.CallerIP.String()),
		sipgo.WithUserAgenTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(tri.CallerIP.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	tlsParam := sip.NewParams()
	tlsParam.Add("transport", "tls")
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "pbx", Host: tri.CallerIP.String(), Port: 5071, UriParams: tlsParam}}
	pbx := &sipgo.DialogUA{Client: cli, ContactHDR: contact}

	invite := func(transport string, dst netip.AddrPort, body string) (*sipgo.DialogClientSession, error) {
		ruri := sip.Uri{Scheme: "sip", User: labCalled, Host: secureHost, UriParams: sip.NewParams()}
		if transport == "TLS" {
			ruri.UriParams.Add("transport", "tls")
		}
		req := sip.NewRequest(sip.INVITE, ruri)
		req.SetTransport(transport)
		req.SetDestination(dst.String())
		from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: testVerified, Host: tri.CallerIP.String()}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(12))
		req.AppendHeader(&from)
		req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: labCalled, Host: secureHost}})
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody([]byte(body))
		var ds *sipgo.DialogClientSession
		// The TLS connection is dialled here, inside the caller namespace.
		err := tri.Caller.Do(func() error {
			var err error
			ds, err = pbx.WriteInvite(ctx, req)
			return err
		})
		if err != nil {
			return nil, err
		}
		return ds, ds.WaitAnswer(ctx, sipgo.AnswerOptions{})
	}
	status := func(err error) int {
		var de *sipgo.ErrDialogResponse
		if err != nil && asDialogResponse(err, &de) {
			return de.Res.StatusCode
		}
		return 0
	}

	custMedia := netip.AddrPortFrom(tri.CallerIP, 20000)
	plain := fmt.Sprintf("v=0\r\no=pbx 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
		custMedia.Addr(), custMedia.Port())
	t.Run("unencrypted offer over TLS: 488", func(t *testing.T) {
		_, err := invite("TLS", sipTLS, plain)
		if got := status(err); got != 488 {
			t.Fatalf("want 488, got %d (%v)", got, err)
		}
	})
	t.Run("over UDP: 403", func(t *testing.T) {
		_, err := invite("UDP", sipUDP, savpOffer(custMedia, "AES_CM_128_HMAC_SHA1_80", srtpKey(3)))
		if got := status(err); got != 403 {
			t.Fatalf("want 403, got %d (%v)", got, err)
		}
	})
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"} {
		t.Run(suite, func(t *testing.T) {
			key := srtpKey(7)
			ds, err := invite("TLS", sipTLS, savpOffer(custMedia, suite, key))
			if err != nil {
				t.Fatalf("INVITE over TLS: %v", err)
			}
			answer := string(ds.InviteResponse.Body())
			if err := tri.Caller.Do(func() error { return ds.Ack(ctx) }); err != nil {
				t.Fatalf("ACK: %v (200 was:\n%s)", err, ds.InviteResponse)
			}
			offer, _ := lc.lastOffer()
			if strings.Contains(offer, "a=crypto") || !strings.Contains(offer, " RTP/AVP ") {
				t.Fatalf("the carrier must get plain RTP/AVP:\n%s", offer)
			}
			if !strings.Contains(answer, " RTP/SAVP ") {
				t.Fatalf("the customer must get RTP/SAVP:\n%s", answer)
			}
			rc := firstCrypto(t, answer)
			if rc.Suite != suite {
				t.Fatalf("relay answered suite %s, want %s", rc.Suite, suite)
			}
			toRelayCust, toRelayCarr := sdpMedia(t, answer), sdpMedia(t, offer)
			sent, got := srtpExchange(t, tri, suite, key, rc.KeyParams[0].Key, custMedia, toRelayCust, carrierMedia, toRelayCarr)
			for dir, n := range got {
				if n != sent {
					t.Errorf("%s: %d of %d packets intact", dir, n, sent)
				}
			}
			if err := ds.Bye(ctx); err != nil {
				t.Fatal(err)
			}
			lc.waitBye(t)
		})
	}
	t.Run("origination", func(t *testing.T) {
		key := srtpKey(9)
		cust := startLabCustomerTLS(t, tri, netip.AddrPortFrom(tri.CallerIP, 5061), custCert, custKey, custMedia, key)
		carrierUA, err := sipgo.NewUA(sipgo.WithUserAgent("lab-carrier-uac"), sipgo.WithUserAgentHostname(tri.CalleeIP.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer carrierUA.Close()
		ccli, err := sipgo.NewClient(carrierUA, sipgo.WithClientHostname(tri.CalleeIP.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer ccli.Close()
		carrier := &sipgo.DialogUA{Client: ccli, ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "gw", Host: tri.CalleeIP.String(), Port: 5090}}}
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: secureDID, Host: sipUDP.Addr().String(), Port: int(sipUDP.Port())})
		from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "+12125550100", Host: tri.CalleeIP.String()}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(12))
		req.AppendHeader(&from)
		req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: secureDID, Host: sipUDP.Addr().String()}})
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
		offer, transport := cust.lastOffer()
		if transport != "TLS" {
			t.Fatalf("the customer got the INVITE over %s, want TLS", transport)
		}
		if !strings.Contains(offer, " RTP/SAVP ") || strings.Count(offer, "a=crypto:") != 1 || !strings.Contains(offer, "AES_CM_128_HMAC_SHA1_80") {
			t.Fatalf("origination must offer SRTP with AES_CM_128_HMAC_SHA1_80 only:\n%s", offer)
		}
		answer := string(ds.InviteResponse.Body())
		if strings.Contains(answer, "a=crypto") || !strings.Contains(answer, " RTP/AVP ") {
			t.Fatalf("the carrier must get plain RTP/AVP:\n%s", answer)
		}
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
		cust.waitBye(t)
	})

	// CDRs: the answered calls are completed, with both legs' quality.
	deadline := time.Now().Add(cdrWait)
	for {
		calls, _, err := p.st.ListCalls(ctx, p.account, store.CallFilter{}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		completed := map[string]int{}
		for _, c := range calls {
			if c.Status == "completed" && c.SIPResponseCode == 200 && len(c.Quality) == 2 {
				completed[c.Direction]++
			}
		}
		if completed[store.DirectionTerminating] == 2 && completed[store.DirectionOriginating] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want 2 completed CDRs with quality, have %+v", calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func asDialogResponse(err error, de **sipgo.ErrDialogResponse) bool { return errors.As(err, de) }

func srtpKey(seed byte) []byte {
	k := make([]byte, 30)
	for i := range k {
		k[i] = seed + byte(i)*11
	}
	return k
}

func savpOffer(media netip.AddrPort, suite string, key []byte) string {
	return fmt.Sprintf("v=0\r\no=pbx 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 %[3]s inline:%[4]s\r\n",
		media.Addr(), media.Port(), suite, base64.StdEncoding.EncodeToString(key))
}

func firstCrypto(t *testing.T, body string) sdp.Crypto {
	t.Helper()
	s, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.Media[0].Cryptos()
	if err != nil || len(cs) == 0 {
		t.Fatalf("no a=crypto (%v) in:\n%s", err, body)
	}
	return cs[0]
}

// sdpMedia is the first audio stream's address in an SDP body.
func sdpMedia(t *testing.T, body string) netip.AddrPort {
	t.Helper()
	var addr netip.Addr
	port := 0
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "c=IN IP4 ") && !addr.IsValid():
			addr, _ = netip.ParseAddr(line[9:])
		case strings.HasPrefix(line, "m=audio ") && port == 0:
			fmt.Sscanf(line[8:], "%d", &port)
		}
	}
	if !addr.IsValid() || port == 0 {
		t.Fatalf("no media address in:\n%s", body)
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// srtpExchange sends n packets each way at 50 pps: the customer SRTP with
// its key to the relay, the carrier plain RTP; it returns how many arrived
// intact at each end (decrypted with the relay's key at the customer).
func srtpExchange(t *testing.T, tri *testbed.Triangle, suite string, custKey, relayKey []byte,
	cust, toRelayCust, carr, toRelayCarr netip.AddrPort) (int, map[string]int) {
	t.Helper()
	prof := srtp.ProtectionProfileAes128CmHmacSha1_80
	if suite == "AES_CM_128_HMAC_SHA1_32" {
		prof = srtp.ProtectionProfileAes128CmHmacSha1_32
	}
	enc, err := srtp.CreateContext(custKey[:16], custKey[16:], prof)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(relayKey[:16], relayKey[16:], prof, srtp.SRTPReplayProtection(64))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := tri.Caller.ListenUDP(cust.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ce, err := tri.Callee.ListenUDP(carr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()
	const n, pps = 250, 50
	atCarrier := rtpgen.NewSink(ce, 0xAAAA)
	atCustomer := rtpgen.NewSinkWith(cc, 0xBBBB, func(dst, pkt []byte) ([]byte, error) { return dec.DecryptRTP(dst, pkt, nil) })
	var wg sync.WaitGroup
	send := func(conn *net.UDPConn, dst netip.AddrPort, ssrc uint32, seal rtpgen.Transform) {
		defer wg.Done()
		if _, err := rtpgen.SendWith(context.Background(), conn, dst, ssrc, n, pps, seal); err != nil {
			t.Error(err)
		}
	}
	wg.Add(2)
	go send(cc, toRelayCust, 0xAAAA, func(dst, pkt []byte) ([]byte, error) { return enc.EncryptRTP(dst, pkt, nil) })
	go send(ce, toRelayCarr, 0xBBBB, nil)
	wg.Wait()
	// The last packets may still be in the relay (userspace under load):
	// wait for all of them, not a fixed 300 ms; a loss shows as a count
	// short of n once the wait is over.
	var toCarrier, toCustomer int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		toCarrier, _ = atCarrier.Counts()
		toCustomer, _ = atCustomer.Counts()
		if (toCarrier >= n && toCustomer >= n) || time.Now().After(deadline) {
			break
		}
	}
	return n, map[string]int{"customer→carrier": toCarrier, "carrier→customer": toCustomer}
}

// startB2BUAWith is startB2BUA with extra flags.
func startB2BUAWith(t *testing.T, ctx context.Context, tri *testbed.Triangle, bin, config, dsn, ngAddr, listen string, carriers []string, extra ...string) {
	t.Helper()
	args := []string{"sip", "--config", config, // an empty file: flags only
		"--listen-udp", listen, "--domain", testDomain, "--edge", "lab",
		"--relay-ng", ngAddr, "--relay-customer-iface", "customer", "--relay-carrier-iface", "carrier",
		"--db", dsn, "--default-cps", "0", "--log-level", "debug"}
	for _, c := range carriers {
		args = append(args, "--carrier", c, "--carrier-probe-interval", "0")
	}
	args = append(args, extra...)
	proc, err := tri.Relay.Start(ctx, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = proc.Stop()
		if t.Failed() {
			t.Logf("xtrunk sip on %s:\n%s", listen, proc.Output())
		}
	})
	if ap, err := netip.ParseAddrPort(listen); err == nil && ap.Addr().IsUnspecified() {
		listen = netip.AddrPortFrom(tri.RelayCallerIP, ap.Port()).String() // a wildcard: reach it on the PBX side
	}
	waitUDP(t, tri.Caller, listen)
}

// secureOrigination puts did on trunk tr with one origination URI.
func secureOrigination(t *testing.T, p provisioned, tr store.Trunk, did, uri string) {
	t.Helper()
	ctx := context.Background()
	n, err := p.st.CreatePhoneNumber(ctx, store.NewPhoneNumber(p.account, did))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.AssociatePhoneNumber(ctx, p.account, tr.Sid, n.Sid); err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.CreateOriginationURL(ctx, store.OriginationURL{AccountSid: p.account, TrunkSid: tr.Sid,
		FriendlyName: "pbx", SipURL: uri, Priority: 10, Weight: 10, Enabled: true}); err != nil {
		t.Fatal(err)
	}
}
