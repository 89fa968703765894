package signalling

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/relay"
)

// loopbackRelay runs an in-process userspace relay on 127.0.0.1 with NG
// on a free port, for admission tests that need a real offer/answer.
func loopbackRelay(t testing.TB) string {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	cfg := relay.DefaultConfig()
	cfg.Dataplane = relay.DataplaneUserspace
	cfg.Interfaces = []relay.Interface{
		{Name: "customer", Addr: lo, Advertised: lo},
		{Name: "carrier", Addr: lo, Advertised: lo},
	}
	r, err := relay.New(cfg, relay.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ng.NewServer(r).Serve(ctx, pc) }()
	t.Cleanup(func() { cancel(); <-done; pc.Close(); r.Close() })
	return pc.LocalAddr().String()
}

const goodSDP = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"

// silentGateway is a UDP socket that reads and never answers: a carrier
// gateway or origination URI that is down. heard gets a value for each
// datagram it reads (dropped when nobody takes it), so that a test can
// wait for the edge to have dialled it.
func silentGateway(t *testing.T) (addr string, heard <-chan struct{}) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String(), got
}

// TestAdmissionWithRelay checks the refusals that come after the relay is
// involved, or need a call in progress: malformed SDP → 488, concurrency
// → 503, trial accounts → 403, and origination's 404/420/483/480.
func TestAdmissionWithRelay(t *testing.T) {
	p := provision(t)
	ctx := context.Background()
	// A trial subaccount with an ACL trunk.
	trial, err := p.st.CreateSubaccount(ctx, p.account, "trial", store.TypeTrial)
	if err != nil {
		t.Fatal(err)
	}
	tt := store.NewTrunk(trial.Sid)
	tt.FriendlyName, tt.DomainName = "trial", "trial.pstn.example.net"
	if tt, err = p.st.CreateTrunk(ctx, tt); err != nil {
		t.Fatal(err)
	}
	l, err := p.st.CreateIPAccessControlList(ctx, trial.Sid, "lo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.CreateIPAddress(ctx, store.IPAddress{AccountSid: trial.Sid, ListSid: l.Sid, FriendlyName: "lo", IPAddress: "127.0.0.0", CIDRPrefixLength: 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.AttachIPAccessControlList(ctx, trial.Sid, tt.Sid, l.Sid); err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.RequestCallerID(ctx, trial.Sid, "+14155550177", "me", true); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.RelayNG = loopbackRelay(t)
	cfg.DefaultConcurrency = 1
	gateway, gatewayHeard := silentGateway(t)
	cfg.Carriers = []string{"sip:" + gateway}
	cfg.CarrierSources = []string{"127.0.0.2/32"}
	cfg.ListenUDP = serve(t, cfg, p.st).Addr("UDP").String()

	term := func(user string) string { return "sip:" + user + "@" + aclHost }
	orig := func(user string) string { return "sip:" + user + "@" + strings.Split(cfg.ListenUDP, ":")[0] }
	cases := []struct {
		name, from string // from: local address to send from
		req        rawRequest
		want       string
	}{
		{"malformed SDP", "127.0.0.1:0", rawRequest{ruri: term("+14155550123"), body: "v=0\r\nm=audio banana\r\n"}, "SIP/2.0 488"},
		{"trial to unverified number", "127.0.0.1:0", rawRequest{ruri: "sip:+14155550123@trial.pstn.example.net", from: "+14155550177", body: goodSDP}, "SIP/2.0 403 Trial"},
		{"origination unknown DID", "127.0.0.2:0", rawRequest{ruri: orig("+14155550142"), from: "+12125550100", body: goodSDP}, "SIP/2.0 404"},
		{"origination non-E.164", "127.0.0.2:0", rawRequest{ruri: orig("bob"), from: "+12125550100", body: goodSDP}, "SIP/2.0 404"},
		{"origination Require", "127.0.0.2:0", rawRequest{ruri: orig(testDID), from: "+12125550100", body: goodSDP, extra: "Require: 100rel, timer\r\n"}, "SIP/2.0 420"},
		{"origination Max-Forwards", "127.0.0.2:0", rawRequest{ruri: orig(testDID), from: "+12125550100", body: goodSDP, maxForwards: 3}, "SIP/2.0 483"},
		{"origination trunk without URIs", "127.0.0.2:0", rawRequest{ruri: orig(testDID), from: "+12125550100", body: goodSDP}, "SIP/2.0 480"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, tc.from, cfg.ListenUDP, tc.req, 3*time.Second)
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("want %q, got %q", tc.want, statusLine(got))
			}
		})
	}

	// Concurrency 1: a call waiting on the silent gateway holds the slot,
	// so the next gets 503; after the first fails over (4 s, no other
	// gateway: 408) the slot is free again.
	first := make(chan string, 1)
	go func() {
		got, err := tryExchange("127.0.0.1:0", cfg.ListenUDP, rawRequest{ruri: term("+14155550123"), body: goodSDP}, 10*time.Second)
		if err != nil {
			got = err.Error()
		}
		first <- got
	}()
	// The first call holds the slot once the edge dials the gateway (the
	// slot is taken at admission, before the B-leg): a fixed sleep would
	// race the edge under load and let the second call in first.
	select {
	case <-gatewayHeard:
	case got := <-first:
		t.Fatalf("first call: answered %q before the edge dialled the gateway", statusLine(got))
	case <-time.After(10 * time.Second):
		t.Fatal("the edge never dialled the silent gateway for the first call")
	}
	got := exchange(t, "127.0.0.1:0", cfg.ListenUDP, rawRequest{ruri: term("+14155550123"), body: goodSDP}, 3*time.Second)
	if want := "SIP/2.0 503 Trunk concurrency limit exceeded"; statusLine(got) != want {
		t.Fatalf("second call: want %q, got %q", want, statusLine(got))
	}
	if got := statusLine(<-first); got != "SIP/2.0 408 Request Timeout" {
		t.Fatalf("first call, gateway silent: want 408, got %q", got)
	}
}
