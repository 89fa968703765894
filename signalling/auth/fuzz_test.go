package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// FuzzVerifyReplay feeds arbitrary Authorization / Proxy-Authorization values
// (and methods), seeded with valid answers, to the verifier: it must not panic, must fail only with
// its sentinel errors, and whatever it accepts once it must refuse the
// second time (no replay).
func FuzzVerifyReplay(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	key := []byte("fuzz key, fixed so seeds stay valid")
	mk := func() *Verifier { return New(realm, WithKey(key), WithClock(func() time.Time { return now })) }
	v := mk()
	for _, alg := range []string{MD5, SHA256} {
		for _, nc := range []int{0, 1, 7} {
			c, err := digest.ParseChallenge(v.Challenge(alg, false))
			if err != nil {
				f.Fatal(err)
			}
			if nc == 0 {
				c.QOP = nil // RFC 2069 style: no qop, no nc
			}
			cr, err := digest.Digest(c, digest.Options{Method: "INVITE", URI: "sip:+15105550100@" + realm, Username: "alice", Password: "Str0ngPassw0rd!", Count: nc})
			if err != nil {
				f.Fatal(err)
			}
			f.Add("INVITE", cr.String())
		}
	}
	for _, h := range []string{
		``, `Digest`, `Basic YWxpY2U6cGFzcw==`, `Digest username=`, `Digest username="`, `Digest username="alice",`,
		`Digest username="alice", realm="` + realm + `", nonce="x", uri="sip:a", response="0"`,
		`Digest username="alice", realm="` + realm + `", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:a", response="00", qop=auth, nc=ffffffffffffffff, cnonce=""`,
		`Digest username="alice", realm="` + realm + `", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:a", response="00", qop=auth, nc=-1, cnonce="c"`,
		`Digest username="alice", realm="` + realm + `", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:a", response="00", algorithm=SHA-512-256`,
		`Digest username="a\"b", realm="\\", nonce="\x00", uri="", response=""`,
	} {
		f.Add("INVITE", h)
	}
	f.Fuzz(func(t *testing.T, method, header string) {
		v := mk()
		user, err := v.Verify(Request{Method: method, URI: ruri, Header: header}, lookup)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRejected) && !errors.Is(err, ErrStale) && !errors.Is(err, ErrReplay) && !errors.Is(err, ErrURIMismatch) {
				t.Fatalf("Verify: unexpected error %v", err)
			}
			if user != "" {
				t.Fatalf("Verify failed (%v) but named user %q", err, user)
			}
			return
		}
		if _, ok := users[user]; !ok {
			t.Fatalf("Verify accepted unknown user %q", user)
		}
		if _, err := v.Verify(Request{Method: method, URI: ruri, Header: header}, lookup); !errors.Is(err, ErrReplay) {
			t.Fatalf("the same credentials a second time: %v, want %v\n%s", err, ErrReplay, header)
		}
	})
}
