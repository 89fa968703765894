package auth

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// SameURI reports whether a digest's uri= names the Request-URI
// (RFC 3261 §22.4: "the Request-URI from the request line"), compared as
// SIP URIs are (§19.1.4): scheme and host in any case, user and password
// exactly, the same port (absent is not 5060), the same URI parameters
// and headers in any order (parameter names and values in any case).
// Without this check the response covers a URI the request does not go
// to: an on-path attacker could keep the credentials and rewrite the
// Request-URI to a premium-rate number. Anything that does not parse as
// a SIP URI must match byte for byte.
func SameURI(digestURI, requestURI string) bool {
	if digestURI == requestURI {
		return true
	}
	var a, b sip.Uri
	if sip.ParseUri(digestURI, &a) != nil || sip.ParseUri(requestURI, &b) != nil {
		return false
	}
	if a.Raw() != "" || b.Raw() != "" { // tel:, urn: and other non-SIP URIs
		return false
	}
	return strings.EqualFold(scheme(a), scheme(b)) && a.User == b.User && a.Password == b.Password &&
		strings.EqualFold(a.Host, b.Host) && a.Port == b.Port && a.Wildcard == b.Wildcard &&
		sameParams(a.UriParams, b.UriParams, true) && sameParams(b.UriParams, a.UriParams, true) &&
		sameParams(a.Headers, b.Headers, false) && sameParams(b.Headers, a.Headers, false)
}

func scheme(u sip.Uri) string {
	if u.Scheme == "" {
		return "sip"
	}
	return u.Scheme
}

// sameParams: every key of a (any case) is in b with the same value (in
// any case when foldValues); asked both ways, the same parameters in any
// order.
func sameParams(a, b sip.HeaderParams, foldValues bool) bool {
	if len(a) != len(b) {
		return false
	}
	for _, kv := range a {
		found := false
		for _, o := range b {
			if strings.EqualFold(kv.K, o.K) {
				found = kv.V == o.V || (foldValues && strings.EqualFold(kv.V, o.V))
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
