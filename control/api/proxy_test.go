package api

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	s := &Server{proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"10.1.1.1:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"10.1.1.1:4000", []string{"203.0.113.9, 198.51.100.7"}, "198.51.100.7"},     // the rightmost untrusted
		{"10.1.1.1:4000", []string{"198.51.100.7, 10.2.2.2"}, "198.51.100.7"},        // through two proxies
		{"10.1.1.1:4000", []string{"198.51.100.7", "10.2.2.2"}, "198.51.100.7"},      // two headers
		{"10.1.1.1:4000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},           // mapped
		{"10.1.1.1:4000", []string{"198.51.100.7, junk, 10.2.2.2"}, "10.1.1.1:4000"}, // a bad hop: nothing left of it
		{"10.1.1.1:4000", nil, "10.1.1.1:4000"},                                      // no header: the proxy
		{"10.1.1.1:4000", []string{"10.3.3.3"}, "10.1.1.1:4000"},                     // only proxies
		{"198.51.100.99:4000", []string{"203.0.113.1"}, "198.51.100.99:4000"},        // not from a proxy: ignored
		{"[2001:db8::1]:443", []string{"2001:db8:1::5, 2600::1"}, "2600::1"},         // IPv6
		{"unix-socket", []string{"198.51.100.7"}, "unix-socket"},                     // no address
	} {
		hr := &http.Request{RemoteAddr: c.peer, Header: http.Header{}}
		for _, v := range c.xff {
			hr.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(hr); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %q, want %q", c.peer, c.xff, got, c.want)
		}
	}
	mapped, err := ParseTrustedProxies([]string{"::ffff:10.0.0.0/104"})
	if err != nil {
		t.Fatal(err)
	}
	if got := (&Server{proxies: mapped}).clientAddr(&http.Request{RemoteAddr: "10.1.1.1:1", Header: http.Header{"X-Forwarded-For": {"198.51.100.7"}}}); got != "198.51.100.7" {
		t.Errorf("a proxy given as an IPv4-mapped CIDR: %q, want the client", got)
	}
	if got := (&Server{}).clientAddr(&http.Request{RemoteAddr: "10.1.1.1:1", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}); got != "10.1.1.1:1" {
		t.Errorf("no trusted proxies: %q", got)
	}
}

// FuzzClientAddr: any header gives the peer or an address parsed from it;
// nothing panics.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.1.1.1:4000", "198.51.100.7, 10.2.2.2")
	f.Add("[2001:db8::1]:1", "fe80::1%eth0,,")
	s := &Server{proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := s.clientAddr(&http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}}})
		if got == peer {
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil || s.trustedProxy(a) {
			t.Fatalf("peer %q, xff %q: client %q", peer, xff, got)
		}
	})
}
