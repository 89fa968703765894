package store

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/control/domain"
)

// The store reports control/domain's URI rule violations as its own:
// ErrInvalid, code 20001, parameter SipUrl, the domain's words.
func TestParseSipURLErrors(t *testing.T) {
	var e *Error
	_, err := ParseSipURL("sip:host;transport=sctp", nil)
	if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || e.Code != CodeInvalidParameter || e.Param != "SipUrl" ||
		e.Msg != "SipUrl transport must be udp, tcp or tls" {
		t.Fatalf("%#v", err)
	}
	if u, err := ParseSipURL("sip:pbx.example.com;edge=dublin", []string{"dublin"}); err != nil || u.Edge() != "dublin" {
		t.Fatalf("%+v %v", u, err)
	}
}

func TestDomainNames(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"acme.pstn.example.net", "acme.pstn.example.net"},
		{"ACME-1.pstn.Example.NET", "acme-1.pstn.example.net"},
		{"a.b.pstn.example.net", "a.b.pstn.example.net"},
	} {
		got, err := CheckDomainName(c.in, "example.net")
		if err != nil || got != c.out {
			t.Errorf("%q: %q %v", c.in, got, err)
		}
	}
	for _, in := range []string{"pstn.example.net", ".pstn.example.net", "acme.example.net", "acme.pstn.example.org",
		"-acme.pstn.example.net", "ac_me.pstn.example.net", "a..b.pstn.example.net", "acme.pstn.ashburn.example.net"} {
		if _, err := CheckDomainName(in, "example.net"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: want ErrInvalid, got %v", in, err)
		}
	}
	if p, ok := ParentDomain("a.b.pstn.example.net", "example.net"); !ok || p != "b.pstn.example.net" {
		t.Errorf("parent: %q %v", p, ok)
	}
	if p, ok := ParentDomain("x.a.b.pstn.example.net", "example.net"); !ok || p != "a.b.pstn.example.net" {
		t.Errorf("parent: %q %v", p, ok)
	}
	if _, ok := ParentDomain("b.pstn.example.net", "example.net"); ok {
		t.Error("a top-level domain has no parent")
	}
	edges := []string{"ashburn", "dublin"}
	for _, c := range []struct{ host, domain, edge string }{
		{"acme.pstn.example.net", "acme.pstn.example.net", ""},
		{"acme.pstn.ashburn.example.net", "acme.pstn.example.net", "ashburn"},
		{"a.b.pstn.dublin.example.net.", "a.b.pstn.example.net", "dublin"},
	} {
		d, e, ok := TerminationHost(c.host, "example.net", edges)
		if !ok || d != c.domain || e != c.edge {
			t.Errorf("%q: %q %q %v", c.host, d, e, ok)
		}
	}
	if _, _, ok := TerminationHost("acme.pstn.tokyo.example.net", "example.net", edges); ok {
		t.Error("unknown edge accepted")
	}
}

