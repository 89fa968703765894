package signalling

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
)

// aclReloadBackoff is how long a failed load of the ACL set is not
// retried (the old set, or none, stays in use).
const aclReloadBackoff = 5 * time.Second

// aclSet is every entry of every IP ACL attached to any trunk: the
// sources the abuse guard never bans. It is read in one query whenever
// the cache's generation moves (a store change), and answers by one map
// lookup per prefix length in use.
type aclSet struct {
	st    *store.Store
	cache *Cache
	log   zerolog.Logger

	mu     sync.Mutex
	loaded bool
	gen    uint64
	retry  time.Time
	bits   []int // prefix lengths present, longest first
	nets   map[netip.Prefix]struct{}
}

func newACLSet(st *store.Store, c *Cache, log zerolog.Logger) *aclSet {
	return &aclSet{st: st, cache: c, log: log}
}

// contains reports whether addr is in some trunk's IP ACL.
func (a *aclSet) contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	a.cache.mu.Lock()
	gen := a.cache.gen
	a.cache.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if (!a.loaded || a.gen != gen) && !time.Now().Before(a.retry) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		nets, err := a.load(ctx)
		cancel()
		if err != nil {
			a.log.Warn().Err(err).Msg("IP ACL addresses not loaded: the abuse guard exempts the ones known before")
			a.retry = time.Now().Add(aclReloadBackoff)
		} else {
			a.loaded, a.gen, a.nets = true, gen, nets
			a.bits = a.bits[:0]
			seen := map[int]bool{}
			for p := range nets {
				if !seen[p.Bits()] {
					seen[p.Bits()] = true
					a.bits = append(a.bits, p.Bits())
				}
			}
			sort.Sort(sort.Reverse(sort.IntSlice(a.bits)))
		}
	}
	for _, b := range a.bits {
		if p, err := addr.Prefix(b); err == nil {
			if _, ok := a.nets[p]; ok {
				return true
			}
		}
	}
	return false
}

// load reads the entries of the ACLs attached to trunks. The store has
// no call for "all trunks' ACLs", so this reads its tables directly (the
// same join TrunkIPAddresses makes, without the trunk).
func (a *aclSet) load(ctx context.Context) (map[netip.Prefix]struct{}, error) {
	rows, err := a.st.DB().QueryContext(ctx, `SELECT DISTINCT i.ip_address, i.cidr_prefix_length FROM ip_addresses i
		JOIN trunk_ip_access_control_lists m ON m.acl_sid = i.acl_sid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[netip.Prefix]struct{}{}
	for rows.Next() {
		var ip string
		var bits int
		if err := rows.Scan(&ip, &bits); err != nil {
			return nil, err
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		p, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		out[p] = struct{}{}
	}
	return out, rows.Err()
}
