// Package auth verifies SIP digest authentication (RFC 3261 §22, RFC 7616
// and RFC 8760 algorithms) for trunk credential lists: it issues
// HMAC-signed, expiring nonces, verifies responses against stored HA1
// hashes in constant time, refuses replays (nonce-count tracking), marks
// expired nonces stale, and answers an unknown user exactly like a wrong
// password. github.com/icholy/digest parses and formats the headers.
package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"
)

// Algorithms the verifier accepts.
const (
	MD5    = "MD5"
	SHA256 = "SHA-256"
)

// Secret is one stored credential: the HA1 hashes of username:realm:password
// for each algorithm (hex). The password itself is never stored.
type Secret struct {
	HA1MD5    string
	HA1SHA256 string
}

// HA1 computes the stored hash for a credential.
func HA1(alg, user, realm, password string) string {
	h := newHash(alg)
	fmt.Fprintf(h, "%s:%s:%s", user, realm, password)
	return hex.EncodeToString(h.Sum(nil))
}

func newHash(alg string) hash.Hash {
	if strings.EqualFold(alg, SHA256) {
		return sha256.New()
	}
	return md5.New()
}

// Lookup finds a user's secret; ok is false for an unknown user.
type Lookup func(user string) (s Secret, ok bool)

// Verifier issues challenges and checks answers for one realm.
type Verifier struct {
	realm string
	key   []byte
	ttl   time.Duration
	now   func() time.Time
	dummy Secret
	mu    sync.Mutex
	seen  map[string]nonceState // nonce -> highest nc accepted
	// anyURI skips the uri= check (WithoutURICheck)
	anyURI bool
	sweep  time.Time
}

