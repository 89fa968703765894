package domain

import (
	"errors"
	"net/netip"
	"testing"
)

func TestValidE164(t *testing.T) {
	for _, n := range []string{"+14158675309", "+442071838750", "+81312345678", "+123"} {
		if !ValidE164(n) {
			t.Errorf("%q should be E.164", n)
		}
	}
	for _, n := range []string{"14158675309", "+04158675309", "+1415867530912345", "+1 415 867 5309", "+", "+1", "+1415x"} {
		if ValidE164(n) {
			t.Errorf("%q should not be E.164", n)
		}
	}
}

func TestParseSipURL(t *testing.T) {
	edges := []string{"ashburn", "dublin"}
	good := []struct {
		in   string
		host string
		user string
		port int
	}{
		{"sip:mysbc.example.com", "mysbc.example.com", "", 0},
		{"sip:203.0.113.7:5080", "203.0.113.7", "", 5080},
		{"sip:+14158675309@pbx.example.com", "pbx.example.com", "+14158675309", 0},
		{"sip:pbx.example.com;transport=tls", "pbx.example.com", "", 0},
		{"SIP:pbx.example.com;transport=TCP;edge=dublin", "pbx.example.com", "", 0},
		{"sip:pbx.example.com;region=ashburn", "pbx.example.com", "", 0},
		{"sip:pbx.example.com?X-Customer=acme&X-Tier=gold", "pbx.example.com", "", 0},
		{"sip:[2001:db8::1]:5061;transport=tls", "2001:db8::1", "", 5061},
		{"sips:pbx.example.com", "pbx.example.com", "", 0},
		{"sip:alice@pbx-1.example.com:5060;transport=udp?X-Id=7", "pbx-1.example.com", "alice", 5060},
	}
	for _, c := range good {
		u, err := ParseSipURL(c.in, edges)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if u.Host != c.host || u.User != c.user || u.Port != c.port {
			t.Errorf("%q: got host %q user %q port %d", c.in, u.Host, u.User, u.Port)
		}
	}
	u, _ := ParseSipURL("sip:pbx.example.com?X-Customer=a%20b", edges)
	if len(u.Headers) != 1 || u.Headers[0] != [2]string{"X-Customer", "a b"} {
		t.Errorf("headers: %v", u.Headers)
	}
	bad := []string{
		"", "http://pbx.example.com", "tel:+14158675309", "mysbc.example.com", "sip:", "sip:@host",
		"sip:host:0", "sip:host:65536", "sip:host:", "sip:host:abc", "sip:[2001:db8::1", "sip:[::1]x",
		"sip:host;transport=sctp", "sip:host;edge=tokyo", "sip:host;edge=", "sip:host?Via=evil",
		"sip:host?X-A=b%0d%0aVia:x", "sip:-bad-.example.com", "sip:999.1.2.3", "sip:ho st", "sip:host;;",
		"sip:a b@host", "sip:host\x00",
		// issue 10: the edge must not be made to call itself or nobody
		"sip:127.0.0.1:2223", "sip:127.9.9.9", "sip:0.0.0.0", "sip:0.1.2.3", "sip:169.254.169.254",
		"sip:224.0.0.1", "sip:239.1.2.3", "sip:255.255.255.255", "sip:[::1]", "sip:[::]", "sip:[fe80::1]",
		"sip:[ff02::1]", "sip:[::ffff:127.0.0.1]", "sip:localhost", "sip:LocalHost.:5060", "sip:pbx.localhost",
	}
	for _, in := range bad {
		if _, err := ParseSipURL(in, edges); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: want ErrInvalid, got %v", in, err)
		}
	}
	// private ranges stay allowed (private interconnects)
	for _, in := range []string{"sip:10.1.2.3", "sip:192.168.1.10:5080", "sip:172.16.0.1", "sip:[fd00::1]", "sip:198.18.1.2", "sip:localhost.example.com"} {
		if _, err := ParseSipURL(in, edges); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	if _, err := ParseSipURL("sip:host;edge=tokyo", nil); err != nil {
		t.Errorf("without configured edges any edge name is accepted: %v", err)
	}
}

func FuzzParseSipURL(f *testing.F) {
	for _, s := range []string{"sip:+14158675309@pbx.example.com:5060;transport=tls;edge=ashburn?X-A=b", "sip:[::1]:5", "sips:a", "sip:a@b@c", "sip:a;region=us1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseSipURL(s, []string{"ashburn"})
		if err != nil {
			var e *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &e) || e.Param != "SipUrl" {
				t.Fatalf("%q: error of the wrong kind: %#v", s, err)
			}
			return
		}
		if u.Host == "" {
			t.Fatalf("%q accepted with no host", s)
		}
		if a, err := netip.ParseAddr(u.Host); err == nil && specialAddr(a.Unmap()) != "" {
			t.Fatalf("%q accepted toward %s", s, a)
		}
		if e := u.Edge(); e != "" && e != "ashburn" {
			t.Fatalf("%q accepted with edge %q", s, e)
		}
	})
}
