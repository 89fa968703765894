package signalling

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/auth"
	"github.com/xtrunk/xtrunk/signalling/sipmsg"
)

// TrunkConfig is what a termination call needs from one trunk, read from
// the store once and kept until the store changes.
type TrunkConfig struct {
	Trunk store.Trunk
	ACL   []netip.Prefix // empty: no IP ACL attached
	Trial bool           // the trunk's account is a trial account
	// Active: the trunk's account and, for a subaccount, its main account
	// are active. A suspended or closed one takes no new calls; the cache
	// follows the change feed, so a status change applies within a second.
	Active bool

	mu      sync.Mutex
	secrets map[string]credEntry // username → HA1s (looked up on demand)
	callers map[string]bool      // number → DID of the account or verified caller ID
}

type credEntry struct {
	s  auth.Secret
	ok bool
}

// Cache holds TrunkConfigs by domain. Any change in the store's feed drops
// everything: provisioning is rare and a reload is a few queries, so
// exactness beats cleverness. Unknown domains are cached too, so a scanner
// cannot make every packet a query, but in an LRU of maxUnknownDomains: a
// scanner's names are unbounded, trunks are not.
type Cache struct {
	st    *store.Store
	base  string
	edges []string

	mu      sync.Mutex
	rev     int64
	gen     uint64                   // bumped on every invalidation
	trunks  map[string]*TrunkConfig  // provisioned trunks only
	numbers map[string]*NumberConfig // by E.164; nil value: not a DID on a trunk

	// unknown are domains that are no trunk (on their own lock).
	unknown *lru.Cache[string, struct{}]
}

// maxUnknownDomains bounds the remembered domains that are no trunk's.
const maxUnknownDomains = 10000

// NewCache makes a cache over st for trunks under base.
func NewCache(st *store.Store, base string, edges []string) *Cache {
	unknown, _ := lru.New[string, struct{}](maxUnknownDomains) // only fails for a size <= 0
	return &Cache{st: st, base: base, edges: edges, trunks: map[string]*TrunkConfig{}, unknown: unknown, numbers: map[string]*NumberConfig{}}
}

// Run follows the store's change feed until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	for rev := range c.st.Watch(ctx) {
		c.mu.Lock()
		if rev != c.rev {
			c.rev = rev
			c.gen++
			c.trunks = map[string]*TrunkConfig{}
			c.unknown.Purge()
			c.numbers = map[string]*NumberConfig{}
		}
		c.mu.Unlock()
	}
}

// Trunk finds the trunk for a Request-URI host; ok is false for a host
// that is not a provisioned trunk domain.
func (c *Cache) Trunk(ctx context.Context, host string) (*TrunkConfig, bool, error) {
	domain, _, ok := sipmsg.TrunkDomain(host, c.base, c.edges)
	if !ok {
		return nil, false, nil
	}
	c.mu.Lock()
	tc, hit := c.trunks[domain]
	gen := c.gen
	c.mu.Unlock()
	if hit {
		return tc, true, nil
	}
	if _, miss := c.unknown.Get(domain); miss {
		return nil, false, nil
	}
	tc, err := c.load(ctx, domain)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	if gen == c.gen { // not invalidated while loading
		if tc != nil {
			c.trunks[domain] = tc
		} else {
			c.unknown.Add(domain, struct{}{})
		}
	}
	c.mu.Unlock()
	return tc, tc != nil, nil
}

func (c *Cache) load(ctx context.Context, domain string) (*TrunkConfig, error) {
	t, err := c.st.TrunkByDomain(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	tc := &TrunkConfig{Trunk: t, secrets: map[string]credEntry{}, callers: map[string]bool{}}
	acct, err := c.st.Account(ctx, t.AccountSid)
	if err != nil {
		return nil, err
	}
	tc.Trial = strings.EqualFold(acct.Type, store.TypeTrial)
	if tc.Active, err = c.accountActive(ctx, acct); err != nil {
		return nil, err
	}
	if t.HasIPACL {
		ips, err := c.st.TrunkIPAddresses(ctx, t.Sid)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			a, err := netip.ParseAddr(ip.IPAddress)
			if err != nil {
				continue
			}
			p, err := a.Prefix(ip.CIDRPrefixLength)
			if err != nil {
				continue
			}
			if _, _, err := store.ParseIPAddress(p.String(), 0); err != nil {
				continue // wider than the store accepts today (an entry from before the /8, /32 rule): trusts nobody
			}
			tc.ACL = append(tc.ACL, p)
		}
	}
	return tc, nil
}

// accountActive reports whether a takes calls: it is active and so is its
// main account (suspending a reseller suspends its customers).
func (c *Cache) accountActive(ctx context.Context, a store.Account) (bool, error) {
	if a.Status != store.StatusActive {
		return false, nil
	}
	if a.OwnerSid == "" {
		return true, nil
	}
	owner, err := c.st.Account(ctx, a.OwnerSid)
	if err != nil {
		return false, err
	}
	return owner.Status == store.StatusActive, nil
}

// Allowed reports whether addr is in the trunk's IP ACL.
func (tc *TrunkConfig) Allowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range tc.ACL {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Secret is the digest lookup for the trunk's credential lists.
func (tc *TrunkConfig) Secret(ctx context.Context, st *store.Store, user string) (auth.Secret, bool) {
	tc.mu.Lock()
	e, hit := tc.secrets[user]
	tc.mu.Unlock()
	if hit {
		return e.s, e.ok
	}
	creds, err := st.TrunkCredentials(ctx, tc.Trunk.Sid, user)
	if err != nil {
		return auth.Secret{}, false // not cached: a store hiccup is not a verdict
	}
	if len(creds) > 0 {
		e = credEntry{s: auth.Secret{HA1MD5: creds[0].HA1MD5, HA1SHA256: creds[0].HA1SHA256}, ok: true}
	}
	tc.mu.Lock()
	if len(tc.secrets) < 10000 {
		tc.secrets[user] = e
	}
	tc.mu.Unlock()
	return e.s, e.ok
}

// CallerAllowed reports whether number is a DID of the trunk's account
// or one of its verified caller IDs.
func (tc *TrunkConfig) CallerAllowed(ctx context.Context, st *store.Store, number string) (bool, error) {
	tc.mu.Lock()
	v, hit := tc.callers[number]
	tc.mu.Unlock()
	if hit {
		return v, nil
	}
	ok, err := callerOfAccount(ctx, st, tc.Trunk.AccountSid, number)
	if err != nil {
		return false, err
	}
	tc.mu.Lock()
	if len(tc.callers) < 10000 {
		tc.callers[number] = ok
	}
	tc.mu.Unlock()
	return ok, nil
}

// callerOfAccount reports whether number is a DID of account or one of
// its verified caller IDs; another account's DID never is, even if
// account verified it (REQUIREMENTS §2.4).
func callerOfAccount(ctx context.Context, st *store.Store, account, number string) (bool, error) {
	n, err := st.PhoneNumberByE164(ctx, number)
	switch {
	case err == nil:
		return n.AccountSid == account, nil
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	return st.IsVerifiedCallerID(ctx, account, number)
}