type nonceState struct {
	nc      int
	expires time.Time
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithTTL sets how long a nonce is good for (default 5 minutes).
func WithTTL(d time.Duration) Option { return func(v *Verifier) { v.ttl = d } }

// WithKey sets the HMAC key signing nonces (default: random per process;
// set one shared key when several signalling processes serve one realm).
func WithKey(k []byte) Option { return func(v *Verifier) { v.key = append([]byte(nil), k...) } }

// WithoutURICheck accepts credentials whatever their uri= names. Only
// for clients that do not put the Request-URI there (SIPp 3.6 puts
// sip:server-ip:port): it lets an on-path attacker move credentials to
// another Request-URI.
func WithoutURICheck() Option { return func(v *Verifier) { v.anyURI = true } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// New makes a verifier for realm.
func New(realm string, opts ...Option) *Verifier {
	v := &Verifier{realm: realm, ttl: 5 * time.Minute, now: time.Now, seen: map[string]nonceState{}}
	for _, o := range opts {
		o(v)
	}
	if v.key == nil {
		v.key = make([]byte, 32)
		_, _ = rand.Read(v.key)
	}
	// An unknown user is checked against a random secret, so the work
	// and the answer are the same as for a wrong password.
	junk := make([]byte, 16)
	_, _ = rand.Read(junk)
	v.dummy = Secret{HA1MD5: HA1(MD5, "x", realm, hex.EncodeToString(junk)), HA1SHA256: HA1(SHA256, "x", realm, hex.EncodeToString(junk))}
	return v
}

// Realm is the verifier's realm.
func (v *Verifier) Realm() string { return v.realm }

// Challenge is a fresh challenge header value (for 401 WWW-Authenticate or
// 407 Proxy-Authenticate), for alg (MD5 or SHA-256).
func (v *Verifier) Challenge(alg string, stale bool) string {
	c := digest.Challenge{Realm: v.realm, Nonce: v.nonce(), Algorithm: alg, QOP: []string{"auth"}, Stale: stale}
	return c.String()
}

// nonce = base64(issued unix-nano | 8 random bytes | HMAC(key, those 16)[:16]).
func (v *Verifier) nonce() string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:8], uint64(v.now().UnixNano()))
	_, _ = rand.Read(b[8:16])
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(v.realm))
	m.Write(b[:16])
	copy(b[16:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// checkNonce says whether the nonce is ours, and whether it has expired.
func (v *Verifier) checkNonce(n string) (ours, expired bool) {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 32 {
		return false, false
	}
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(v.realm))
	m.Write(b[:16])
	if !hmac.Equal(m.Sum(nil)[:16], b[16:]) {
		return false, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
	age := v.now().Sub(issued)
	return true, age > v.ttl || age < -time.Minute
}

// Request is what a response is checked against.
type Request struct {
	Method string
	// URI is the request's Request-URI: the credentials' uri= must name
	// it (SameURI), or they are refused with ErrURIMismatch.
	URI string
	// Header is the Authorization or Proxy-Authorization value.
	Header string
}

// Verify checks credentials and returns the authenticated user.
func (v *Verifier) Verify(r Request, lookup Lookup) (string, error) {
	cr, err := digest.ParseCredentials(r.Header)
	if err != nil || cr.Username == "" || cr.Nonce == "" || cr.Response == "" || cr.URI == "" {
		return "", ErrMalformed
	}
	if cr.Realm != v.realm {
		return "", ErrRejected
	}
	if !v.anyURI && !SameURI(cr.URI, r.URI) {
		return "", ErrURIMismatch
	}
	alg := cr.Algorithm
	if alg == "" {
		alg = MD5
	}
	if !strings.EqualFold(alg, MD5) && !strings.EqualFold(alg, SHA256) {
		return "", ErrRejected
	}
	ours, expired := v.checkNonce(cr.Nonce)
	if !ours {
		return "", ErrRejected
	}
	qop := strings.ToLower(cr.QOP)
	if qop != "" && qop != "auth" {
		return "", ErrRejected
	}
	if qop == "auth" && (cr.Nc <= 0 || cr.Cnonce == "") {
		return "", ErrMalformed
	}

	secret, known := lookup(cr.Username)
	if !known {
		secret = v.dummy
	}
	ha1 := secret.HA1MD5
	if strings.EqualFold(alg, SHA256) {
		ha1 = secret.HA1SHA256
	}
	if ha1 == "" {
		ha1, known = v.dummy.HA1MD5, false
		if strings.EqualFold(alg, SHA256) {
			ha1 = v.dummy.HA1SHA256
		}
	}
	want := response(alg, ha1, r.Method, cr)
	ok := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cr.Response))) == 1
	if !ok || !known {
		return "", ErrRejected
	}
	if expired {
		// the password was right: tell the client to retry with a new nonce
		return "", ErrStale
	}
	if !v.markUsed(cr.Nonce, cr.Nc, qop == "") {
		return "", ErrReplay
	}
	return cr.Username, nil
}

func response(alg, ha1, method string, cr *digest.Credentials) string {
	h := newHash(alg)
	fmt.Fprintf(h, "%s:%s", method, cr.URI)
	ha2 := hex.EncodeToString(h.Sum(nil))
	h = newHash(alg)
	if cr.QOP == "" {
		fmt.Fprintf(h, "%s:%s:%s", ha1, cr.Nonce, ha2)
	} else {
		fmt.Fprintf(h, "%s:%s:%08x:%s:%s:%s", ha1, cr.Nonce, cr.Nc, cr.Cnonce, strings.ToLower(cr.QOP), ha2)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// markUsed records nc for nonce: it must be higher than any accepted
// before (with qop) or the nonce unused (without qop, single use).
func (v *Verifier) markUsed(nonce string, nc int, single bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if now.After(v.sweep) {
		for k, s := range v.seen {
			if now.After(s.expires) {
				delete(v.seen, k)
			}
		}
		v.sweep = now.Add(v.ttl / 4)
	}
	s, used := v.seen[nonce]
	if used && (single || nc <= s.nc) {
		return false
	}
	v.seen[nonce] = nonceState{nc: nc, expires: now.Add(v.ttl + time.Minute)}
	return true
}
