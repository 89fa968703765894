package signalling

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"
)

// Digest at the SIP level (REQUIREMENTS §2.2): a Proxy-Authorization that
// got a call through once gets a 407 when it comes again, and an unknown
// user looks exactly like a wrong password on the wire.

// challengeOf is the Proxy-Authenticate value of a 407.
func challengeOf(t *testing.T, res string) string {
	t.Helper()
	if !strings.HasPrefix(res, "SIP/2.0 407") {
		t.Fatalf("want 407, got %q", statusLine(res))
	}
	for _, line := range strings.Split(res, "\r\n") {
		if v, ok := strings.CutPrefix(line, "Proxy-Authenticate: "); ok {
			return v
		}
	}
	t.Fatalf("407 without Proxy-Authenticate:\n%s", res)
	return ""
}

func answerChallenge(t *testing.T, chal, user, pass, uri string, nc int, qop bool) string {
	t.Helper()
	c, err := digest.ParseChallenge(chal)
	if err != nil {
		t.Fatal(err)
	}
	if !qop {
		c.QOP = nil
	}
	cr, err := digest.Digest(c, digest.Options{Method: "INVITE", URI: uri, Username: user, Password: pass, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return cr.String()
}

func TestDigestReplay(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.ListenUDP = serve(t, cfg, p.st).Addr("UDP").String()

	const uri = "sip:+14155550123@" + acmeHost
	// Max-Forwards 10 is refused (483) by the check right after
	// authentication: a 483 proves the credentials were taken, without
	// placing a call.
	invite := func(auth string) string {
		t.Helper()
		req := rawRequest{ruri: uri, maxForwards: 10}
		if auth != "" {
			req.extra = "Proxy-Authorization: " + auth + "\r\n"
		}
		return statusLine(exchange(t, "127.0.0.1:0", cfg.ListenUDP, req, 2*time.Second))
	}
	for _, tc := range []struct {
		name string
		qop  bool
	}{{"qop=auth", true}, {"no qop (RFC 2069)", false}} {
		t.Run(tc.name, func(t *testing.T) {
			chal := challengeOf(t, exchange(t, "127.0.0.1:0", cfg.ListenUDP, rawRequest{ruri: uri, maxForwards: 10}, 2*time.Second))
			first := answerChallenge(t, chal, testUser, testPassword, uri, 1, tc.qop)
			if got := invite(first); !strings.HasPrefix(got, "SIP/2.0 483") {
				t.Fatalf("valid credentials: want them taken (483 next), got %q", got)
			}
			// the same header on a new INVITE (new Call-ID, new branch)
			if got := invite(first); !strings.HasPrefix(got, "SIP/2.0 407") {
				t.Fatalf("replayed credentials: want 407, got %q", got)
			}
			if !tc.qop {
				return // without qop a nonce is good for one request
			}
			// the client itself may reuse the nonce with a higher count
			second := answerChallenge(t, chal, testUser, testPassword, uri, 2, true)
			if got := invite(second); !strings.HasPrefix(got, "SIP/2.0 483") {
				t.Fatalf("same nonce, nc=2: want it taken, got %q", got)
			}
			for _, h := range []string{second, first} {
				if got := invite(h); !strings.HasPrefix(got, "SIP/2.0 407") {
					t.Fatalf("replayed nc: want 407, got %q", got)
				}
			}
		})
	}
}

// TestUnknownUserLikeWrongPassword: the 407 for an unknown user and for a
// known user with a wrong password are the same but for the fresh nonce
// (and what every response copies from its request).
func TestUnknownUserLikeWrongPassword(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.ListenUDP = serve(t, cfg, p.st).Addr("UDP").String()

	const uri = "sip:+14155550123@" + acmeHost
	try := func(user, pass string) (string, string) {
		t.Helper()
		chal := challengeOf(t, exchange(t, "127.0.0.1:0", cfg.ListenUDP, rawRequest{ruri: uri}, 2*time.Second))
		h := answerChallenge(t, chal, user, pass, uri, 1, true)
		res := exchange(t, "127.0.0.1:0", cfg.ListenUDP, rawRequest{ruri: uri, extra: "Proxy-Authorization: " + h + "\r\n"}, 2*time.Second)
		return res, challengeOf(t, res)
	}
	wrongRes, wrongChal := try(testUser, "Wr0ngPassw0rd!2026")
	unknownRes, unknownChal := try("nobody", "Wr0ngPassw0rd!2026")
	nonce := regexp.MustCompile(`nonce="[^"]*"`)
	if a, b := nonce.ReplaceAllString(wrongChal, `nonce=""`), nonce.ReplaceAllString(unknownChal, `nonce=""`); a != b {
		t.Fatalf("challenges differ:\nwrong password: %s\nunknown user:   %s", wrongChal, unknownChal)
	}
	if nonce.FindString(wrongChal) == nonce.FindString(unknownChal) {
		t.Fatal("the same nonce twice")
	}
	if strings.Contains(wrongChal, "stale") {
		t.Fatalf("a wrong password is not a stale nonce: %s", wrongChal)
	}
	shape := func(res string) string {
		var names []string
		for _, line := range strings.Split(res, "\r\n")[1:] {
			if name, _, ok := strings.Cut(line, ":"); ok {
				names = append(names, name)
			}
		}
		return statusLine(res) + " " + strings.Join(names, ",")
	}
	if a, b := shape(wrongRes), shape(unknownRes); a != b {
		t.Fatalf("responses differ:\nwrong password: %s\nunknown user:   %s", a, b)
	}
}
