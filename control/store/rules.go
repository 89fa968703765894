package store

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xtrunk/xtrunk/control/domain"
)

// Limits and enumerations of the provisioning model (REQUIREMENTS §1).
const (
	MaxOriginationURLs = 10
	MaxFriendlyName    = 64
	MaxURL             = 1024
	MaxSipURL          = domain.MaxSipURL
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
	return fromDomain(domain.CheckText(param, v, max))
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

// CheckE164 is domain.ValidE164 as a Twilio-coded error.
func CheckE164(param, s string) error {
	if !domain.ValidE164(s) {
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
		if !domain.ValidLabel(label) {
			return "", invalidCode(CodeInvalidDomain, "DomainName", "DomainName label %q must be 1-63 letters, digits or dashes, not starting or ending with a dash", label)
		}
	}
	return name, nil
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

// SipURL is a parsed origination URI (the rules are control/domain's).
type SipURL = domain.SipURL

// ParseSipURL is domain.ParseSipURL with the store's errors: an invalid
// URI is ErrInvalid, Twilio code 20001, parameter SipUrl.
func ParseSipURL(s string, edges []string) (SipURL, error) {
	u, err := domain.ParseSipURL(s, edges)
	return u, fromDomain(err)
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
	if r, ok := ipv4Carrying(netip.PrefixFrom(addr, cidr)); ok {
		// 2001::/32 is a prefix of the IPv6 rule's width, and it is every
		// Teredo client of the IPv4 internet.
		return "", 0, invalid("CidrPrefixLength", "%s/%d would trust %s (%s, which carries IPv4 addresses in IPv6): an entry in it must be /%d or narrower, an IPv4 /%d at the widest",
			addr, cidr, r.Prefix, r.name, r.narrowest, MinPrefixIPv4)
	}
	return addr.String(), cidr, nil
}

// ipv4Range is an IPv6 range whose addresses carry IPv4 addresses: an
// ACL entry covering much of it trusts much of the IPv4 internet.
type ipv4Range struct {
	netip.Prefix
	name string
	// narrowest is the shortest prefix an entry inside the range may
	// have: the embedded IPv4 address's bits up to an IPv4 /8.
	narrowest int
}

// ipv4InIPv6 are the IPv6 ranges that carry IPv4 addresses (RFC 4291,
// 6145, 4380, 6052, 8215) in their last 32 bits; for the local-use
// NAT64 prefix the address may sit elsewhere (RFC 6052's layouts), and
// the last 32 bits are the narrowest.
var ipv4InIPv6 = []ipv4Range{
	{netip.MustParsePrefix("::/96"), "IPv4-compatible addresses", 96 + MinPrefixIPv4},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped addresses", 96 + MinPrefixIPv4},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated addresses (SIIT)", 96 + MinPrefixIPv4},
	{netip.MustParsePrefix("64:ff9b::/96"), "the NAT64 well-known prefix", 96 + MinPrefixIPv4},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "the local-use NAT64 prefix", 96 + MinPrefixIPv4},
	{netip.MustParsePrefix("2001::/32"), "Teredo", 96 + MinPrefixIPv4},
	// 6to4 (2002::/16) carries the IPv4 address in bits 16-47: the /32
	// minimum already holds an entry inside it to an IPv4 /16.
}

// ipv4Carrying returns the IPv4-carrying range p covers too much of: p
// contains the range, or lies inside it wider than its narrowest.
func ipv4Carrying(p netip.Prefix) (ipv4Range, bool) {
	if !p.Addr().Is6() {
		return ipv4Range{}, false
	}
	for _, r := range ipv4InIPv6 {
		if p.Overlaps(r.Prefix) && (p.Bits() < r.Bits() || p.Bits() < r.narrowest) {
			return r, true
		}
	}
	return ipv4Range{}, false
}

// Shortest IP ACL prefixes accepted: an IPv4 /8 (a large carrier's
// block) and an IPv6 /32 (a provider's allocation).
const (
	MinPrefixIPv4 = 8
	MinPrefixIPv6 = 32
)
