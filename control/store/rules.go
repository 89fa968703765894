package store

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits and enumerations of the provisioning model (REQUIREMENTS §1).
const (
	MaxOriginationURLs = 10
	MaxFriendlyName    = 64
	MaxURL             = 1024
	MaxSipURL          = 512
	MaxUsername        = 32
	MinPassword        = 12
	MaxPassword        = 128
	MinPriority        = 0
	MaxPriority        = 65535
	MinWeight          = 1
	MaxWeight          = 65535
	DefaultPriority    = 10
	DefaultWeight      = 10
)

// Trunk enumerations.
var (
	TransferModes     = []string{"disable-all", "enable-all", "sip-only"}
	TransferCallerIDs = []string{"from-transferee", "from-transferor"}
	RecordingModes    = []string{"do-not-record", "record-from-ringing", "record-from-answer", "record-from-ringing-dual", "record-from-answer-dual"}
	RecordingTrims    = []string{"do-not-trim", "trim-silence"}
	HTTPMethods       = []string{"GET", "POST"}
)

func oneOf(param, v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return invalid(param, "%s must be one of %s", param, strings.Join(allowed, ", "))
}

// CheckText rejects what no text column may hold: invalid UTF-8 and NUL
// (PostgreSQL refuses both; SQLite would store them and hand them back).
func CheckText(param, v string, max int) error {
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return invalid(param, "%s is not valid text", param)
	}
	if max > 0 && utf8.RuneCountInString(v) > max {
		return invalid(param, "%s is longer than %d characters", param, max)
	}
	return nil
}

// CheckFriendlyName: optional, at most 64 characters.
func CheckFriendlyName(v string) error { return CheckText("FriendlyName", v, MaxFriendlyName) }

// CheckHTTPURL accepts "" (unset) or an absolute http(s) URL.
func CheckHTTPURL(param, v string) error {
	if v == "" {
		return nil
	}
	if err := CheckText(param, v, MaxURL); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(param, "%s must be an absolute http or https URL", param)
	}
	return nil
}

// CheckHTTPMethod accepts GET or POST (case-insensitively); it returns the
// canonical upper-case form.
func CheckHTTPMethod(param, v string) (string, error) {
	m := strings.ToUpper(v)
	if err := oneOf(param, m, HTTPMethods); err != nil {
		return "", err
	}
	return m, nil
}

// ValidE164 reports whether s is an E.164 number: '+', a non-zero digit,
// and at most 15 digits in all.
func ValidE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckE164 is ValidE164 as a Twilio-coded error.
func CheckE164(param, s string) error {
	if !ValidE164(s) {
		return invalidCode(CodePhoneInvalid, param, "The %s %q is not a valid E.164 number (+ and up to 15 digits)", param, s)
	}
	return nil
}

// CheckPassword enforces Twilio's strong-password rule for SIP credentials:
// at least 12 characters, at least one digit, and both upper- and lower-case
// letters.
func CheckPassword(p string) error {
	if err := CheckText("Password", p, MaxPassword); err != nil {
		return err
	}
	var digit, upper, lower bool
	for _, r := range p {
		switch {
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		}
	}
	if utf8.RuneCountInString(p) < MinPassword || !digit || !upper || !lower {
		return invalid("Password", "Password is not strong enough: it needs at least %d characters, a digit, an upper-case and a lower-case letter", MinPassword)
	}
	return nil
}

// CheckUsername: 1 to 32 characters that can travel in a digest
// Authorization header and cannot split the HA1 input (no ':', '"', '\\',
// spaces or controls).
func CheckUsername(u string) error {
	if u == "" || len(u) > MaxUsername {
		return invalid("Username", "Username must be 1 to %d characters", MaxUsername)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-_.!~*'()&=+$,;?/%#@", c) >= 0
		if !ok {
			return invalid("Username", "Username may contain letters, digits and -_.!~*'()&=+$,;?/%%#@ only")
		}
	}
	return nil
}

