package signalling

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// edgeAuthHeader carries a hand-over INVITE's proof that an edge sent it
// (REQUIREMENTS §3.6): only edges know --edge-secret. It is never passed
// on: the receiving edge builds its own INVITE toward the PBX.
const edgeAuthHeader = "X-Xtrunk-Edge-Auth"

// edgeAuthValidity is how far a hand-over's timestamp may be from the
// receiving edge's clock, either way: a captured INVITE is worthless after
// it (and within it, its MAC is accepted once: edgeRegistry.seen).
const edgeAuthValidity = 30 * time.Second

// edgeAuth is what an edge signs when it hands a call over: who sends it
// to whom, when, which origination URI the receiver is to dial, and the
// INVITE's Call-ID and dialled number, so that no part can be changed or
// the header moved to another INVITE.
type edgeAuth struct {
	from, to string // edge names
	ts       int64  // unix seconds
	target   string // the origination URI's sid (OU…)
	mac      []byte // HMAC-SHA256 over the rest, the Call-ID and the number
}

// sign computes a's MAC for an INVITE with callID to number.
func (a edgeAuth) sign(secret []byte, callID, number string) []byte {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "xtrunk-edge-v1\n%s\n%s\n%d\n%s\n%s\n%s", a.from, a.to, a.ts, a.target, callID, number)
	return m.Sum(nil)
}

// String is the header's value.
func (a edgeAuth) String() string {
	return "v=1;from=" + a.from + ";to=" + a.to + ";ts=" + strconv.FormatInt(a.ts, 10) + ";target=" + a.target + ";mac=" + hex.EncodeToString(a.mac)
}

// parseEdgeAuth reads the header's value; it checks the shape only
// (verify checks the rest).
func parseEdgeAuth(v string) (edgeAuth, error) {
	var a edgeAuth
	if len(v) > 512 {
		return a, fmt.Errorf("%w: too long", ErrEdgeAuth)
	}
	seen := map[string]bool{}
	for _, f := range strings.Split(strings.TrimSpace(v), ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || seen[k] {
			return a, fmt.Errorf("%w: field %q", ErrEdgeAuth, f)
		}
		seen[k] = true
		switch k {
		case "v":
			if val != "1" {
				return a, fmt.Errorf("%w: version %q", ErrEdgeAuth, val)
			}
		case "from":
			a.from = val
		case "to":
			a.to = val
		case "target":
			a.target = val
		case "ts":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return a, fmt.Errorf("%w: ts %q", ErrEdgeAuth, val)
			}
			a.ts = n
		case "mac":
			b, err := hex.DecodeString(val)
			if err != nil || len(b) != sha256.Size {
				return a, fmt.Errorf("%w: mac", ErrEdgeAuth)
			}
			a.mac = b
		default:
			return a, fmt.Errorf("%w: field %q", ErrEdgeAuth, k)
		}
	}
	if !seen["v"] || a.from == "" || a.to == "" || a.target == "" || a.mac == nil || !seen["ts"] {
		return a, fmt.Errorf("%w: missing field", ErrEdgeAuth)
	}
	return a, nil
}

// verify checks a for an INVITE with callID to number, received by edge
// self at now: addressed to self, fresh, and its MAC right (compared in
// constant time).
func (a edgeAuth) verify(secret []byte, self, callID, number string, now time.Time) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no --edge-secret here", ErrEdgeAuth)
	}
	want := a.sign(secret, callID, number)
	if !hmac.Equal(want, a.mac) {
		return fmt.Errorf("%w: bad MAC", ErrEdgeAuth)
	}
	if a.to != self {
		return fmt.Errorf("%w: addressed to edge %q", ErrEdgeAuth, a.to)
	}
	if d := now.Sub(time.Unix(a.ts, 0)); d > edgeAuthValidity || d < -edgeAuthValidity {
		return fmt.Errorf("%w: timestamp %v off", ErrEdgeAuth, d.Round(time.Second))
	}
	return nil
}
