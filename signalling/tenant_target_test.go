package signalling

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTenantDialCheck: the address a tenant's target is about to be
// dialled at is refused when no call may go there (loopback, link-local
// such as cloud metadata, multicast, unspecified), when it is the edge's
// own, and when it is a carrier's — a --carrier gateway's address
// (written as an address, mapped or not, or as a name that resolves to
// it) or one in --carrier-source — which is counted. A PBX elsewhere,
// private or public, passes.
func TestTenantDialCheck(t *testing.T) {
	s := redirectServer(t, Config{Domain: "example.net",
		Carriers:       []string{"sip:203.0.113.9", "sip:localhost.:5099", "sip:gw.unresolvable.test"},
		CarrierSources: []string{"198.18.2.0/24"}})
	s.hostAddrs.list = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("198.18.9.9"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	s.carrierTargets = newCarrierTargetMetric(prometheus.NewRegistry())
	check := s.tenantDialCheck("TKx", viaOriginationURI)
	for addr, want := range map[string]error{
		"198.18.1.3":         nil,
		"10.20.30.40":        nil,
		"2001:db8::5":        nil,
		"127.0.0.1":          ErrTargetRefused,
		"::1":                ErrTargetRefused,
		"0.0.0.0":            ErrTargetRefused,
		"169.254.169.254":    ErrTargetRefused,
		"fe80::1":            ErrTargetRefused,
		"239.1.2.3":          ErrTargetRefused,
		"198.18.9.9":         ErrTargetRefused, // the host's own
		"203.0.113.9":        ErrTargetIsCarrier,
		"::ffff:203.0.113.9": ErrTargetIsCarrier,
		"198.18.2.7":         ErrTargetIsCarrier,
	} {
		err := check(netip.MustParseAddr(addr))
		switch {
		case want == nil && err != nil:
			t.Errorf("%s: %v, want allowed", addr, err)
		case want != nil && !errors.Is(err, want):
			t.Errorf("%s: %v, want %v", addr, err, want)
		case errors.Is(err, ErrTargetIsCarrier) != errors.Is(want, ErrTargetIsCarrier):
			t.Errorf("%s: %v: carrier or not, want %v", addr, err, want)
		}
	}
	if n := testutil.ToFloat64(s.carrierTargets.WithLabelValues("TKx", viaOriginationURI)); n != 3 {
		t.Errorf("xtrunk_sip_carrier_targets_refused_total{via=origination_uri} = %v, want 3", n)
	}
	// a gateway given by name counts by the address it resolves to
	// ("localhost." from /etc/hosts: the test resolver sends no DNS query)
	if !s.carrierAddrs.has(s, netip.MustParseAddr("127.0.0.1")) && !s.carrierAddrs.has(s, netip.MustParseAddr("::1")) {
		t.Error("the gateway named localhost. is not known by its address")
	}
	if !s.carrierHost("LOCALHOST") || !s.carrierHost("[::ffff:203.0.113.9]") || s.carrierHost("198.18.1.3") {
		t.Error("carrierHost: a gateway's name in another case, its mapped address, or a PBX misread")
	}
}

// TestCarrierAddrsKeptPerName: a gateway name that stops resolving keeps
// the addresses it had, and only those: refreshes during a DNS outage do
// not grow the set (an early version kept the whole previous set per
// failing name, doubling it every refresh).
func TestCarrierAddrsKeptPerName(t *testing.T) {
	s := redirectServer(t, Config{Domain: "example.net",
		Carriers: []string{"sip:203.0.113.9", "sip:localhost", "sip:gw-a.unresolvable.test", "sip:gw-b.unresolvable.test"}})
	c := &s.carrierAddrs
	count := func() int {
		n := 0
		for _, addrs := range c.cur.Load().byHost {
			n += len(addrs)
		}
		return n
	}
	if !c.has(s, netip.MustParseAddr("203.0.113.9")) {
		t.Fatal("the literal gateway is not known")
	}
	first := count()
	c.cur.Load().byHost["gw-a.unresolvable.test"] = []netip.Addr{netip.MustParseAddr("198.51.100.7")} // as if it had resolved once
	for range 12 {
		c.mu.Lock()
		c.refreshLocked(s, s.settings(), true)
		c.mu.Unlock()
	}
	if n := count(); n != first+1 {
		t.Errorf("%d addresses after 12 refreshes with two names failing, want %d", n, first+1)
	}
	if !c.has(s, netip.MustParseAddr("198.51.100.7")) {
		t.Error("a name that stopped resolving lost the address it had")
	}
}

// BenchmarkTenantDialCheck is what vetting an origination URI's address
// adds to a call: a PBX's address that passes every check (host
// addresses and carrier addresses cached, as under load).
func BenchmarkTenantDialCheck(b *testing.B) {
	s := redirectServer(b, Config{Domain: "example.net",
		Carriers: []string{"sip:203.0.113.9", "sip:203.0.113.10"}, CarrierSources: []string{"198.18.2.0/24", "203.0.113.0/28"}})
	check := s.tenantDialCheck("TKx", viaOriginationURI)
	pbx := netip.MustParseAddr("198.18.1.3")
	b.ReportAllocs()
	for b.Loop() {
		if err := check(pbx); err != nil {
			b.Fatal(err)
		}
	}
}