// CheckDomainName validates a trunk's termination SIP URI host against the
// deployment's base domain: it must be {prefix}.pstn.{base}, the prefix one
// or more DNS labels of letters, digits and dashes. It returns the
// lower-cased name.
func CheckDomainName(name, base string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	suffix := ".pstn." + strings.ToLower(base)
	if len(name) > 253 || !strings.HasSuffix(name, suffix) || len(name) == len(suffix) {
		return "", invalidCode(CodeInvalidDomain, "DomainName", "DomainName must be {prefix}%s", suffix)
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, suffix), ".") {
		if !validLabel(label) {
			return "", invalidCode(CodeInvalidDomain, "DomainName", "DomainName label %q must be 1-63 letters, digits or dashes, not starting or ending with a dash", label)
		}
	}
	return name, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ParentDomain returns the domain a sub-domain hangs from:
// a.b.pstn.{base} -> b.pstn.{base}. ok is false for a top-level
// {prefix}.pstn.{base}.
func ParentDomain(name, base string) (parent string, ok bool) {
	suffix := ".pstn." + strings.ToLower(base)
	prefix := strings.TrimSuffix(name, suffix)
	i := strings.IndexByte(prefix, '.')
	if i < 0 || prefix == name {
		return "", false
	}
	return prefix[i+1:] + suffix, true
}

// TerminationHost maps the host of a termination Request-URI to the trunk
// domain it names and the edge it asks for: {prefix}.pstn.{base} (global)
// or {prefix}.pstn.{edge}.{base} (localized; edge one of edges). ok is
// false for anything else.
func TerminationHost(host, base string, edges []string) (domain, edge string, ok bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	base = strings.ToLower(base)
	if d, err := CheckDomainName(host, base); err == nil {
		return d, "", true
	}
	for _, e := range edges {
		e = strings.ToLower(e)
		suffix := ".pstn." + e + "." + base
		if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
			d := strings.TrimSuffix(host, suffix) + ".pstn." + base
			if _, err := CheckDomainName(d, base); err == nil {
				return d, e, true
			}
		}
	}
	return "", "", false
}

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

