package signalling

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtrunk/xtrunk/control/domain"
)

// A target a tenant names — an origination URI, its PBX's 3xx Contact, a
// disaster-recovery <Sip>, a REFER's URI — is dialled from the edge's
// address, which carriers trust and the edge's own services answer. Its
// address is vetted as it is dialled, the one sipgo resolved (a literal,
// A/AAAA or SRV), through the fork's Request.SetDialCheck: a name cannot
// pass a check with one answer and be dialled with another.

// tenantDialCheck is the dial check of a tenant's target on trunk, named
// via (viaOriginationURI…): it refuses (ErrTargetRefused) an address no
// call may go to (loopback, unspecified, link-local, multicast,
// broadcast), one of the edge's own (isOwnAddr: listeners, relay
// interfaces, the host's interfaces, --advertise), and a carrier gateway
// (ErrTargetIsCarrier: a --carrier gateway's address or one in
// --carrier-source), which it counts in
// xtrunk_sip_carrier_targets_refused_total.
func (s *Server) tenantDialCheck(trunk, via string) func(netip.Addr) error {
	return func(a netip.Addr) error {
		a = a.Unmap()
		if r := domain.SpecialAddr(a); r != "" {
			return fmt.Errorf("%w: %s is a %s address", ErrTargetRefused, a, r)
		}
		if s.isOwnAddr(a) {
			return fmt.Errorf("%w: %s is an address of the edge", ErrTargetRefused, a)
		}
		if s.isCarrier(a) {
			s.carrierTargetRefused(trunk, via, ErrTargetIsCarrier)
			return fmt.Errorf("%w: %s", ErrTargetIsCarrier, a)
		}
		return nil
	}
}

// carrierAddrsFresh is how old the --carrier gateways' resolved
// addresses may be before they are looked up again (in the background:
// the call in hand uses the previous answer).
const carrierAddrsFresh = 30 * time.Second

// carrierAddrCache is the --carrier gateways' addresses: a literal host
// as it is, a name as it last resolved. The zero value is ready.
type carrierAddrCache struct {
	mu  sync.Mutex // one lookup at a time
	cur atomic.Pointer[carrierAddrSet]
}

// carrierAddrSet is one reading: for the settings in force then (a
// reload with other carriers reads them again).
type carrierAddrSet struct {
	of     *settings
	at     time.Time
	byHost map[string][]netip.Addr // each gateway host's addresses, unmapped
}

// has reports whether a is an address of a --carrier gateway. The first
// use after a start or a reload resolves the names in hand, in parallel
// (each bounded by resolveTimeout); later a stale set is refreshed in the
// background.
func (c *carrierAddrCache) has(s *Server, a netip.Addr) bool {
	live := s.settings()
	if live == nil {
		return false
	}
	set := c.cur.Load()
	switch {
	case set == nil || set.of != live:
		c.mu.Lock()
		set = c.refreshLocked(s, live, false)
		c.mu.Unlock()
	case time.Since(set.at) >= carrierAddrsFresh && c.mu.TryLock():
		go func() {
			defer c.mu.Unlock()
			c.refreshLocked(s, live, true)
		}()
	}
	a = a.Unmap()
	for _, addrs := range set.byHost {
		if slices.Contains(addrs, a) {
			return true
		}
	}
	return false
}

// refreshLocked reads the gateways' addresses unless a reading for live
// fresher than carrierAddrsFresh exists (force: even then); c.mu is
// held. A name that does not resolve now keeps the addresses it had.
func (c *carrierAddrCache) refreshLocked(s *Server, live *settings, force bool) *carrierAddrSet {
	prev := c.cur.Load()
	if prev != nil && prev.of == live && !force && time.Since(prev.at) < carrierAddrsFresh {
		return prev
	}
	next := &carrierAddrSet{of: live, at: time.Now(), byHost: map[string][]netip.Addr{}}
	r := s.resolver
	if r == nil {
		r = net.DefaultResolver
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	var names []string
	for _, t := range live.carriers {
		host := strings.ToLower(strings.TrimSuffix(strings.Trim(t.Value.host, "[]"), "."))
		if a, err := netip.ParseAddr(host); err == nil {
			next.byHost[host] = []netip.Addr{a.Unmap()}
		} else if !slices.Contains(names, host) {
			names = append(names, host)
		}
	}
	for _, host := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(s.lifetime(), resolveTimeout)
			ips, err := r.LookupNetIP(ctx, "ip", host)
			cancel()
			var addrs []netip.Addr
			if err != nil && prev != nil {
				addrs = prev.byHost[host] // keep what it had
			}
			for _, ip := range ips {
				if a := ip.Unmap(); !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
			mu.Lock()
			next.byHost[host] = addrs
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.cur.Store(next)
	return next
}
