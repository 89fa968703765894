package domain

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxSipURL bounds an origination URI's length in characters.
const MaxSipURL = 512

// SipURL is a parsed origination URI: sip:[user@]host[:port][;params][?headers].
type SipURL struct {
	Secure  bool // sips:
	User    string
	Host    string // IP literal (IPv6 without brackets) or FQDN
	Port    int    // 0: default
	Params  [][2]string
	Headers [][2]string // X-... headers to add to every call
}

// Param returns the value of URI parameter name (case-insensitive) and
// whether it is present.
func (u SipURL) Param(name string) (string, bool) {
	for _, p := range u.Params {
		if strings.EqualFold(p[0], name) {
			return p[1], true
		}
	}
	return "", false
}

// Edge is the edge an origination URI asks its calls to leave from:
// ;edge=NAME, else ;region= (legacy codes mapped), else "" (the edge the
// call arrived at).
func (u SipURL) Edge() string {
	if v, ok := u.Param("edge"); ok && v != "" {
		return strings.ToLower(v)
	}
	if v, ok := u.Param("region"); ok && v != "" {
		return EdgeOfRegion(v)
	}
	return ""
}

// ParseSipURL parses and validates an origination URI. Only sip: (and
// sips:, which origination handles as sip: with transport=tls) are
// accepted; transport must be udp, tcp or tls; edge/region must name one of
// edges when edges is non-empty (a legacy region code, us1 … au1, names
// its edge: EdgeOfRegion); headers must be X- headers; the host may not be
// this machine or an address nobody answers at (CheckOriginationHost).
func ParseSipURL(s string, edges []string) (SipURL, error) {
	var u SipURL
	if err := CheckText("SipUrl", s, MaxSipURL); err != nil {
		return SipURL{}, err
	}
	rest := s
	switch lower := strings.ToLower(s); {
	case strings.HasPrefix(lower, "sip:"):
		rest = s[4:]
	case strings.HasPrefix(lower, "sips:"):
		rest, u.Secure = s[5:], true
	default:
		return SipURL{}, badURL("must be a sip: URI")
	}
	var err error
	if rest, u.Headers, err = cutHeaders(rest); err != nil {
		return SipURL{}, err
	}
	if rest, u.Params, err = cutParams(rest, edges); err != nil {
		return SipURL{}, err
	}
	if rest, u.User, err = cutUser(rest); err != nil {
		return SipURL{}, err
	}
	if u.Host, u.Port, err = parseHostPort(rest); err != nil {
		return SipURL{}, err
	}
	return u, nil
}

// badURL is a rule violation of an origination URI.
func badURL(format string, args ...any) error {
	return invalid("SipUrl", "SipUrl "+format, args...)
}

// cutHeaders splits "?X-A=b&X-C=d" off the end of rest: only X- headers,
// values percent-decoded and free of line breaks and NUL.
func cutHeaders(rest string) (string, [][2]string, error) {
	i := strings.IndexByte(rest, '?')
	if i < 0 {
		return rest, nil, nil
	}
	var headers [][2]string
	for _, h := range strings.Split(rest[i+1:], "&") {
		name, val, _ := strings.Cut(h, "=")
		if len(name) < 3 || !strings.EqualFold(name[:2], "X-") || !isToken(name) {
			return "", nil, badURL("header %q: only X- headers may be added", name)
		}
		v, err := url.PathUnescape(val)
		if err != nil || strings.ContainsAny(v, "\r\n\x00") || !utf8.ValidString(v) {
			return "", nil, badURL("header %q has an invalid value", name)
		}
		headers = append(headers, [2]string{name, v})
	}
	return rest[:i], headers, nil
}

// cutParams splits ";name=value..." off the end of rest, checking
// transport and edge/region (against edges when there are any).
func cutParams(rest string, edges []string) (string, [][2]string, error) {
	i := strings.IndexByte(rest, ';')
	if i < 0 {
		return rest, nil, nil
	}
	var params [][2]string
	for _, p := range strings.Split(rest[i+1:], ";") {
		name, val, _ := strings.Cut(p, "=")
		if !isToken(name) || (val != "" && !isToken(val)) {
			return "", nil, badURL("parameter %q is malformed", p)
		}
		switch strings.ToLower(name) {
		case "transport":
			if v := strings.ToLower(val); v != "udp" && v != "tcp" && v != "tls" {
				return "", nil, badURL("transport must be udp, tcp or tls")
			}
		case "edge", "region":
			if val == "" {
				return "", nil, badURL("%s needs a value", name)
			}
			e := strings.ToLower(val)
			if strings.EqualFold(name, "region") {
				e = EdgeOfRegion(val) // legacy us1 … au1
			}
			if len(edges) > 0 && !containsFold(edges, e) {
				return "", nil, badURL("edge %q is not one of %s", val, strings.Join(edges, ", "))
			}
		}
		params = append(params, [2]string{name, val})
	}
	return rest[:i], params, nil
}

// cutUser splits "user@" off the front of rest.
func cutUser(rest string) (string, string, error) {
	i := strings.LastIndexByte(rest, '@')
	if i < 0 {
		return rest, "", nil
	}
	user := rest[:i]
	if user == "" {
		return "", "", badURL("has an empty user part")
	}
	for j := 0; j < len(user); j++ {
		c := user[j]
		if !(isTokenChar(c) || strings.IndexByte("&=+$,/%()", c) >= 0) {
			return "", "", badURL("user part has an invalid character %q", c)
		}
	}
	return rest[i+1:], user, nil
}
