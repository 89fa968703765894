package api

import (
	"context"
	"net/http"

	"github.com/xtrunk/xtrunk/control/store"
)

// namedLists serves one kind of named list, IP access control lists or
// credential lists, under an account (2010 API) and as attached to trunks
// (v1). The two kinds behave alike and differ only in their names and
// entries, so one set of handlers, bound to the kind's store methods,
// serves both.
type namedLists struct {
	prefix   string // sid prefix and path parameter: "AL", "CL"
	path     string // path segment: "IpAccessControlLists"
	pageKey  string // key of a page of them: "ip_access_control_lists"
	sub      string // the entries' path segment: "IpAddresses"
	subKey   string // the entries' subresource key: "ip_addresses"
	sidField string // form field naming one to attach: "IpAccessControlListSid"

	create       func(ctx context.Context, account, name string) (store.NamedList, error)
	fetch        func(ctx context.Context, account, sid string) (store.NamedList, error)
	rename       func(ctx context.Context, account, sid, name string) (store.NamedList, error)
	remove       func(ctx context.Context, account, sid string) error
	list         func(ctx context.Context, account string, p store.Page) ([]store.NamedList, string, error)
	attach       func(ctx context.Context, account, trunk, sid string) (store.NamedList, error)
	fetchOnTrunk func(ctx context.Context, account, trunk, sid string) (store.NamedList, error)
	detach       func(ctx context.Context, account, trunk, sid string) error
	listOnTrunk  func(ctx context.Context, account, trunk string, p store.Page) ([]store.NamedList, string, error)
}

func ipACLs(st *store.Store) *namedLists {
	return &namedLists{
		prefix: store.PrefixIPACL, path: "IpAccessControlLists", pageKey: "ip_access_control_lists",
		sub: "IpAddresses", subKey: "ip_addresses", sidField: "IpAccessControlListSid",
		create: st.CreateIPAccessControlList, fetch: st.IPAccessControlList, rename: st.RenameIPAccessControlList,
		remove: st.DeleteIPAccessControlList, list: st.ListIPAccessControlLists,
		attach: st.AttachIPAccessControlList, fetchOnTrunk: st.TrunkIPAccessControlList,
		detach: st.DetachIPAccessControlList, listOnTrunk: st.ListTrunkIPAccessControlLists,
	}
}

func credentialLists(st *store.Store) *namedLists {
	return &namedLists{
		prefix: store.PrefixCredentialList, path: "CredentialLists", pageKey: "credential_lists",
		sub: "Credentials", subKey: "credentials", sidField: "CredentialListSid",
		create: st.CreateCredentialList, fetch: st.CredentialList, rename: st.RenameCredentialList,
		remove: st.DeleteCredentialList, list: st.ListCredentialLists,
		attach: st.AttachCredentialList, fetchOnTrunk: st.TrunkCredentialList,
		detach: st.DetachCredentialList, listOnTrunk: st.ListTrunkCredentialLists,
	}
}

func (k *namedLists) json(l store.NamedList) sipListJSON { return sipList(l, k.path, k.sub, k.subKey) }

func (k *namedLists) createHandler(w http.ResponseWriter, r *request) error {
	name := r.form.required("FriendlyName", 0)
	if r.form.err != nil {
		return r.form.err
	}
	l, err := k.create(r.ctx, r.account, name)
	return writeResult(w, http.StatusCreated, k.json, l, err)
}

func (k *namedLists) fetchHandler(w http.ResponseWriter, r *request) error {
	l, err := k.fetch(r.ctx, r.account, r.p[k.prefix])
	return writeResult(w, http.StatusOK, k.json, l, err)
}

func (k *namedLists) updateHandler(w http.ResponseWriter, r *request) error {
	name := r.form.required("FriendlyName", 0)
	if r.form.err != nil {
		return r.form.err
	}
	l, err := k.rename(r.ctx, r.account, r.p[k.prefix], name)
	return writeResult(w, http.StatusOK, k.json, l, err)
}

func (k *namedLists) deleteHandler(w http.ResponseWriter, r *request) error {
	return noContent(w, k.remove(r.ctx, r.account, r.p[k.prefix]))
}

func (k *namedLists) listHandler(w http.ResponseWriter, r *request) error {
	return listPage(w, r, k.pageKey, nil, func(p store.Page) ([]store.NamedList, string, error) {
		return k.list(r.ctx, r.account, p)
	}, k.json)
}

func (k *namedLists) attachHandler(w http.ResponseWriter, r *request) error {
	sid := r.form.sid(k.sidField, k.prefix)
	if r.form.err != nil {
		return r.form.err
	}
	l, err := k.attach(r.ctx, r.account, r.p["TK"], sid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, r.trunkList(l, k.path))
	return nil
}

func (k *namedLists) fetchOnTrunkHandler(w http.ResponseWriter, r *request) error {
	l, err := k.fetchOnTrunk(r.ctx, r.account, r.p["TK"], r.p[k.prefix])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, r.trunkList(l, k.path))
	return nil
}

func (k *namedLists) detachHandler(w http.ResponseWriter, r *request) error {
	return noContent(w, k.detach(r.ctx, r.account, r.p["TK"], r.p[k.prefix]))
}

func (k *namedLists) listOnTrunkHandler(w http.ResponseWriter, r *request) error {
	return listPage(w, r, k.pageKey, nil, func(p store.Page) ([]store.NamedList, string, error) {
		return k.listOnTrunk(r.ctx, r.account, r.p["TK"], p)
	}, func(l store.NamedList) trunkListJSON { return r.trunkList(l, k.path) })
}
