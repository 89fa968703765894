package auth

import (
	"errors"
	"testing"
	"time"
)

// TestVerifyURIMustMatch: good credentials for one Request-URI do not
// admit a request for another (a rewritten INVITE), and nothing about
// the rewritten one is recorded against the nonce: the original request
// still goes through.
func TestVerifyURIMustMatch(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := New(realm, WithClock(func() time.Time { return now }))
	h := answer(t, v.Challenge(MD5, false), "alice", "Str0ngPassw0rd!", 1)
	for _, other := range []string{
		"sip:+19005550123@acme.pstn.example.net",      // premium-rate number
		"sip:+15105550100@evil.example.com",           // another host
		"sip:+15105550100@acme.pstn.example.net:5070", // another port
		"sip:+15105550100@acme.pstn.example.net;transport=tcp",
		"sips:+15105550100@acme.pstn.example.net",
		"", "tel:+15105550100",
	} {
		if _, err := v.Verify(Request{Method: "INVITE", URI: other, Header: h}, lookup); !errors.Is(err, ErrURIMismatch) {
			t.Errorf("credentials for %s on %q: %v, want ErrURIMismatch", ruri, other, err)
		}
	}
	if u, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: h}, lookup); err != nil || u != "alice" {
		t.Fatalf("the request they were made for: %q %v", u, err)
	}
}

// TestWithoutURICheck: the opt-out takes credentials made for another
// URI (SIPp 3.6's sip:server:port), and still checks the password.
func TestWithoutURICheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := New(realm, WithClock(func() time.Time { return now }), WithoutURICheck())
	h := answer(t, v.Challenge(MD5, false), "alice", "Str0ngPassw0rd!", 1)
	if u, err := v.Verify(Request{Method: "INVITE", URI: "sip:+19005550123@acme.pstn.example.net", Header: h}, lookup); err != nil || u != "alice" {
		t.Fatalf("without the uri check: %q %v", u, err)
	}
	bad := answer(t, v.Challenge(MD5, false), "alice", "wrong", 1)
	if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: bad}, lookup); !errors.Is(err, ErrRejected) {
		t.Fatalf("wrong password without the uri check: %v", err)
	}
}

func TestSameURI(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"sip:+1555@Acme.PSTN.example.net", "SIP:+1555@acme.pstn.example.net", true},
		{"sip:+1555@h;transport=TCP;lr", "sip:+1555@h;lr;transport=tcp", true},
		{"sip:+1555@h?X-A=1&X-B=2", "sip:+1555@h?X-B=2&X-A=1", true},
		{"sip:Alice@h", "sip:alice@h", false},
		{"sip:+1555@h", "sip:+1555@h:5060", false},
		{"sip:+1555@h;transport=udp", "sip:+1555@h", false},
		{"sip:+1555@h?X-A=1", "sip:+1555@h?X-A=2", false},
		{"not a uri", "not a uri", true},
		{"not a uri", "sip:+1555@h", false},
	} {
		if got := SameURI(tc.a, tc.b); got != tc.same {
			t.Errorf("SameURI(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
		if got := SameURI(tc.b, tc.a); got != tc.same {
			t.Errorf("SameURI(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.same)
		}
	}
}

// FuzzSameURI: any input is answered without a panic, a URI is the same
// as itself, and the answer does not depend on the order of the two.
func FuzzSameURI(f *testing.F) {
	f.Add("sip:+1555@h;transport=tcp", "sip:+1555@H;TRANSPORT=TCP")
	f.Add("sips:u:p@[::1]:5061;a;b=c?h=v", "sip:x")
	f.Add("tel:+1555", "*")
	f.Fuzz(func(t *testing.T, a, b string) {
		if !SameURI(a, a) {
			t.Fatalf("%q is not the same as itself", a)
		}
		if SameURI(a, b) != SameURI(b, a) {
			t.Fatalf("SameURI(%q, %q) depends on the order", a, b)
		}
	})
}
