package signalling

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// redirectResponse is a 302 whose Contact header is contact (none when
// empty), parsed from the wire as a PBX would send it.
func redirectResponse(t *testing.T, contact string) *sip.Response {
	t.Helper()
	raw := "SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/UDP 198.18.1.1:5060;branch=z9hG4bK-1\r\n" +
		"From: <sip:+12125550100@198.18.1.1>;tag=a\r\nTo: <sip:+14155550100@198.18.1.2>;tag=b\r\n" +
		"Call-ID: r1\r\nCSeq: 1 INVITE\r\n"
	if contact != "" {
		raw += "Contact: " + contact + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Response)
}

// redirectServer is a Server with cfg's domain, advertised host,
// carriers and carrier sources in force, and no DNS.
func redirectServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	l, err := newSettings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: cfg, resolver: noDNS()}
	s.liveCfg.Store(l)
	return s
}

// TestRedirectDest: a 3xx Contact becomes the next target unless it is
// unusable, the edge itself (a loop) or a carrier gateway (the PSTN from
// the edge's trusted address, past termination's checks).
func TestRedirectDest(t *testing.T) {
	s := redirectServer(t, Config{Domain: "example.net", Advertise: "sbc.example.com",
		Carriers: []string{"sip:gw.carrier.test:5060", "sip:203.0.113.9"}, CarrierSources: []string{"198.18.2.0/24"}})
	from := dest{host: "198.18.1.2", port: 5100, transport: "UDP", headers: [][2]string{{"X-Customer", "1"}}}
	for _, tc := range []struct {
		contact string
		want    string // dest.String(), or "" for an error
		err     error
	}{
		{"<sip:+14155550199@198.18.1.3:5200>", "sip:+14155550199@198.18.1.3:5200;transport=udp", nil},
		{"<sip:198.18.1.3:5200;transport=tcp;edge=ashburn;tnx=abc>", "sip:198.18.1.3:5200;transport=tcp", nil},
		{"<sips:pbx-b.customer.test>", "sip:pbx-b.customer.test;transport=tls", nil},
		{"<sip:a@198.18.1.3>, <sip:b@198.18.1.4>", "sip:a@198.18.1.3;transport=udp", nil}, // first Contact only
		{"\"B\" <sip:[2001:db8::5]:5070>;q=0.5", "sip:[2001:db8::5]:5070;transport=udp", nil},
		{"", "", ErrRedirectRefused},
		{"<sip:+14155550100@acme.pstn.example.net>", "", ErrRedirectRefused},
		{"<sip:+14155550100@ACME.pstn.ashburn.Example.NET.>", "", ErrRedirectRefused},
		{"<sip:example.net:5060>", "", ErrRedirectRefused},
		{"<sip:sbc.example.com>", "", ErrRedirectRefused},
		{"<sip:127.0.0.1:5060>", "", ErrRedirectRefused},
		{"<sip:0.0.0.0>", "", ErrRedirectRefused},
		{"<tel:+14155550100>", "", ErrRedirectRefused},
		{"<sip:198.18.1.3;transport=sctp>", "", ErrRedirectRefused},
		{"<sip:198.18.1.2:5100>", "", ErrRedirectLoop},
		{"<sip:+19005550100@gw.carrier.test>", "", ErrRedirectRefused},
		{"<sip:+19005550100@GW.Carrier.Test:5070>", "", ErrRedirectRefused},
		{"<sip:+19005550100@203.0.113.9>", "", ErrRedirectRefused},
		{"<sip:+19005550100@198.18.2.7:5060>", "", ErrRedirectRefused},
		{"*", "", ErrRedirectRefused},
	} {
		d, err := s.redirectDest(context.Background(), redirectResponse(t, tc.contact), from)
		switch {
		case tc.err != nil:
			if !errors.Is(err, tc.err) {
				t.Errorf("Contact %q: %v (%v), want %v", tc.contact, d, err, tc.err)
			}
		case err != nil:
			t.Errorf("Contact %q: %v", tc.contact, err)
		case d.String() != tc.want:
			t.Errorf("Contact %q: %s, want %s", tc.contact, d, tc.want)
		case len(d.headers) != 1:
			t.Errorf("Contact %q: the origination URI's X- headers were not kept: %v", tc.contact, d.headers)
		}
	}
}

func FuzzRedirectContact(f *testing.F) {
	for _, s := range []string{"<sip:+14155550199@198.18.1.3:5200>", `"a,b" <sip:x@h;p=1>, <sip:y@h2>`, "*", "<sips:h>;q=1",
		"sip:h;transport=tcp", `"\"" <sip:h>`, "<tel:+1>", "<sip:@>", ","} {
		f.Add(s)
	}
	s := redirectServer(f, Config{Domain: "example.net"})
	from := dest{host: "198.18.1.2", transport: "UDP"}
	f.Fuzz(func(t *testing.T, contact string) {
		res := sip.NewResponse(302, "Moved Temporarily")
		res.AppendHeader(sip.NewHeader("Contact", contact))
		d, err := s.redirectDest(context.Background(), res, from)
		if err != nil {
			return
		}
		if d.host == "" || !validURIUser(d.user) && d.user != "" {
			t.Fatalf("Contact %q gave %+v", contact, d)
		}
		if d.transport != "UDP" && d.transport != "TCP" && d.transport != "TLS" {
			t.Fatalf("Contact %q: transport %q", contact, d.transport)
		}
	})
}

// noDNS is a resolver that fails every lookup at once, so that these
// tests send no DNS query anywhere.
func noDNS() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
}
