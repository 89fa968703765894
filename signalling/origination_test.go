package signalling

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/control/domain"
	"github.com/xtrunk/xtrunk/control/store"
)

// TestOutboundInvite checks the B-leg INVITE's shape for origination URIs
// (REQUIREMENTS §3.4–3.5): Request-URI user rule, Diversion, X- headers,
// transport, sips:, a Secure trunk forcing TLS.
func TestOutboundInvite(t *testing.T) {
	s := &Server{cfg: Config{Domain: "example.net", Advertise: "198.18.1.1"}, lis: &listeners{}, addresses: newLegAddrs()}
	cases := []struct {
		url       string
		secure    bool
		ruri      string // want Request-URI
		transport string
		headers   map[string]string
	}{
		{url: "sip:pbx.acme.com", ruri: "sip:+14158675309@pbx.acme.com", transport: "UDP"},
		{url: "sip:alice@pbx.acme.com:5080", ruri: "sip:alice@pbx.acme.com:5080", transport: "UDP"},
		{url: "sip:pbx.acme.com;transport=tcp", ruri: "sip:+14158675309@pbx.acme.com;transport=tcp", transport: "TCP"},
		{url: "sip:pbx.acme.com;transport=tls", ruri: "sip:+14158675309@pbx.acme.com:5061;transport=tls", transport: "TLS"},
		{url: "sips:pbx.acme.com", ruri: "sip:+14158675309@pbx.acme.com:5061;transport=tls", transport: "TLS"},
		{url: "sip:pbx.acme.com;transport=udp", secure: true, ruri: "sip:+14158675309@pbx.acme.com:5061;transport=tls", transport: "TLS"},
		{url: "sip:198.51.100.7;edge=ashburn?X-Customer=acme&X-Route=a%20b", ruri: "sip:+14158675309@198.51.100.7", transport: "UDP",
			headers: map[string]string{"X-Customer": "acme", "X-Route": "a b"}},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			u, err := domain.ParseSipURL(tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr := store.NewTrunk("AC1")
			tr.Secure = tc.secure
			c := &call{p: &plan{dir: store.DirectionOriginating, trunk: tr, from: "+12125550100", to: "+14158675309",
				diversion: "+14158675309", maxFwd: 69}}
			req, _ := s.outboundInvite(c, destOfSipURL(u), netip.Addr{})
			if got := req.Recipient.String(); got != tc.ruri {
				t.Errorf("Request-URI %q, want %q", got, tc.ruri)
			}
			if got := req.Transport(); got != tc.transport {
				t.Errorf("transport %q, want %q", got, tc.transport)
			}
			div := req.GetHeader("Diversion")
			if div == nil || !strings.HasPrefix(div.Value(), "<sip:+14158675309@example.net>") {
				t.Errorf("Diversion %v", div)
			}
			for k, v := range tc.headers {
				h := req.GetHeader(k)
				if h == nil || h.Value() != v {
					t.Errorf("%s: %v, want %q", k, h, v)
				}
			}
			if strings.Contains(req.Recipient.String(), "edge") {
				t.Errorf("edge param sent: %s", req.Recipient.String())
			}
			if mf := req.MaxForwards(); mf == nil || uint32(*mf) != 69 {
				t.Errorf("Max-Forwards %v", mf)
			}
			if f := req.From(); f == nil || f.Address.User != "+12125550100" {
				t.Errorf("From %v", f)
			}
		})
	}
}

// TestSDPEncrypted: a Secure trunk's offers must be SRTP on every audio
// stream with a crypto line.
func TestSDPEncrypted(t *testing.T) {
	cases := map[string]bool{
		"v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n": true,
		"v=0\r\nm=audio 4000 RTP/AVP 0\r\n":                                                 false,
		"v=0\r\nm=audio 4000 RTP/SAVP 0\r\n":                                                false,
		"v=0\r\nm=audio 4000 RTP/SAVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=crypto:1 x\r\n":      false,
		"v=0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 4002 RTP/SAVP 0\r\na=crypto:1 x\r\n":         true,
		"": false,
	}
	for sdp, want := range cases {
		if got := sdpEncrypted([]byte(sdp)); got != want {
			t.Errorf("sdpEncrypted(%q) = %v, want %v", sdp, got, want)
		}
	}
}
