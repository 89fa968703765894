package signalling

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/xtrunk/xtrunk/control/store"
)

// Test provisioning: one account with three trunks under example.net.
const (
	testDomain   = "example.net"
	acmeHost     = "acme.pstn.example.net"   // credential list
	aclHost      = "open.pstn.example.net"   // IP ACL 127.0.0.0/8 + 198.18.0.0/15
	deniedHost   = "closed.pstn.example.net" // IP ACL 10.0.0.0/8
	noAuthHost   = "noauth.pstn.example.net" // neither
	testUser     = "pbx1"
	testPassword = "Str0ngPassw0rd!2026"
	testDID      = "+14155550100"
	testVerified = "+14155550199"
)

type provisioned struct {
	st      *store.Store
	dsn     string
	account string
	acme    store.Trunk
}

func provision(t testing.TB) provisioned {
	t.Helper()
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "xtrunk.db")
	st, err := store.Open(ctx, dsn, store.Options{Domain: testDomain})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acct, _, err := st.Bootstrap(ctx, "", "", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	a := acct.Sid
	mk := func(host string) store.Trunk {
		tr := store.NewTrunk(a)
		tr.FriendlyName = host
		tr.DomainName = host
		tr, err := st.CreateTrunk(ctx, tr)
		if err != nil {
			t.Fatalf("trunk %s: %v", host, err)
		}
		return tr
	}
	acme, open, closed := mk(acmeHost), mk(aclHost), mk(deniedHost)
	mk(noAuthHost)
	cl, err := st.CreateCredentialList(ctx, a, "pbx")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateCredential(ctx, a, cl.Sid, testUser, testPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AttachCredentialList(ctx, a, acme.Sid, cl.Sid); err != nil {
		t.Fatal(err)
	}
	acl := func(tr store.Trunk, cidrs ...[2]any) {
		l, err := st.CreateIPAccessControlList(ctx, a, tr.FriendlyName)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cidrs {
			if _, err := st.CreateIPAddress(ctx, store.IPAddress{AccountSid: a, ListSid: l.Sid, FriendlyName: "net", IPAddress: c[0].(string), CIDRPrefixLength: c[1].(int)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.AttachIPAccessControlList(ctx, a, tr.Sid, l.Sid); err != nil {
			t.Fatal(err)
		}
	}
	acl(open, [2]any{"127.0.0.0", 8}, [2]any{"198.18.0.0", 15})
	acl(closed, [2]any{"10.0.0.0", 8})
	n, err := st.CreatePhoneNumber(ctx, store.NewPhoneNumber(a, testDID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AssociatePhoneNumber(ctx, a, acme.Sid, n.Sid); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RequestCallerID(ctx, a, testVerified, "verified", true); err != nil {
		t.Fatal(err)
	}
	acme, err = st.Trunk(ctx, a, acme.Sid)
	if err != nil {
		t.Fatal(err)
	}
	return provisioned{st: st, dsn: dsn, account: a, acme: acme}
}
