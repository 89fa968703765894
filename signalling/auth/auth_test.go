package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"
)

const realm = "acme.pstn.example.net"

// ruri is the Request-URI the test clients answer challenges for.
const ruri = "sip:+15105550100@acme.pstn.example.net"

var users = map[string]Secret{
	"alice": {HA1MD5: HA1(MD5, "alice", realm, "Str0ngPassw0rd!"), HA1SHA256: HA1(SHA256, "alice", realm, "Str0ngPassw0rd!")},
}

func lookup(u string) (Secret, bool) { s, ok := users[u]; return s, ok }

// answer answers challenge chal as a real client (icholy/digest) would.
func answer(t *testing.T, chal, user, pass string, nc int) string {
	t.Helper()
	c, err := digest.ParseChallenge(chal)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := digest.Digest(c, digest.Options{Method: "INVITE", URI: ruri, Username: user, Password: pass, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return cr.String()
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := New(realm, WithClock(func() time.Time { return now }))
	for _, alg := range []string{MD5, SHA256} {
		chal := v.Challenge(alg, false)
		if !strings.Contains(chal, `qop="auth"`) || !strings.Contains(chal, realm) {
			t.Fatalf("challenge %s", chal)
		}
		h := answer(t, chal, "alice", "Str0ngPassw0rd!", 1)
		if u, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: h}, lookup); err != nil || u != "alice" {
			t.Fatalf("%s: good credentials: %q %v", alg, u, err)
		}
		if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: h}, lookup); !errors.Is(err, ErrReplay) {
			t.Errorf("%s: replayed header: %v, want ErrReplay", alg, err)
		}
		// the same nonce with a higher nonce-count is a legitimate reuse
		if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: answer(t, chal, "alice", "Str0ngPassw0rd!", 2)}, lookup); err != nil {
			t.Errorf("%s: nc=2 on the same nonce: %v", alg, err)
		}
		if _, err := v.Verify(Request{Method: "BYE", URI: ruri, Header: answer(t, chal, "alice", "Str0ngPassw0rd!", 3)}, lookup); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: credentials for INVITE used on BYE: %v", alg, err)
		}
	}
}

// An unknown user and a wrong password look exactly alike.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	v := New(realm)
	chal := v.Challenge(MD5, false)
	_, e1 := v.Verify(Request{Method: "INVITE", URI: ruri, Header: answer(t, chal, "alice", "wrong", 1)}, lookup)
	_, e2 := v.Verify(Request{Method: "INVITE", URI: ruri, Header: answer(t, chal, "mallory", "Str0ngPassw0rd!", 1)}, lookup)
	if e1 == nil || e1 != e2 || !errors.Is(e1, ErrRejected) {
		t.Errorf("wrong password: %v, unknown user: %v; want the same ErrRejected", e1, e2)
	}
}

func TestStaleAndForgedNonces(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := New(realm, WithTTL(time.Minute), WithClock(func() time.Time { return now }))
	chal := v.Challenge(MD5, false)
	good := answer(t, chal, "alice", "Str0ngPassw0rd!", 1)
	bad := answer(t, chal, "alice", "nope", 1)
	now = now.Add(2 * time.Minute)
	if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: good}, lookup); !errors.Is(err, ErrStale) {
		t.Errorf("expired nonce, right password: %v, want ErrStale", err)
	}
	if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: bad}, lookup); !errors.Is(err, ErrRejected) {
		t.Errorf("expired nonce, wrong password: %v, want ErrRejected (stale only tells the truth to the right password)", err)
	}
	if !strings.Contains(v.Challenge(MD5, true), "stale=true") {
		t.Error("stale challenge lacks stale=true")
	}
	// a nonce another verifier (another key) signed is not ours
	other := New(realm)
	forged := answer(t, other.Challenge(MD5, false), "alice", "Str0ngPassw0rd!", 1)
	if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: forged}, lookup); !errors.Is(err, ErrRejected) {
		t.Errorf("foreign nonce: %v", err)
	}
	// and a nonce from a verifier of another realm neither
	wrongRealm := New("other.pstn.example.net", WithKey([]byte("k")))
	if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: answer(t, wrongRealm.Challenge(MD5, false), "alice", "Str0ngPassw0rd!", 1)}, lookup); !errors.Is(err, ErrRejected) {
		t.Errorf("other realm: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	v := New(realm)
	for _, h := range []string{"", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Digest", `Digest username="alice"`,
		`Digest username="alice", realm="` + realm + `", nonce="x", uri="sip:a", response="00", qop=auth`} {
		if _, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: h}, lookup); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
}

func FuzzVerify(f *testing.F) {
	v := New(realm)
	f.Add(`Digest username="alice", realm="` + realm + `", nonce="` + strings.Repeat("A", 43) + `", uri="sip:a", response="00", qop=auth, nc=00000001, cnonce="x"`)
	f.Add("Digest ,,,=\"")
	f.Fuzz(func(t *testing.T, h string) {
		if u, err := v.Verify(Request{Method: "INVITE", URI: ruri, Header: h}, lookup); err == nil {
			t.Fatalf("random header authenticated as %q: %q", u, h)
		}
	})
}
