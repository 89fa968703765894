package domain

import (
	"net/netip"
	"strconv"
	"strings"
)

// parseHostPort reads host[:port] or [IPv6][:port], the host an IPv4
// address, an IPv6 literal or a domain name that CheckOriginationHost
// accepts, the port 1-65535 (0: none given).
func parseHostPort(rest string) (string, int, error) {
	host, port := rest, ""
	bracketed := strings.HasPrefix(rest, "[")
	if bracketed {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", 0, badURL("has an unterminated IPv6 literal")
		}
		host, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, badURL("host %q is not an IPv6 address", host)
		}
		if rest[end+1:] != "" && !strings.HasPrefix(rest[end+1:], ":") {
			return "", 0, badURL("has garbage after the IPv6 literal")
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if port == "" {
			return "", 0, badURL("has an empty port")
		}
	}
	p := 0
	if port != "" {
		var err error
		p, err = strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || port[0] == '+' {
			return "", 0, badURL("port must be 1-65535")
		}
	}
	if !bracketed && !validHost(host) {
		return "", 0, badURL("host %q must be an IPv4 address or a domain name", host)
	}
	if err := CheckOriginationHost(host); err != nil {
		return "", 0, err
	}
	return host, p, nil
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
		if !ValidLabel(l) {
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

// SpecialAddr names the class of an address no call may be sent to
// (loopback, unspecified, link-local, multicast, broadcast), or returns
// "". A mapped IPv4 address is classed as the IPv4 one.
func SpecialAddr(a netip.Addr) string { return specialAddr(a.Unmap()) }

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
