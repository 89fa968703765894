package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

var opts = store.Options{Domain: "example.net", Edges: []string{"ashburn", "dublin"}}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

type res[T any] struct {
	v   T
	err error
}

func r[T any](v T, err error) res[T] { return res[T]{v, err} }

func r3[T any](v []T, _ string, err error) res[[]T] { return res[[]T]{v, err} }

func (x res[T]) must(t *testing.T) T {
	t.Helper()
	if x.err != nil {
		t.Fatal(x.err)
	}
	return x.v
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, kind error, code int) {
	t.Helper()
	var se *store.Error
	if !errors.Is(err, kind) || !errors.As(err, &se) || se.Code != code {
		t.Fatalf("want %v code %d, got %v", kind, code, err)
	}
}

// setup opens a store with a main account and returns both.
func setup(t *testing.T, backend string) (*store.Store, store.Account) {
	s := storetest.Open(t, backend, opts)
	acct, created, err := s.Bootstrap(ctx(t), "", "", "", nil)
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	return s, acct
}

func TestBootstrapAndAccounts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		dsn := storetest.DSN(t, backend)
		s := storetest.OpenDSN(t, dsn, opts)
		c := ctx(t)
		sid, token := "AC"+strings.Repeat("ab", 16), "0123456789abcdef0123456789abcdef"
		if _, _, err := s.Bootstrap(c, "ACnothex", token, "", nil); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad sid: %v", err)
		}
		a, created, err := s.Bootstrap(c, sid, token, "", nil)
		if err != nil || !created || a.Sid != sid || a.AuthToken != token || a.Type != store.TypeFull || a.Status != store.StatusActive {
			t.Fatalf("bootstrap: %+v %v %v", a, created, err)
		}
		// a second process opening the same store finds it and migrates nothing
		s2 := storetest.OpenDSN(t, dsn, opts)
		b, created, err := s2.Bootstrap(c, "", "", "", nil)
		if err != nil || created || b.Sid != sid {
			t.Fatalf("rebootstrap: %+v %v %v", b, created, err)
		}
		if _, _, err := s2.Bootstrap(c, "AC"+strings.Repeat("cd", 16), token, "", nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown sid on a non-empty store: %v", err)
		}
		if backend == "sqlite" {
			// the file holds auth tokens
			for _, suffix := range []string{"", "-wal", "-shm"} {
				fi, err := os.Stat(strings.TrimPrefix(dsn, "sqlite:") + suffix)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s%s: %v %v, want mode 0600", dsn, suffix, fi.Mode(), err)
				}
			}
			var journal string
			var syncMode, fk int
			store.DBOf(s).QueryRowContext(c, `PRAGMA journal_mode`).Scan(&journal)
			store.DBOf(s).QueryRowContext(c, `PRAGMA synchronous`).Scan(&syncMode)
			store.DBOf(s).QueryRowContext(c, `PRAGMA foreign_keys`).Scan(&fk)
			if journal != "wal" || syncMode != 2 || fk != 1 {
				t.Fatalf("sqlite pragmas: journal_mode=%s synchronous=%d foreign_keys=%d, want wal/2 (FULL)/1", journal, syncMode, fk)
			}
		}
		var versions int
		if err := store.DBOf(s2).QueryRowContext(c, `SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != store.SchemaVersion() {
			t.Fatalf("schema_migrations: %d %v", versions, err)
		}

		sub := r(s.CreateSubaccount(c, sid, "sub one", "")).must(t)
		if sub.OwnerSid != sid || !store.ValidSid("AC", sub.Sid) || len(sub.AuthToken) != 32 {
			t.Fatalf("sub: %+v", sub)
		}
		if _, err := s.CreateSubaccount(c, sub.Sid, "grandchild", ""); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("sub of sub: %v", err)
		}
		if _, err := s.CreateSubaccount(c, sid, "", "Gold"); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad type: %v", err)
		}
		for _, pair := range [][2]string{{sid, sid}, {sid, sub.Sid}} {
			if ok, err := s.CanAccess(c, pair[0], pair[1]); !ok || err != nil {
				t.Fatalf("%s may access %s", pair[0], pair[1])
			}
		}
		if ok, _ := s.CanAccess(c, sub.Sid, sid); ok {
			t.Fatal("a subaccount may not act for its parent")
		}
		all := r3(s.ListAccounts(c, sid, store.AccountFilter{}, store.Page{})).must(t)
		if len(all) != 2 {
			t.Fatalf("accounts: %d", len(all))
		}
		mine := r3(s.ListAccounts(c, sub.Sid, store.AccountFilter{}, store.Page{})).must(t)
		if len(mine) != 1 || mine[0].Sid != sub.Sid {
			t.Fatalf("a subaccount sees itself only: %+v", mine)
		}
		sub = r(s.UpdateAccount(c, sub.Sid, func(a *store.Account) error { a.Status = store.StatusClosed; return nil })).must(t)
		if sub.Status != store.StatusClosed {
			t.Fatal(sub.Status)
		}
		if _, err := s.UpdateAccount(c, sub.Sid, func(a *store.Account) error { a.Status = store.StatusActive; return nil }); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("reopen closed: %v", err)
		}
		if _, err := s.UpdateAccount(c, sid, func(a *store.Account) error { a.Status = store.StatusSuspended; return nil }); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("suspend main: %v", err)
		}
	})
}

func TestTrunksAndPaging(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		tr := store.NewTrunk(a.Sid)
		tr.FriendlyName, tr.DomainName = "acme", "ACME.pstn.example.net"
		tr = r(s.CreateTrunk(c, tr)).must(t)
		if !store.ValidSid("TK", tr.Sid) || tr.DomainName != "acme.pstn.example.net" || tr.TransferMode != "disable-all" ||
			tr.RecordingMode != "do-not-record" || tr.DisasterRecoveryMethod != "POST" || len(tr.AuthTypes()) != 0 {
			t.Fatalf("created: %+v", tr)
		}
		got := r(s.Trunk(c, a.Sid, tr.Sid)).must(t)
		if got != tr {
			t.Fatalf("fetched %+v\nwant %+v", got, tr)
		}
		if byDomain := r(s.TrunkByDomain(c, "Acme.PSTN.example.net")).must(t); byDomain.Sid != tr.Sid {
			t.Fatal("TrunkByDomain")
		}
		got = r(s.UpdateTrunk(c, a.Sid, tr.Sid, func(x *store.Trunk) error {
			x.Secure, x.TransferMode, x.RecordingMode, x.DisasterRecoveryURL, x.DisasterRecoveryMethod = true, "sip-only", "record-from-answer-dual", "https://dr.example.com/twiml", "get"
			return nil
		})).must(t)
		if !got.Secure || got.TransferMode != "sip-only" || got.DisasterRecoveryMethod != "GET" || !got.Updated.After(tr.Updated) && !got.Updated.Equal(tr.Updated) {
			t.Fatalf("updated: %+v", got)
		}
		for _, bad := range []func(*store.Trunk){
			func(x *store.Trunk) { x.TransferMode = "sometimes" },
			func(x *store.Trunk) { x.TransferCallerID = "from-nobody" },
			func(x *store.Trunk) { x.RecordingMode = "record-everything" },
			func(x *store.Trunk) { x.RecordingTrim = "trim-all" },
			func(x *store.Trunk) { x.DisasterRecoveryURL = "ftp://x" },
			func(x *store.Trunk) { x.DisasterRecoveryMethod = "PUT" },
			func(x *store.Trunk) { x.FriendlyName = strings.Repeat("x", 65) },
			func(x *store.Trunk) { x.FriendlyName = "bad\xff" },
		} {
			if _, err := s.UpdateTrunk(c, a.Sid, tr.Sid, func(x *store.Trunk) error { bad(x); return nil }); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("bad update accepted: %v", err)
			}
		}

		// paging: 60 more trunks, pages of 25, keyset tokens
		for i := 0; i < 60; i++ {
			x := store.NewTrunk(a.Sid)
			x.FriendlyName = fmt.Sprintf("t%02d", i)
			r(s.CreateTrunk(c, x)).must(t)
		}
		var all []store.Trunk
		p := store.Page{Size: 25}
		for pages := 0; ; pages++ {
			items, next, err := s.ListTrunks(c, a.Sid, p)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, items...)
			if next == "" {
				if pages != 2 {
					t.Fatalf("pages: %d", pages+1)
				}
				break
			}
			p.Token = next
		}
		if len(all) != 61 || all[0].Sid != tr.Sid || all[60].FriendlyName != "t59" {
			t.Fatalf("listed %d", len(all))
		}
		seen := map[string]bool{}
		for _, x := range all {
			if seen[x.Sid] {
				t.Fatalf("duplicate %s", x.Sid)
			}
			seen[x.Sid] = true
		}
		if off := r3(s.ListTrunks(c, a.Sid, store.Page{Size: 10, Offset: 50})).must(t); len(off) != 10 || off[0].Sid != all[50].Sid {
			t.Fatal("offset paging")
		}
		if _, _, err := s.ListTrunks(c, a.Sid, store.Page{Token: "PAgarbage"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad token: %v", err)
		}

		noErr(t, s.DeleteTrunk(c, a.Sid, tr.Sid))
		if _, err := s.Trunk(c, a.Sid, tr.Sid); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted: %v", err)
		}
		wantCode(t, s.DeleteTrunk(c, a.Sid, tr.Sid), store.ErrNotFound, store.CodeNotFound)
	})
}

func TestDomainRules(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		sub := r(s.CreateSubaccount(c, a.Sid, "sub", "")).must(t)
		sibling := r(s.CreateSubaccount(c, a.Sid, "sibling", "")).must(t)
		mk := func(acct, domain string) (store.Trunk, error) {
			tr := store.NewTrunk(acct)
			tr.DomainName = domain
			return s.CreateTrunk(c, tr)
		}
		parent := r(mk(a.Sid, "b.pstn.example.net")).must(t)
		_, err := mk(sub.Sid, "B.pstn.example.net")
		wantCode(t, err, store.ErrConflict, store.CodeDomainTaken)
		_, err = mk(a.Sid, "acme.pstn.example.com")
		wantCode(t, err, store.ErrInvalid, store.CodeInvalidDomain)

		// sub-domain: same account, then the parent-account case
		r(mk(a.Sid, "a.b.pstn.example.net")).must(t)
		child := r(mk(sub.Sid, "c.b.pstn.example.net")).must(t)
		// a sub-domain of a domain that does not exist
		_, err = mk(a.Sid, "x.nope.pstn.example.net")
		wantCode(t, err, store.ErrConflict, store.CodeTrunkDependencies)
		// a sibling's or an unrelated account's domain does not count
		sib := r(mk(sibling.Sid, "sib.pstn.example.net")).must(t)
		_, err = mk(sub.Sid, "x.sib.pstn.example.net")
		wantCode(t, err, store.ErrConflict, store.CodeTrunkDependencies)
		// ...nor does a subaccount's domain for the parent
		_, err = mk(a.Sid, "y.c.b.pstn.example.net")
		wantCode(t, err, store.ErrConflict, store.CodeTrunkDependencies)
		r(mk(sub.Sid, "y.c.b.pstn.example.net")).must(t)

		// a domain with sub-domains cannot be renamed or deleted
		_, err = s.UpdateTrunk(c, a.Sid, parent.Sid, func(x *store.Trunk) error { x.DomainName = "z.pstn.example.net"; return nil })
		wantCode(t, err, store.ErrConflict, store.CodeTrunkDependencies)
		wantCode(t, s.DeleteTrunk(c, a.Sid, parent.Sid), store.ErrConflict, store.CodeTrunkDependencies)
		// renaming onto a taken domain, and a rename that keeps the rule
		_, err = s.UpdateTrunk(c, sibling.Sid, sib.Sid, func(x *store.Trunk) error { x.DomainName = "b.pstn.example.net"; return nil })
		wantCode(t, err, store.ErrConflict, store.CodeDomainTaken)
		r(s.UpdateTrunk(c, sibling.Sid, sib.Sid, func(x *store.Trunk) error { x.DomainName = "sib2.pstn.example.net"; return nil })).must(t)
		// an update that leaves the domain alone is fine even with children
		r(s.UpdateTrunk(c, a.Sid, parent.Sid, func(x *store.Trunk) error { x.FriendlyName = "parent"; return nil })).must(t)
		_ = child
	})
}

func TestOriginationRules(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		tr := r(s.CreateTrunk(c, store.NewTrunk(a.Sid))).must(t)
		ou := func(url string, prio, weight int) store.OriginationURL {
			return store.OriginationURL{AccountSid: a.Sid, TrunkSid: tr.Sid, SipURL: url, Priority: prio, Weight: weight, Enabled: true}
		}
		for _, bad := range []store.OriginationURL{
			ou("http://pbx.example.com", 10, 10),
			ou("pbx.example.com", 10, 10),
			ou("sip:pbx.example.com", -1, 10),
			ou("sip:pbx.example.com", 65536, 10),
			ou("sip:pbx.example.com", 10, 0),
			ou("sip:pbx.example.com", 10, 65536),
			ou("sip:pbx.example.com;edge=tokyo", 10, 10),
		} {
			if _, err := s.CreateOriginationURL(c, bad); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("%+v accepted: %v", bad, err)
			}
		}
		var first store.OriginationURL
		for i := 0; i < store.MaxOriginationURLs; i++ {
			prio, weight := []int{0, 65535}[i%2], []int{1, 65535}[i%2]
			o := r(s.CreateOriginationURL(c, ou(fmt.Sprintf("sip:pbx%d.example.com;edge=dublin", i), prio, weight))).must(t)
			if i == 0 {
				first = o
			}
		}
		_, err := s.CreateOriginationURL(c, ou("sip:eleven.example.com", 1, 1))
		wantCode(t, err, store.ErrConflict, store.CodeInvalidParameter)
		if _, err := s.UpdateOriginationURL(c, a.Sid, tr.Sid, first.Sid, func(o *store.OriginationURL) error { o.Weight = 0; return nil }); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("weight 0 update: %v", err)
		}
		o := r(s.UpdateOriginationURL(c, a.Sid, tr.Sid, first.Sid, func(o *store.OriginationURL) error {
			o.Enabled, o.SipURL = false, "sips:[2001:db8::7]:5061"
			return nil
		})).must(t)
		if o.Enabled || o.SipURL != "sips:[2001:db8::7]:5061" {
			t.Fatalf("%+v", o)
		}
		noErr(t, s.DeleteOriginationURL(c, a.Sid, tr.Sid, first.Sid))
		r(s.CreateOriginationURL(c, ou("sip:ten-again.example.com", 1, 1))).must(t)
		if l := r3(s.ListOriginationURLs(c, a.Sid, tr.Sid, store.Page{})).must(t); len(l) != 10 {
			t.Fatalf("listed %d", len(l))
		}
		// deleting the trunk deletes its URLs
		noErr(t, s.DeleteTrunk(c, a.Sid, tr.Sid))
		var n int
		store.DBOf(s).QueryRowContext(c, `SELECT COUNT(*) FROM origination_urls`).Scan(&n)
		if n != 0 {
			t.Fatalf("%d origination URLs outlived their trunk", n)
		}
	})
}

func TestNumbers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		other := r(s.CreateSubaccount(c, a.Sid, "other", "")).must(t)
		t1 := r(s.CreateTrunk(c, store.NewTrunk(a.Sid))).must(t)
		t2 := r(s.CreateTrunk(c, store.NewTrunk(a.Sid))).must(t)
		for _, bad := range []string{"4158675309", "+0123", "+1 415 867 5309", ""} {
			_, err := s.CreatePhoneNumber(c, store.NewPhoneNumber(a.Sid, bad))
			wantCode(t, err, store.ErrInvalid, store.CodePhoneInvalid)
		}
		n := r(s.CreatePhoneNumber(c, store.NewPhoneNumber(a.Sid, "+14158675309"))).must(t)
		_, err := s.CreatePhoneNumber(c, store.NewPhoneNumber(other.Sid, "+14158675309"))
		wantCode(t, err, store.ErrConflict, store.CodePhoneUnavailable)

		r(s.AssociatePhoneNumber(c, a.Sid, t1.Sid, n.Sid)).must(t)
		r(s.AssociatePhoneNumber(c, a.Sid, t1.Sid, n.Sid)).must(t) // again: no change
		_, err = s.AssociatePhoneNumber(c, a.Sid, t2.Sid, n.Sid)
		wantCode(t, err, store.ErrConflict, store.CodeInvalidParameter)
		if l := r3(s.ListTrunkPhoneNumbers(c, a.Sid, t1.Sid, store.Page{})).must(t); len(l) != 1 {
			t.Fatal("trunk numbers")
		}
		// moving through the number's own TrunkSid keeps it on one trunk
		n = r(s.UpdatePhoneNumber(c, a.Sid, n.Sid, func(p *store.PhoneNumber) error { p.TrunkSid = t2.Sid; return nil })).must(t)
		if l := r3(s.ListTrunkPhoneNumbers(c, a.Sid, t1.Sid, store.Page{})).must(t); len(l) != 0 {
			t.Fatal("still on the old trunk")
		}
		if byNum := r(s.PhoneNumberByE164(c, "+14158675309")).must(t); byNum.TrunkSid != t2.Sid {
			t.Fatal(byNum.TrunkSid)
		}
		// another account's trunk is not found
		otherTrunk := r(s.CreateTrunk(c, store.NewTrunk(other.Sid))).must(t)
		if _, err := s.UpdatePhoneNumber(c, a.Sid, n.Sid, func(p *store.PhoneNumber) error { p.TrunkSid = otherTrunk.Sid; return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("foreign trunk: %v", err)
		}
		if _, err := s.AssociatePhoneNumber(c, other.Sid, otherTrunk.Sid, n.Sid); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("foreign number: %v", err)
		}
		// deleting the trunk disassociates, does not release
		noErr(t, s.DeleteTrunk(c, a.Sid, t2.Sid))
		n = r(s.PhoneNumber(c, a.Sid, n.Sid)).must(t)
		if n.TrunkSid != "" {
			t.Fatalf("number still on deleted trunk %s", n.TrunkSid)
		}
		r(s.AssociatePhoneNumber(c, a.Sid, t1.Sid, n.Sid)).must(t)
		noErr(t, s.DisassociatePhoneNumber(c, a.Sid, t1.Sid, n.Sid))
		wantCode(t, s.DisassociatePhoneNumber(c, a.Sid, t1.Sid, n.Sid), store.ErrNotFound, store.CodeNotFound)
		if l := r3(s.ListPhoneNumbers(c, a.Sid, store.NumberFilter{PhoneNumber: "867"}, store.Page{})).must(t); len(l) != 1 {
			t.Fatal("filter")
		}
		noErr(t, s.DeletePhoneNumber(c, a.Sid, n.Sid))
		// released: another account may take it now
		r(s.CreatePhoneNumber(c, store.NewPhoneNumber(other.Sid, "+14158675309"))).must(t)

		// caller IDs
		ci := r(s.RequestCallerID(c, a.Sid, "+14155550100", "", true)).must(t)
		if !ci.Verified {
			t.Fatal("not verified")
		}
		_, err = s.RequestCallerID(c, a.Sid, "+14155550100", "", true)
		wantCode(t, err, store.ErrConflict, store.CodeCallerIDExists)
		pending := r(s.RequestCallerID(c, a.Sid, "+14155550101", "", false)).must(t)
		if ok, _ := s.IsVerifiedCallerID(c, a.Sid, "+14155550101"); ok {
			t.Fatal("pending caller ID counts as verified")
		}
		if l := r3(s.ListCallerIDs(c, a.Sid, store.NumberFilter{}, store.Page{})).must(t); len(l) != 1 {
			t.Fatal("pending caller IDs are not listed")
		}
		if err := s.VerifyCallerID(c, a.Sid, "+14155550101", "000000x"); !errors.Is(err, store.ErrInvalid) {
			t.Fatal(err)
		}
		noErr(t, s.VerifyCallerID(c, a.Sid, "+14155550101", pending.ValidationCode))
		if ok, _ := s.IsVerifiedCallerID(c, a.Sid, "+14155550101"); !ok {
			t.Fatal("verification")
		}
	})
}

func TestCredentialsAndACLs(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		dsn := storetest.DSN(t, backend)
		s := storetest.OpenDSN(t, dsn, opts)
		c := ctx(t)
		a, _, err := s.Bootstrap(c, "", "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		cl := r(s.CreateCredentialList(c, a.Sid, "pbx users")).must(t)
		passwords := []string{"Sup3rSecretPassw0rd", "An0therL0ngSecret", "Th1rdPasswordHere"}
		for _, weak := range []string{"short1A", "nouppercase1234", "NOLOWERCASE1234", "NoDigitsAnywhere"} {
			if _, err := s.CreateCredential(c, a.Sid, cl.Sid, "alice", weak); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("weak %q: %v", weak, err)
			}
		}
		if _, err := s.CreateCredential(c, a.Sid, cl.Sid, "al:ice", passwords[0]); !errors.Is(err, store.ErrInvalid) {
			t.Fatal("a ':' in a username would split the HA1 input")
		}
		cr := r(s.CreateCredential(c, a.Sid, cl.Sid, "alice", passwords[0])).must(t)
		if cr.HA1MD5 != store.HA1MD5("alice", "example.net", passwords[0]) || cr.HA1SHA256 != store.HA1SHA256("alice", "example.net", passwords[0]) || cr.Realm != "example.net" {
			t.Fatalf("hashes: %+v", cr)
		}
		_, err = s.CreateCredential(c, a.Sid, cl.Sid, "alice", passwords[1])
		wantCode(t, err, store.ErrConflict, store.CodeInvalidParameter)
		cr = r(s.SetCredentialPassword(c, a.Sid, cl.Sid, cr.Sid, passwords[1])).must(t)
		if cr.HA1MD5 != store.HA1MD5("alice", "example.net", passwords[1]) {
			t.Fatal("password change")
		}
		r(s.CreateCredential(c, a.Sid, cl.Sid, "bob", passwords[2])).must(t)

		acl := r(s.CreateIPAccessControlList(c, a.Sid, "carrier")).must(t)
		r(s.CreateIPAddress(c, store.IPAddress{AccountSid: a.Sid, ListSid: acl.Sid, FriendlyName: "gw", IPAddress: "198.51.100.0/24"})).must(t)
		tr := r(s.CreateTrunk(c, store.NewTrunk(a.Sid))).must(t)
		r(s.AttachIPAccessControlList(c, a.Sid, tr.Sid, acl.Sid)).must(t)
		if _, err := s.AttachIPAccessControlList(c, a.Sid, tr.Sid, acl.Sid); !errors.Is(err, store.ErrConflict) {
			t.Fatal("double attach")
		}
		r(s.AttachCredentialList(c, a.Sid, tr.Sid, cl.Sid)).must(t)
		tr = r(s.Trunk(c, a.Sid, tr.Sid)).must(t)
		if got := strings.Join(tr.AuthTypes(), ","); got != "CREDENTIAL_LIST,IP_ACL" {
			t.Fatalf("auth types %q", got)
		}
		ips := r(s.TrunkIPAddresses(c, tr.Sid)).must(t)
		if len(ips) != 1 || r(ips[0].Prefix()).must(t).String() != "198.51.100.0/24" {
			t.Fatalf("trunk IPs: %+v", ips)
		}
		if creds := r(s.TrunkCredentials(c, tr.Sid, "bob")).must(t); len(creds) != 1 {
			t.Fatal("trunk credentials")
		}
		noErr(t, s.DetachCredentialList(c, a.Sid, tr.Sid, cl.Sid))
		if creds := r(s.TrunkCredentials(c, tr.Sid, "bob")).must(t); len(creds) != 0 {
			t.Fatal("detached list still authenticates")
		}
		// deleting the ACL detaches it
		noErr(t, s.DeleteIPAccessControlList(c, a.Sid, acl.Sid))
		if tr = r(s.Trunk(c, a.Sid, tr.Sid)).must(t); len(tr.AuthTypes()) != 0 {
			t.Fatalf("auth types after delete: %v", tr.AuthTypes())
		}

		// No password in plain text anywhere in the database.
		secrets := append(passwords, "Sup3rSecret") // and no long fragment either
		if backend == "sqlite" {
			path := strings.TrimPrefix(dsn, "sqlite:")
			var all []byte
			read := func() {
				for _, f := range []string{path, path + "-wal", path + "-shm"} {
					if b, err := os.ReadFile(f); err == nil {
						all = append(all, b...)
					}
				}
			}
			read()    // the database and its write-ahead log while open
			s.Close() // and the file after the WAL is checkpointed into it
			read()
			if len(all) == 0 {
				t.Fatal("read nothing")
			}
			for _, p := range secrets {
				if bytes.Contains(all, []byte(p)) {
					t.Fatalf("password %q found in the database file", p)
				}
			}
			if !bytes.Contains(all, []byte(store.HA1MD5("bob", "example.net", passwords[2]))) {
				t.Fatal("sanity: the hash should be in the file")
			}
		} else {
			// every row of every table as text
			rows, err := store.DBOf(s).QueryContext(c, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
			if err != nil {
				t.Fatal(err)
			}
			var tables []string
			for rows.Next() {
				var n string
				rows.Scan(&n)
				tables = append(tables, n)
			}
			rows.Close()
			var dump strings.Builder
			for _, tbl := range tables {
				r, err := store.DBOf(s).QueryContext(c, fmt.Sprintf(`SELECT row_to_json(x)::text FROM %q x`, tbl))
				if err != nil {
					t.Fatal(err)
				}
				for r.Next() {
					var line string
					r.Scan(&line)
					dump.WriteString(line)
				}
				r.Close()
			}
			for _, p := range secrets {
				if strings.Contains(dump.String(), p) {
					t.Fatalf("password %q found in the database", p)
				}
			}
			if !strings.Contains(dump.String(), store.HA1MD5("bob", "example.net", passwords[2])) {
				t.Fatal("sanity: the hash should be in the dump")
			}
		}
	})
}

func TestAccountIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		b := r(s.CreateSubaccount(c, a.Sid, "b", "")).must(t)
		tr := r(s.CreateTrunk(c, store.NewTrunk(a.Sid))).must(t)
		ou := r(s.CreateOriginationURL(c, store.OriginationURL{AccountSid: a.Sid, TrunkSid: tr.Sid, SipURL: "sip:x.example.com", Priority: 1, Weight: 1})).must(t)
		acl := r(s.CreateIPAccessControlList(c, a.Sid, "acl")).must(t)
		ip := r(s.CreateIPAddress(c, store.IPAddress{AccountSid: a.Sid, ListSid: acl.Sid, IPAddress: "192.0.2.1"})).must(t)
		cl := r(s.CreateCredentialList(c, a.Sid, "cl")).must(t)
		cr := r(s.CreateCredential(c, a.Sid, cl.Sid, "u", "Passw0rdPassw0rd")).must(t)
		n := r(s.CreatePhoneNumber(c, store.NewPhoneNumber(a.Sid, "+15005550006"))).must(t)
		ci := r(s.RequestCallerID(c, a.Sid, "+15005550007", "", true)).must(t)
		call := r(s.InsertCall(c, store.Call{AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: "completed"})).must(t)
		rec := r(s.InsertRecording(c, store.Recording{AccountSid: a.Sid, CallSid: call.Sid, Channels: 1})).must(t)
		for name, err := range map[string]error{
			"trunk":       second(s.Trunk(c, b.Sid, tr.Sid)),
			"update":      second(s.UpdateTrunk(c, b.Sid, tr.Sid, func(*store.Trunk) error { return nil })),
			"delete":      s.DeleteTrunk(c, b.Sid, tr.Sid),
			"ou":          second(s.OriginationURL(c, b.Sid, tr.Sid, ou.Sid)),
			"ou list":     third(s.ListOriginationURLs(c, b.Sid, tr.Sid, store.Page{})),
			"acl":         second(s.IPAccessControlList(c, b.Sid, acl.Sid)),
			"ip":          second(s.IPAddress(c, b.Sid, acl.Sid, ip.Sid)),
			"ip list":     third(s.ListIPAddresses(c, b.Sid, acl.Sid, store.Page{})),
			"cl":          second(s.CredentialList(c, b.Sid, cl.Sid)),
			"cr":          second(s.Credential(c, b.Sid, cl.Sid, cr.Sid)),
			"cr delete":   s.DeleteCredential(c, b.Sid, cl.Sid, cr.Sid),
			"number":      second(s.PhoneNumber(c, b.Sid, n.Sid)),
			"release":     s.DeletePhoneNumber(c, b.Sid, n.Sid),
			"caller id":   second(s.CallerID(c, b.Sid, ci.Sid)),
			"call":        second(s.Call(c, b.Sid, call.Sid)),
			"recording":   second(s.Recording(c, b.Sid, rec.Sid)),
			"attach acl":  second(s.AttachIPAccessControlList(c, b.Sid, tr.Sid, acl.Sid)),
			"attach pn":   second(s.AssociatePhoneNumber(c, b.Sid, tr.Sid, n.Sid)),
			"trunk lists": third(s.ListTrunkCredentialLists(c, b.Sid, tr.Sid, store.Page{})),
		} {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: account b got %v, want not found", name, err)
			}
		}
		for name, n := range map[string]int{
			"trunks":  len(r3(s.ListTrunks(c, b.Sid, store.Page{})).must(t)),
			"numbers": len(r3(s.ListPhoneNumbers(c, b.Sid, store.NumberFilter{}, store.Page{})).must(t)),
			"calls":   len(r3(s.ListCalls(c, b.Sid, store.CallFilter{}, store.Page{})).must(t)),
			"acls":    len(r3(s.ListIPAccessControlLists(c, b.Sid, store.Page{})).must(t)),
		} {
			if n != 0 {
				t.Errorf("account b lists %d of a's %s", n, name)
			}
		}
	})
}

func second[T any](_ T, err error) error          { return err }
func third[T any](_ T, _ string, err error) error { return err }

func TestCallsAndRecordings(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var sids []string
		for i := 0; i < 5; i++ {
			call := r(s.InsertCall(c, store.Call{
				AccountSid: a.Sid, TrunkSid: "TK" + strings.Repeat("0", 32), Direction: store.DirectionOriginating,
				From: "+14155550100", To: fmt.Sprintf("+1415555020%d", i), Status: []string{"completed", "busy"}[i%2],
				Start: start, Answer: start.Add(2 * time.Second), End: start.Add(62 * time.Second), Duration: 60, SIPResponseCode: 200,
				HangupCause: "normal_clearing", Quality: []store.LegQuality{{Leg: "customer", PacketsReceived: 3000, PacketsLost: 3, JitterMs: 1.5}},
				CallerName: "ACME CORP", RedirectedTo: "sip:+14155550999@198.51.100.7:5070;transport=udp",
			})).must(t)
			sids = append(sids, call.Sid)
		}
		got := r(s.Call(c, a.Sid, sids[0])).must(t)
		if !got.Start.Equal(start) || got.Duration != 60 || len(got.Quality) != 1 || got.Quality[0].PacketsLost != 3 ||
			got.CallerName != "ACME CORP" || got.RedirectedTo != "sip:+14155550999@198.51.100.7:5070;transport=udp" {
			t.Fatalf("%+v", got)
		}
		l := r3(s.ListCalls(c, a.Sid, store.CallFilter{}, store.Page{})).must(t)
		if len(l) != 5 || l[0].Sid != sids[4] {
			t.Fatal("calls are listed newest first")
		}
		if busy := r3(s.ListCalls(c, a.Sid, store.CallFilter{Status: "busy"}, store.Page{})).must(t); len(busy) != 2 {
			t.Fatal("status filter")
		}
		if _, err := s.InsertCall(c, store.Call{AccountSid: a.Sid, Direction: "sideways", Status: "completed"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatal(err)
		}
		if _, err := s.InsertCall(c, store.Call{Sid: sids[0], AccountSid: a.Sid, Direction: store.DirectionOriginating, Status: "completed"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate call sid: %v", err)
		}
		// A batch is written whole, or not at all.
		batch := []store.Call{
			{AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: "completed", From: "+14155550100", To: "+14155550301"},
			{AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: "failed", From: "+14155550100", To: "+14155550302"},
		}
		written := r(s.InsertCalls(c, batch)).must(t)
		if len(written) != 2 || written[0].Sid == "" || written[0].Sid == written[1].Sid {
			t.Fatalf("batch: %+v", written)
		}
		if got := r(s.Call(c, a.Sid, written[1].Sid)).must(t); got.To != "+14155550302" || got.Status != "failed" {
			t.Fatalf("batch row: %+v", got)
		}
		dup := []store.Call{{AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: "completed", To: "+14155550303"},
			{Sid: sids[1], AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: "completed"}}
		if _, err := s.InsertCalls(c, dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("batch with a duplicate sid: %v", err)
		}
		if _, err := s.InsertCalls(c, []store.Call{{AccountSid: a.Sid, Direction: "sideways", Status: "completed"}}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("invalid batch: %v", err)
		}
		if n := len(r3(s.ListCalls(c, a.Sid, store.CallFilter{}, store.Page{})).must(t)); n != 7 {
			t.Fatalf("after the failed batches: %d calls, want 7 (nothing of them written)", n)
		}
		media := "call-1_x-1700000000000000000-dual.wav"
		for _, bad := range []string{"/var/lib/xtrunk/recordings/r.wav", "../../etc/passwd", "../x.wav", ".wav", ".hidden.wav", "a/b.wav", "r.wav\x00", "r.mp3"} {
			if _, err := s.InsertRecording(c, store.Recording{AccountSid: a.Sid, CallSid: sids[0], Channels: 1, MediaFile: bad}); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("recording file %q: want ErrInvalid, got %v", bad, err)
			}
		}
		rec := r(s.InsertRecording(c, store.Recording{AccountSid: a.Sid, CallSid: sids[0], Channels: 2, Duration: 60, Start: start, MediaFile: media})).must(t)
		if rl := r3(s.ListRecordings(c, a.Sid, sids[0], store.Page{})).must(t); len(rl) != 1 || rl[0].Sid != rec.Sid || rl[0].Source != "Trunking" {
			t.Fatal("recordings by call")
		}
		if d := r(s.DeleteRecording(c, a.Sid, rec.Sid)).must(t); d.MediaFile != media {
			t.Fatal("delete returns the media file")
		}
	})
}

func TestChangeFeed(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		dsn := storetest.DSN(t, backend)
		writer := storetest.OpenDSN(t, dsn, opts)
		reader := storetest.OpenDSN(t, dsn, opts) // as another process would
		c := ctx(t)
		a, _, err := writer.Bootstrap(c, "", "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		rev0 := r(reader.Revision(c)).must(t)
		if rev0 < 1 {
			t.Fatalf("bootstrap should be in the feed: %d", rev0)
		}
		w := reader.Watch(c)
		if got := <-w; got != rev0 {
			t.Fatalf("first value %d, want %d", got, rev0)
		}
		tr := r(writer.CreateTrunk(c, store.NewTrunk(a.Sid))).must(t)
		began := time.Now()
		select {
		case rev := <-w:
			if rev <= rev0 {
				t.Fatalf("revision did not move: %d", rev)
			}
			t.Logf("%s: another handle saw the write after %v", backend, time.Since(began))
		case <-time.After(10 * time.Second):
			// Seen at all is the point (the latency is logged): until its
			// LISTEN is up, a PostgreSQL watch falls back on polling every
			// PollInterval (1 s), so a 1 s wait raced it on a loaded machine.
			t.Fatal("no change seen within 10 s")
		}
		n := r(writer.CreatePhoneNumber(c, store.NewPhoneNumber(a.Sid, "+14155550123"))).must(t)
		r(writer.AssociatePhoneNumber(c, a.Sid, tr.Sid, n.Sid)).must(t)
		noErr(t, writer.DeleteTrunk(c, a.Sid, tr.Sid))
		changes := r(reader.ChangesSince(c, rev0, 0)).must(t)
		var got []string
		for i, ch := range changes {
			if i > 0 && ch.Rev <= changes[i-1].Rev {
				t.Fatal("revisions out of order")
			}
			got = append(got, ch.Kind+":"+ch.Op)
		}
		want := "trunk:create phone_number:create phone_number:update phone_number:update trunk:delete"
		if strings.Join(got, " ") != want {
			t.Fatalf("changes %q\nwant    %q", strings.Join(got, " "), want)
		}
		last := changes[len(changes)-1].Rev
		if rest := r(reader.ChangesSince(c, last, 0)).must(t); len(rest) != 0 {
			t.Fatal("nothing after the last")
		}
		if lim := r(reader.ChangesSince(c, rev0, 2)).must(t); len(lim) != 2 {
			t.Fatal("limit")
		}
		// closing the store closes the watch
		reader.Close()
		select {
		case _, ok := <-w:
			for ok {
				_, ok = <-w
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch did not close with the store")
		}
	})
}

// TestConcurrentOpen: processes starting together on one empty database
// all open it (the migration runs once) and agree on one main account.
func TestConcurrentOpen(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		dsn := storetest.DSN(t, backend)
		const n = 4
		errs := make(chan error, n)
		sids := make(chan string, n)
		for i := 0; i < n; i++ {
			go func() {
				s, err := store.Open(ctx(t), dsn, opts)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				a, _, err := s.Bootstrap(ctx(t), "", "", "", nil)
				if err != nil {
					errs <- err
					return
				}
				sids <- a.Sid
				errs <- nil
			}()
		}
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		close(sids)
		first := ""
		for s := range sids {
			if first == "" {
				first = s
			} else if s != first {
				t.Fatalf("two main accounts: %s %s", first, s)
			}
		}
	})
}