func TestE164AndPasswords(t *testing.T) {
	for _, n := range []string{"+14158675309", "+123"} {
		if err := CheckE164("PhoneNumber", n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"14158675309", "+1 415 867 5309"} {
		var e *Error
		if err := CheckE164("PhoneNumber", n); !errors.As(err, &e) || e.Code != CodePhoneInvalid || e.Param != "PhoneNumber" {
			t.Errorf("%q: %v, want code %d", n, err, CodePhoneInvalid)
		}
	}
	for _, p := range []string{"Str0ngPassword", "abcDEF123456", "Ünïcode-pässw0rD"} {
		if err := CheckPassword(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", "Short1A", "alllowercase123", "ALLUPPERCASE123", "NoDigitsHereAtAll", "abcDEF12345"} {
		if err := CheckPassword(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: want ErrInvalid, got %v", p, err)
		}
	}
}

func TestIPAddresses(t *testing.T) {
	for _, c := range []struct {
		ip   string
		cidr int
		out  string
		n    int
	}{
		{"203.0.113.7", 0, "203.0.113.7", 32},
		{"198.51.100.0", 24, "198.51.100.0", 24},
		{"198.51.100.0/24", 0, "198.51.100.0", 24},
		{"2001:db8::1", 0, "2001:db8::1", 128},
		{"2001:db8::/32", 32, "2001:db8::", 32},
		{"10.0.0.0/8", 0, "10.0.0.0", 8},
		// inside an IPv4-carrying range, narrow enough: one NAT64'd PBX,
		// one Teredo client, a 6to4 site
		{"64:ff9b::cb00:7107", 0, "64:ff9b::cb00:7107", 128},
		{"2001:0:4136:e378:8000:63bf:3f00:0/104", 0, "2001:0:4136:e378:8000:63bf:3f00:0", 104},
		{"2002:cb00:7107::/48", 0, "2002:cb00:7107::", 48},
	} {
		ip, n, err := ParseIPAddress(c.ip, c.cidr)
		if err != nil || ip != c.out || n != c.n {
			t.Errorf("%q/%d: %q %d %v", c.ip, c.cidr, ip, n, err)
		}
	}
	for _, c := range []struct {
		ip   string
		cidr int
	}{{"", 0}, {"host.example.com", 0}, {"1.2.3.4", 33}, {"1.2.3.4", -1}, {"1.2.3.0/24", 16}, {"1.2.3.4/x", 0}, {"fe80::1%eth0", 0},
		// issue 10: no prefix shorter than /8 (IPv4) or /32 (IPv6)
		{"0.0.0.0/1", 0}, {"0.0.0.0", 1}, {"10.0.0.0/7", 0}, {"2001::/31", 0}, {"::/0", 0}, {"::ffff:0.0.0.0/97", 0},
		// IPv6 ranges that carry IPv4 addresses, at widths that trust
		// more than an IPv4 /8 (the API review: 2001::/32 is every
		// Teredo client, 64:ff9b::/96 every IPv4 address behind NAT64)
		{"2001::/32", 0}, {"2001::", 32}, {"2001:0:4136:e378::/64", 0}, {"2001:0:4136:e378:8000:63bf:3f00:0/103", 0},
		{"64:ff9b::/96", 0}, {"64:ff9b::/32", 0}, {"64:ff9b::cb00:0/103", 0}, {"64:ff9b:1::/48", 0}, {"64:ff9b:1:ab00::/56", 0},
		{"::/32", 0}, {"::/96", 0}, {"::ffff:0:0:0/96", 0}, {"::ffff:0:cb00:0/103", 0}} {
		if _, _, err := ParseIPAddress(c.ip, c.cidr); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q/%d: want ErrInvalid, got %v", c.ip, c.cidr, err)
		}
	}
}

func TestDigest(t *testing.T) {
	// RFC 2617 §3.5's example: Mufasa / testrealm@host.com / Circle Of Life.
	if got := HA1MD5("Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Errorf("HA1 MD5 = %s", got)
	}
	// RFC 7616 §3.9.1's example (SHA-256): Mufasa / http-auth@example.org / Circle of Life.
	if got := HA1SHA256("Mufasa", "http-auth@example.org", "Circle of Life"); got != "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232" {
		t.Errorf("HA1 SHA-256 = %s", got)
	}
}

func FuzzParseSipURL(f *testing.F) {
	for _, s := range []string{"sip:+14158675309@pbx.example.com:5060;transport=tls;edge=ashburn?X-A=b", "sip:[::1]:5", "sips:a", "sip:a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseSipURL(s, []string{"ashburn"})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error of the wrong kind: %v", s, err)
			}
			return
		}
		if u.Host == "" {
			t.Fatalf("%q accepted with no host", s)
		}
		if err := domain.CheckOriginationHost(u.Host); err != nil {
			t.Fatalf("%q accepted: %v", s, err)
		}
	})
}

// An accepted ACL entry is never wider than /8 or /32.
func FuzzParseIPAddress(f *testing.F) {
	for _, s := range []string{"0.0.0.0/1", "10.0.0.0/8", "::/0", "2001:db8::/32", "::ffff:1.2.3.4/100", "1.2.3.4", "2001::/32", "64:ff9b::/96", "::ffff:0:0:0/96"} {
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, ip string, cidr int) {
		out, n, err := ParseIPAddress(ip, cidr)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q/%d: error of the wrong kind: %v", ip, cidr, err)
			}
			return
		}
		a := netip.MustParseAddr(out)
		if min := map[bool]int{true: MinPrefixIPv4, false: MinPrefixIPv6}[a.Is4()]; n < min || n > a.BitLen() {
			t.Fatalf("%q/%d accepted as %s/%d", ip, cidr, out, n)
		}
		for _, r := range []struct {
			p    string
			bits int
		}{{"2001::/32", 104}, {"64:ff9b::/96", 104}, {"64:ff9b:1::/48", 104}, {"::ffff:0:0:0/96", 104}, {"::/96", 104}} {
			if rp := netip.MustParsePrefix(r.p); rp.Overlaps(netip.PrefixFrom(a, n)) && n < r.bits {
				t.Fatalf("%q/%d accepted as %s/%d: more than an IPv4 /8 of %s", ip, cidr, out, n, r.p)
			}
		}
	})
}

// A valid recording file name is a name: joined to a directory, it stays
// in it.
func FuzzValidRecordingFile(f *testing.F) {
	for _, s := range []string{"a.wav", "../x.wav", "/etc/passwd", "call-1_x-17-dual.wav", ".wav", "a/b.wav"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !ValidRecordingFile(name) {
			return
		}
		dir := "/var/lib/xtrunk/recordings"
		if p := filepath.Join(dir, name); filepath.Dir(p) != dir || filepath.Base(p) != name || strings.HasPrefix(name, ".") {
			t.Fatalf("%q leads to %q", name, p)
		}
	})
}
