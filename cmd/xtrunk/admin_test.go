package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xtrunk/xtrunk/control/store"
)

// The admin endpoints answer loopback and the host's own addresses, and
// 403 with a JSON error to anyone else.
func TestAdminLocalOnly(t *testing.T) {
	h := adminOnly(func(w http.ResponseWriter, _ *http.Request) { adminJSON(w, http.StatusOK, []string{}) })
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("loopback: %d %s", res.StatusCode, b)
	}
	for _, c := range []struct {
		remote, local string
		want          int
	}{
		{"198.51.100.7:40000", "198.51.100.1:9102", http.StatusForbidden}, // another host
		{"198.51.100.1:40000", "198.51.100.1:9102", http.StatusOK},        // this host, through its own address
		{"[::1]:40000", "[::1]:9102", http.StatusOK},
		{"[::ffff:198.51.100.7]:40000", "[::ffff:198.51.100.1]:9102", http.StatusForbidden},
		{"garbage", "198.51.100.1:9102", http.StatusForbidden},
	} {
		req := httptest.NewRequest("GET", "/admin/calls", nil)
		req.RemoteAddr = c.remote
		la, _ := net.ResolveTCPAddr("tcp", c.local)
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, la))
		w := httptest.NewRecorder()
		h(w, req)
		if w.Code != c.want {
			t.Errorf("%s → %s: %d, want %d (%s)", c.remote, c.local, w.Code, c.want, w.Body)
		}
		if c.want == http.StatusForbidden && !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("403 body %s", w.Body)
		}
	}
}

// adminURL reaches a wildcard listener on loopback and keeps URLs.
func TestAdminURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "http://127.0.0.1:9102",
		"0.0.0.0:9102":      "http://127.0.0.1:9102",
		":9102":             "http://127.0.0.1:9102",
		"198.18.1.1:9102":   "http://198.18.1.1:9102",
		"http://h:1/":       "http://h:1",
		"[2001:db8::1]:910": "http://[2001:db8::1]:910",
	} {
		if got := adminURL(in, "127.0.0.1:9102"); got != want {
			t.Errorf("adminURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A remote client reaches /admin/ with the operator's credentials only:
// none → 401 with a JSON error and a Basic challenge, wrong → 401, both
// counted; right → through; a source failing adminMaxFailures times is
// answered 429 until its window passes, even with the right ones.
func TestAdminRemoteAuth(t *testing.T) {
	t.Setenv("XTRUNK_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
	t.Setenv("XTRUNK_AUTH_TOKEN", "0123456789abcdef0123456789abcdef")
	reg := prometheus.NewRegistry()
	g, err := newAdminGuard(envOperator(), reg)
	if err != nil {
		t.Fatal(err)
	}
	h := g.wrap(func(w http.ResponseWriter, _ *http.Request) { adminJSON(w, http.StatusOK, []string{}) })
	do := func(remote, user, pass string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/admin/calls", nil)
		req.RemoteAddr = remote
		la, _ := net.ResolveTCPAddr("tcp", "198.51.100.1:9102")
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, la))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		w := httptest.NewRecorder()
		h(w, req)
		return w
	}
	const noc = "198.51.100.7:40000"
	if w := do(noc, "", ""); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"error"`) ||
		!strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no credentials: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w := do(noc, "AC0123456789abcdef0123456789abcdef", "ffffffffffffffffffffffffffffffff"); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "invalid operator credentials") {
		t.Errorf("wrong token: %d %s", w.Code, w.Body)
	}
	if w := do(noc, "AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"); w.Code != http.StatusOK {
		t.Errorf("the operator's credentials: %d %s", w.Code, w.Body)
	}
	if w := do("127.0.0.1:4000", "", ""); w.Code != http.StatusOK {
		t.Errorf("loopback without credentials: %d %s", w.Code, w.Body)
	}
	// an attacker's source: limited after adminMaxFailures, right ones or not
	const bad = "203.0.113.9:5000"
	for range adminMaxFailures {
		do(bad, "AC0123456789abcdef0123456789abcdef", "nope")
	}
	if w := do(bad, "AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("after %d failures: %d %v %s", adminMaxFailures, w.Code, w.Header(), w.Body)
	}
	if w := do(noc, "AC0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"); w.Code != http.StatusOK {
		t.Errorf("another source is not limited: %d", w.Code)
	}
	want := map[string]float64{"missing": 1, "wrong": 1 + adminMaxFailures, "limited": 1}
	for reason, n := range want {
		if got := testutil.ToFloat64(g.failures.WithLabelValues(reason)); got != n {
			t.Errorf("xtrunk_admin_auth_failures_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "xtrunk_admin_auth_failures_total"); err != nil || n != 3 {
		t.Errorf("registered series: %d %v", n, err)
	}
}

// Without operator credentials in its environment, the relay's admin
// stays local-only (403), as before.
func TestAdminRemoteWithoutCredentials(t *testing.T) {
	t.Setenv("XTRUNK_ACCOUNT_SID", "")
	if envOperator() != nil {
		t.Fatal("envOperator without XTRUNK_ACCOUNT_SID")
	}
	g, err := newAdminGuard(envOperator(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/admin/relay", nil)
	req.RemoteAddr = "198.51.100.7:40000"
	w := httptest.NewRecorder()
	g.wrap(func(w http.ResponseWriter, _ *http.Request) {})(w, req)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "local clients only") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

// sip's check: the store's main account only — a subaccount's own
// credentials, a wrong token or an unknown SID are refused.
func TestAdminStoreOperator(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "x.db"), store.Options{Domain: "example.net"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	main, _, err := st.Bootstrap(ctx, "", "", "operator", nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := st.CreateSubaccount(ctx, main.Sid, "tenant", store.TypeFull)
	if err != nil {
		t.Fatal(err)
	}
	check := storeOperator(st)
	for _, c := range []struct {
		name, user, pass string
		want             bool
	}{
		{"the main account", main.Sid, main.AuthToken, true},
		{"a wrong token", main.Sid, sub.AuthToken, false},
		{"a subaccount", sub.Sid, sub.AuthToken, false},
		{"an unknown account", store.NewSid(store.PrefixAccount), main.AuthToken, false},
		{"not a SID", "operator", main.AuthToken, false},
	} {
		if got, err := check(ctx, c.user, c.pass); err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
}
