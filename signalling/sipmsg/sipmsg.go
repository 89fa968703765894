// Package sipmsg holds the trunk's checks on SIP requests that need no
// state: E.164 numbers, where the caller ID comes from, Max-Forwards, and
// the Request-URI host's trunk domain.
package sipmsg

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/domain"
)

// IsE164 reports whether s is +, a non-zero digit, then at most 14
// digits: control/domain's rule, the one provisioning applies, so what
// provisioning accepts is what calls may use.
func IsE164(s string) bool { return domain.ValidE164(s) }

// userOf strips URI parameters a user part may carry (";phone-context").
func userOf(u sip.Uri) string {
	user := u.User
	if i := strings.IndexByte(user, ';'); i >= 0 {
		user = user[:i]
	}
	return user
}

// hasNumber reports whether user looks like a phone number (what the
// caller-ID rule means by "carries a number").
func hasNumber(user string) bool {
	user = strings.TrimPrefix(user, "+")
	if user == "" {
		return false
	}
	for i := 0; i < len(user); i++ {
		if user[i] < '0' || user[i] > '9' {
			return false
		}
	}
	return true
}

// CallerID is the number the call claims to come from: the From user if it
// is a number, else Remote-Party-ID's, else P-Asserted-Identity's. Source
// names which header it came from; ok is false when none carries a number.
func CallerID(req *sip.Request) (number, source string, ok bool) {
	if f := req.From(); f != nil && hasNumber(userOf(f.Address)) {
		return userOf(f.Address), "From", true
	}
	for _, name := range []string{"Remote-Party-ID", "P-Asserted-Identity"} {
		for _, h := range req.GetHeaders(name) {
			// a header may list several identities
			for _, v := range splitList(h.Value()) {
				var u sip.Uri
				if _, err := sip.ParseAddressValue(v, &u, nil); err != nil {
					continue
				}
				if hasNumber(userOf(u)) {
					return userOf(u), name, true
				}
			}
		}
	}
	return "", "", false
}

// splitList splits a comma-separated header value, keeping commas inside
// quotes and angle brackets.
func splitList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(v[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(v[start:]))
}

// MinMaxForwards is the lowest Max-Forwards a trunk accepts (483 below).
const MinMaxForwards = 20

// CheckMaxForwards applies the trunk's rule: missing means 70; below 20 is
// refused. It returns the value to send on (one less).
func CheckMaxForwards(req *sip.Request) (uint32, error) {
	mf := req.MaxForwards()
	if mf == nil {
		return 69, nil
	}
	if uint32(*mf) < MinMaxForwards {
		return 0, ErrTooManyHops
	}
	return uint32(*mf) - 1, nil
}

// TrunkDomain parses a termination host: "{prefix}.pstn.{domain}" or the
// localized "{prefix}.pstn.{edge}.{domain}". It returns the trunk's domain
// name as provisioned ({prefix}.pstn.{domain}) and the edge ("" when
// global); ok is false when host is not under the base domain's pstn.
func TrunkDomain(host, base string, edges []string) (domain, edge string, ok bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	base = strings.ToLower(base)
	suffix := "." + base
	if !strings.HasSuffix(host, suffix) {
		return "", "", false
	}
	rest := strings.TrimSuffix(host, suffix) // prefix.pstn[.edge]
	for _, e := range edges {
		if s := ".pstn." + strings.ToLower(e); strings.HasSuffix(rest, s) {
			prefix := strings.TrimSuffix(rest, s)
			if prefix == "" {
				return "", "", false
			}
			return prefix + ".pstn" + suffix, e, true
		}
	}
	if !strings.HasSuffix(rest, ".pstn") || rest == ".pstn" {
		return "", "", false
	}
	return host, "", true
}
