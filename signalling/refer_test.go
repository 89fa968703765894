package signalling

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseReferTo(t *testing.T) {
	for _, tc := range []struct {
		in       string
		number   string
		user     string
		host     string
		replaces bool
		bad      bool
	}{
		{in: "<sip:bob@pbx.example.com>", user: "bob", host: "pbx.example.com"},
		{in: `"Bob" <sip:bob@10.0.0.5:5070;transport=tcp>`, user: "bob", host: "10.0.0.5"},
		{in: "sip:+14155550123@acme.pstn.example.net;method=INVITE", user: "+14155550123", host: "acme.pstn.example.net"},
		{in: "<sips:alice@secure.example.com>", user: "alice", host: "secure.example.com"},
		{in: "<tel:+1-415-555-0123>", number: "+14155550123"},
		{in: "tel:+442071234567;phone-context=x", number: "+442071234567"},
		{in: "<sip:bob@pbx.example.com?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>", user: "bob", host: "pbx.example.com", replaces: true},
		{in: "<sip:bob@pbx.example.com?Subject=x&replaces=abc>", user: "bob", host: "pbx.example.com", replaces: true},
		{in: "<sip:bob@pbx.example.com;method=INVITE>", user: "bob", host: "pbx.example.com"},
		{in: "<sip:bob@pbx.example.com;method=BYE>", bad: true},
		{in: "<tel:5550123>", bad: true}, // a local number: no context to dial it in
		{in: "<tel:+>", bad: true},
		{in: "<mailto:bob@example.com>", bad: true},
		{in: "<sip:bob@pbx.example.com", bad: true},
		{in: "bob", bad: true},
		{in: "", bad: true},
		{in: "<sip:>", bad: true},
		{in: "<" + strings.Repeat("a", 2000) + ">", bad: true},
	} {
		got, err := parseReferTo(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrReferTo) {
				t.Errorf("%q: got %+v, %v; want ErrReferTo", tc.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got.number != tc.number || got.replaces != tc.replaces || got.isSIP != (tc.number == "") ||
			(got.isSIP && (got.uri.User != tc.user || got.uri.Host != tc.host)) {
			t.Errorf("%q: got number %q sip %v user %q host %q replaces %v", tc.in, got.number, got.isSIP, got.uri.User, got.uri.Host, got.replaces)
		}
	}
}

func TestReferDecision(t *testing.T) {
	own := func(h string) bool { return h == "example.net" || strings.HasSuffix(h, ".example.net") }
	must := func(s string) referTarget {
		t.Helper()
		rt, err := parseReferTo(s)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	tel := must("<tel:+14155550123>")
	ownNum := must("<sip:+14155550123@acme.pstn.example.net>")
	ownName := must("<sip:bob@example.net>")
	sipURI := must("<sip:bob@pbx.example.com>")
	sipNumElsewhere := must("<sip:+14155550123@pbx.example.com>")
	attended := must("<sip:bob@pbx.example.com?Replaces=x>")
	for _, tc := range []struct {
		mode   string
		target referTarget
		status int
		number string
	}{
		{"disable-all", sipURI, 403, ""},
		{"disable-all", tel, 403, ""},
		{"", sipURI, 403, ""}, // unknown or unset: refuse
		{"sometimes", tel, 403, ""},
		{"enable-all", tel, 0, "+14155550123"},
		{"enable-all", ownNum, 0, "+14155550123"},
		{"enable-all", sipURI, 0, ""},
		{"enable-all", sipNumElsewhere, 0, ""}, // a number on someone else's host is that host's business
		{"enable-all", ownName, 403, ""},       // the edge itself, not a number: a loop
		{"sip-only", tel, 403, ""},
		{"sip-only", ownNum, 403, ""},
		{"sip-only", sipURI, 0, ""},
		{"sip-only", sipNumElsewhere, 0, ""},
		{"enable-all", attended, 501, ""},
	} {
		status, reason, number := referDecision(tc.mode, tc.target, own)
		if status != tc.status || number != tc.number || (status != 0) != (reason != "") {
			t.Errorf("%s %+v: got %d %q %q, want %d %q", tc.mode, tc.target, status, reason, number, tc.status, tc.number)
		}
	}
}

func TestSipfragReason(t *testing.T) {
	if got := sipfragReason("Busy\r\nX-Evil: 1"); got != "BusyX-Evil: 1" {
		t.Errorf("got %q", got)
	}
	if got := sipfragReason(strings.Repeat("x", 100)); len(got) != 64 {
		t.Errorf("len %d", len(got))
	}
	if sipfragReason("") != "Unknown" {
		t.Error("empty reason")
	}
}

// FuzzParseReferTo: any Refer-To value is parsed or refused with
// ErrReferTo, never a panic; an accepted target is a global number or a
// SIP URI with a host and no CR/LF anywhere (it goes into a Request-URI
// and headers), and the mode decision holds for it.
func FuzzParseReferTo(f *testing.F) {
	for _, s := range []string{"<sip:bob@pbx.example.com>", `"B" <sips:b@h:5061;transport=tls?Replaces=a%40b>`,
		"tel:+1-415-555-0123", "sip:+14155550123@acme.pstn.example.net;x=y", "<sip:@>", "<tel:>", "sip:[::1]:5060", "<<sip:a@b>>"} {
		f.Add(s)
	}
	own := func(h string) bool { return strings.HasSuffix(h, "example.net") }
	f.Fuzz(func(t *testing.T, s string) {
		rt, err := parseReferTo(s)
		if err != nil {
			if !errors.Is(err, ErrReferTo) {
				t.Fatalf("%q: error %v is not ErrReferTo", s, err)
			}
			return
		}
		if rt.isSIP {
			if rt.uri.Host == "" {
				t.Fatalf("%q: SIP target without host", s)
			}
			if u := rt.uri.String(); strings.ContainsAny(u, "\r\n") {
				t.Fatalf("%q: URI %q has CR/LF", s, u)
			}
		} else if rt.number == "" || rt.number[0] != '+' || !utf8.ValidString(rt.number) {
			t.Fatalf("%q: number target %q", s, rt.number)
		}
		for _, mode := range []string{"disable-all", "enable-all", "sip-only"} {
			status, _, number := referDecision(mode, rt, own)
			if mode == "disable-all" && status == 0 {
				t.Fatalf("%q: disable-all allowed it", s)
			}
			if mode == "sip-only" && status == 0 && number != "" {
				t.Fatalf("%q: sip-only allowed number %q", s, number)
			}
		}
	})
}
