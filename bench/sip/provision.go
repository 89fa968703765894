package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/xtrunk/xtrunk/control/store"
)

// What the PBX dials and the store holds for it.
const (
	// Domain is the edge's base domain; the trunk is TrunkHost under it.
	Domain    = "example.net"
	TrunkHost = "bench.pstn.example.net"
	// CallerDID is the From number: a DID of the account, on the trunk.
	CallerDID = "+14155550100"
	// Called is the number every call dials.
	Called = "+14155550123"
)

// provisioned is the store the xtrunk target runs on: one account, one
// trunk (TrunkHost) whose IP ACL holds only the PBX's address, and
// CallerDID on it.
type provisioned struct {
	st      *store.Store
	dsn     string
	account string
	trunk   string
}

// provision creates the SQLite store at path through control/store, as
// the API would.
func provision(ctx context.Context, path string, pbx netip.Addr) (p *provisioned, err error) {
	dsn := "sqlite:" + path
	st, err := store.Open(ctx, dsn, store.Options{Domain: Domain})
	if err != nil {
		return nil, fmt.Errorf("sip: store: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, st.Close())
		}
	}()
	acct, _, err := st.Bootstrap(ctx, "", "", "xtrunk bench", nil)
	if err != nil {
		return nil, fmt.Errorf("sip: account: %w", err)
	}
	a := acct.Sid
	tr := store.NewTrunk(a)
	tr.FriendlyName = "bench"
	tr.DomainName = TrunkHost
	if tr, err = st.CreateTrunk(ctx, tr); err != nil {
		return nil, fmt.Errorf("sip: trunk: %w", err)
	}
	acl, err := st.CreateIPAccessControlList(ctx, a, "pbx")
	if err != nil {
		return nil, fmt.Errorf("sip: IP ACL: %w", err)
	}
	if _, err := st.CreateIPAddress(ctx, store.IPAddress{AccountSid: a, ListSid: acl.Sid, FriendlyName: "pbx",
		IPAddress: pbx.String(), CIDRPrefixLength: pbx.BitLen()}); err != nil {
		return nil, fmt.Errorf("sip: IP ACL entry: %w", err)
	}
	if _, err := st.AttachIPAccessControlList(ctx, a, tr.Sid, acl.Sid); err != nil {
		return nil, fmt.Errorf("sip: IP ACL: %w", err)
	}
	n, err := st.CreatePhoneNumber(ctx, store.NewPhoneNumber(a, CallerDID))
	if err != nil {
		return nil, fmt.Errorf("sip: DID: %w", err)
	}
	if _, err := st.AssociatePhoneNumber(ctx, a, tr.Sid, n.Sid); err != nil {
		return nil, fmt.Errorf("sip: DID: %w", err)
	}
	return &provisioned{st: st, dsn: dsn, account: a, trunk: tr.Sid}, nil
}

// cdrs counts the account's CDRs and those among them that completed.
func (p *provisioned) cdrs(ctx context.Context) (total, completed int, err error) {
	page := store.Page{Size: store.MaxPageSize}
	for {
		calls, next, err := p.st.ListCalls(ctx, p.account, store.CallFilter{}, page)
		if err != nil {
			return total, completed, fmt.Errorf("sip: CDRs: %w", err)
		}
		for _, c := range calls {
			total++
			if c.Status == "completed" {
				completed++
			}
		}
		if next == "" || len(calls) == 0 {
			return total, completed, nil
		}
		page = store.Page{Size: store.MaxPageSize, Token: next}
	}
}

func (p *provisioned) close() error { return p.st.Close() }
