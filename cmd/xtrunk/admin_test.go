package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