// ParseSipURL parses and validates an origination URI. Only sip: (and
// sips:, which origination handles as sip: with transport=tls) are
// accepted; transport must be udp, tcp or tls; edge/region must name one of
// edges when edges is non-empty (a legacy region code, us1 … au1, names
// its edge: EdgeOfRegion); headers must be X- headers.
func ParseSipURL(s string, edges []string) (SipURL, error) {
	var u SipURL
	bad := func(format string, args ...any) (SipURL, error) {
		return SipURL{}, invalid("SipUrl", "SipUrl "+format, args...)
	}
	if err := CheckText("SipUrl", s, MaxSipURL); err != nil {
		return u, err
	}
	rest := s
	switch lower := strings.ToLower(s); {
	case strings.HasPrefix(lower, "sip:"):
		rest = s[4:]
	case strings.HasPrefix(lower, "sips:"):
		rest, u.Secure = s[5:], true
	default:
		return bad("must be a sip: URI")
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		for _, h := range strings.Split(rest[i+1:], "&") {
			name, val, _ := strings.Cut(h, "=")
			if len(name) < 3 || !strings.EqualFold(name[:2], "X-") || !isToken(name) {
				return bad("header %q: only X- headers may be added", name)
			}
			v, err := url.PathUnescape(val)
			if err != nil || strings.ContainsAny(v, "\r\n\x00") || !utf8.ValidString(v) {
				return bad("header %q has an invalid value", name)
			}
			u.Headers = append(u.Headers, [2]string{name, v})
		}
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, ';'); i >= 0 {
		for _, p := range strings.Split(rest[i+1:], ";") {
			name, val, _ := strings.Cut(p, "=")
			if !isToken(name) || (val != "" && !isToken(val)) {
				return bad("parameter %q is malformed", p)
			}
			switch strings.ToLower(name) {
			case "transport":
				if err := oneOf("SipUrl", strings.ToLower(val), []string{"udp", "tcp", "tls"}); err != nil {
					return bad("transport must be udp, tcp or tls")
				}
			case "edge", "region":
				if val == "" {
					return bad("%s needs a value", name)
				}
				e := strings.ToLower(val)
				if strings.EqualFold(name, "region") {
					e = EdgeOfRegion(val) // legacy us1 … au1
				}
				if len(edges) > 0 && !containsFold(edges, e) {
					return bad("edge %q is not one of %s", val, strings.Join(edges, ", "))
				}
			}
			u.Params = append(u.Params, [2]string{name, val})
		}
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		u.User, rest = rest[:i], rest[i+1:]
		if u.User == "" {
			return bad("has an empty user part")
		}
		for j := 0; j < len(u.User); j++ {
			c := u.User[j]
			if !(isTokenChar(c) || strings.IndexByte("&=+$,/%()", c) >= 0) {
				return bad("user part has an invalid character %q", c)
			}
		}
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return bad("has an unterminated IPv6 literal")
		}
		host, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return bad("host %q is not an IPv6 address", host)
		}
		if rest[end+1:] != "" && !strings.HasPrefix(rest[end+1:], ":") {
			return bad("has garbage after the IPv6 literal")
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if port == "" {
			return bad("has an empty port")
		}
	}
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || port[0] == '+' {
			return bad("port must be 1-65535")
		}
		u.Port = p
	}
	if !strings.HasPrefix(rest, "[") && !validHost(host) {
		return bad("host %q must be an IPv4 address or a domain name", host)
	}
	if err := CheckOriginationHost(host); err != nil {
		return SipURL{}, err
	}
	u.Host = host
	return u, nil
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Is4()
	}
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(h), "."), ".")
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	// the last label of a domain name is not all digits (that would be a
	// malformed IPv4 address)
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-.!%*_+`'~", c) >= 0
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func containsFold(list []string, v string) bool {
	for _, e := range list {
		if strings.EqualFold(e, v) {
			return true
		}
	}
	return false
}

// ParseIPAddress validates an ACL entry: an IPv4 or IPv6 address, or an
// address/prefix CIDR (then cidr must be 0 or equal to the prefix). It
// returns the address text and the prefix length (32/128 when none).
func ParseIPAddress(ip string, cidr int) (string, int, error) {
	if err := CheckText("IpAddress", ip, 64); err != nil {
		return "", 0, err
	}
	if a, p, ok := strings.Cut(ip, "/"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 { // "/0" is not "no prefix given"
			return "", 0, invalid("IpAddress", "IpAddress %q is not an address or CIDR", ip)
		}
		if cidr != 0 && cidr != n {
			return "", 0, invalid("CidrPrefixLength", "CidrPrefixLength %d contradicts IpAddress %q", cidr, ip)
		}
		ip, cidr = a, n
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Zone() != "" {
		return "", 0, invalid("IpAddress", "IpAddress %q is not an IPv4 or IPv6 address", ip)
	}
	addr = addr.Unmap()
	bits := addr.BitLen()
	if cidr == 0 {
		cidr = bits
	}
	min := MinPrefixIPv4
	if addr.Is6() {
		min = MinPrefixIPv6
	}
	if cidr < min || cidr > bits {
		// A short prefix would trust a large part of the internet: one
		// tenant's 0.0.0.0/1 must not open the edge to half the world.
		return "", 0, invalid("CidrPrefixLength", "CidrPrefixLength must be %d-%d for %s", min, bits, addr)
	}
	return addr.String(), cidr, nil
}

// Shortest IP ACL prefixes accepted: an IPv4 /8 (a large carrier's
// block) and an IPv6 /32 (a provider's allocation).
const (
	MinPrefixIPv4 = 8
	MinPrefixIPv6 = 32
)

// CheckOriginationHost refuses origination URI hosts that would make the
// edge call itself or nobody: loopback, unspecified ("this network"),
// link-local, multicast and broadcast addresses, and the names localhost
// and *.localhost (RFC 6761). Private ranges stay allowed: private
// interconnects are a normal way to reach a customer's PBX.
func CheckOriginationHost(host string) error {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return invalid("SipUrl", "SipUrl host %q is this machine", host)
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return nil // a domain name: resolved at call time
	}
	if reason := specialAddr(a.Unmap()); reason != "" {
		return invalid("SipUrl", "SipUrl host %s is a %s address", host, reason)
	}
	return nil
}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

// specialAddr names the class of an address no origination may go to, or
// returns "".
func specialAddr(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified(), a.Is4() && thisNetwork.Contains(a):
		return "unspecified"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == broadcast:
		return "broadcast"
	}
	return ""
}
