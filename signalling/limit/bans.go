package limit

import (
	"net/netip"
	"sort"
	"time"
)

// Ban is one ban in force, for the operator's console (xtrunk ctl bans).
type Ban struct {
	Source string    `json:"source"` // an address, or a /24 or /64 prefix
	Kind   string    `json:"kind"`   // auth, flood or prefix
	Until  time.Time `json:"until"`
}

// Bans lists the bans in force now, sources then prefixes, each sorted.
// It walks every entry of the ban tables: for an operator's request, not
// for a request path.
func (g *Guard) Bans() []Ban {
	now := g.now().UnixNano()
	var out []Ban
	g.bans.eachShard(func(sh *lruShard[netip.Addr, ban]) {
		sweepBans(sh, now)
		for k, j := range sh.idx {
			b := sh.ents[j].val
			if now >= b.until {
				continue
			}
			kind := "flood"
			if b.auth {
				kind = "auth"
			}
			out = append(out, Ban{Source: k.String(), Kind: kind, Until: time.Unix(0, b.until).UTC()})
		}
	})
	sort.Slice(out, func(a, b int) bool { return out[a].Source < out[b].Source })
	n := len(out)
	g.prefixes.eachShard(func(sh *lruShard[netip.Prefix, int64]) {
		sweepUntil(sh, now)
		for k, j := range sh.idx {
			if until := sh.ents[j].val; now < until {
				out = append(out, Ban{Source: k.String(), Kind: "prefix", Until: time.Unix(0, until).UTC()})
			}
		}
	})
	sort.Slice(out[n:], func(a, b int) bool { return out[n+a].Source < out[n+b].Source })
	return out
}

// Unban lifts the ban on addr (an address or a banned prefix) and forgets
// its authentication failures and recent request rate, so that its next
// request is not banned again at once. It reports whether a ban was
// lifted.
func (g *Guard) Unban(s string) bool {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		sh := g.prefixes.shard(p)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		_, ok := sh.idx[p]
		sh.remove(p)
		return ok
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	sh := g.bans.shard(addr)
	sh.mu.Lock()
	_, ok := sh.idx[addr]
	sh.remove(addr)
	sh.mu.Unlock()
	fsh := g.fails.shard(addr)
	fsh.mu.Lock()
	fsh.remove(addr)
	fsh.mu.Unlock()
	ssh := g.src.shard(addr)
	ssh.mu.Lock()
	if src := ssh.peek(addr); src != nil && g.now().UnixNano() < src.banned {
		ok = true // a flood ban the full bans table had pushed out: Check still held it
	}
	ssh.remove(addr)
	ssh.mu.Unlock()
	return ok
}
