package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xtrunk/xtrunk/control/store"
)

// Remote admin: a client that is not local (admin.go, localClient)
// reaches /admin/ with the operator's credentials — the store's main
// account, as the API takes them — in HTTP Basic. Failures are counted
// (xtrunk_admin_auth_failures_total) and a source that fails
// adminMaxFailures times in adminFailWindow is answered 429 until the
// window passes, without its credentials being checked. /metrics,
// /healthz and /readyz stay open, as before.

// credCheck reports whether user:pass are the operator's.
type credCheck func(ctx context.Context, user, pass string) (bool, error)

const (
	adminMaxFailures = 5
	adminFailWindow  = time.Minute
	// adminMaxSources bounds the failure table: past it, unknown
	// sources are limited (a flood from many sources is an attack).
	adminMaxSources = 4096
)

// adminGuard lets local clients through and others with the operator's
// credentials; with no check (nil), remote clients get 403 as before.
type adminGuard struct {
	check    credCheck
	failures *prometheus.CounterVec // by reason: missing, wrong, limited

	mu      sync.Mutex
	sources map[netip.Addr]*failCount
}

type failCount struct {
	n     int
	since time.Time
}

// newAdminGuard registers xtrunk_admin_auth_failures_total on reg.
func newAdminGuard(check credCheck, reg prometheus.Registerer) (*adminGuard, error) {
	g := &adminGuard{check: check, sources: map[netip.Addr]*failCount{},
		// xtrunk_admin_auth_failures_total{reason}: remote /admin/
		// requests refused: "missing" (no credentials), "wrong" (not
		// the operator's), "limited" (the source failed too often).
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_admin_auth_failures_total",
			Help: "Remote admin requests refused: missing or wrong operator credentials, or a source rate-limited after failures."}, []string{"reason"}),
	}
	for _, r := range []string{"missing", "wrong", "limited"} {
		g.failures.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(g.failures); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// adminOnly is the guard of a process without operator credentials:
// local clients only.
func adminOnly(h http.HandlerFunc) http.HandlerFunc { return (&adminGuard{}).wrap(h) }

func (g *adminGuard) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if localClient(r) {
			h(w, r)
			return
		}
		if g == nil || g.check == nil {
			adminError(w, http.StatusForbidden, "admin endpoints answer local clients only: this process has no operator credentials to check")
			return
		}
		src := remoteAddr(r)
		if g.limited(src) {
			g.failures.WithLabelValues("limited").Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(adminFailWindow.Seconds())))
			adminError(w, http.StatusTooManyRequests, "too many failed admin logins from this address: try again later")
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			g.unauthorized(w, src, "missing", "admin endpoints need the operator credentials (HTTP Basic: AccountSid and AuthToken) from a remote client")
			return
		}
		good, err := g.check(r.Context(), user, pass)
		if err != nil {
			adminError(w, http.StatusServiceUnavailable, "checking the credentials: "+err.Error())
			return
		}
		if !good {
			g.unauthorized(w, src, "wrong", "invalid operator credentials")
			return
		}
		h(w, r)
	}
}

// unauthorized refuses a remote request without (reason "missing") or
// with wrong ("wrong") credentials: it counts the failure toward src's
// rate limit and answers 401 with a Basic challenge.
func (g *adminGuard) unauthorized(w http.ResponseWriter, src netip.Addr, reason, msg string) {
	g.failures.WithLabelValues(reason).Inc()
	g.fail(src)
	w.Header().Set("WWW-Authenticate", `Basic realm="xtrunk admin"`)
	adminError(w, http.StatusUnauthorized, msg)
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// limited reports whether src has failed too often in the window.
func (g *adminGuard) limited(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.sources[src]
	if f == nil {
		return len(g.sources) >= adminMaxSources && !g.pruneLocked()
	}
	if time.Since(f.since) > adminFailWindow {
		delete(g.sources, src)
		return false
	}
	return f.n >= adminMaxFailures
}

func (g *adminGuard) fail(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.sources[src]
	if f == nil || time.Since(f.since) > adminFailWindow {
		if f == nil && len(g.sources) >= adminMaxSources && !g.pruneLocked() {
			return
		}
		f = &failCount{since: time.Now()}
		g.sources[src] = f
	}
	f.n++
}

// pruneLocked drops the sources whose window has passed; it reports
// whether there is room again.
func (g *adminGuard) pruneLocked() bool {
	for a, f := range g.sources {
		if time.Since(f.since) > adminFailWindow {
			delete(g.sources, a)
		}
	}
	return len(g.sources) < adminMaxSources
}

// storeOperator checks credentials against the store's main accounts
// (active, not a subaccount), as the API does: sip has the store.
func storeOperator(st *store.Store) credCheck {
	return func(ctx context.Context, user, pass string) (bool, error) {
		if !store.ValidSid(store.PrefixAccount, user) {
			subtle.ConstantTimeCompare([]byte(pass), []byte(store.NewAuthToken()))
			return false, nil
		}
		a, err := st.Account(ctx, user)
		if errors.Is(err, store.ErrNotFound) {
			subtle.ConstantTimeCompare([]byte(pass), []byte(store.NewAuthToken())) // same work as a known account
			return false, nil
		}
		if err != nil {
			return false, err
		}
		ok := subtle.ConstantTimeCompare([]byte(pass), []byte(a.AuthToken)) == 1
		return ok && a.OwnerSid == "" && a.Status == store.StatusActive, nil
	}
}

// envOperator checks credentials against XTRUNK_ACCOUNT_SID and
// XTRUNK_AUTH_TOKEN in the process's environment (the relay has no
// store; systemd can give it the credentials file as EnvironmentFile);
// nil when they are not set: remote admin stays refused.
func envOperator() credCheck {
	sid, token := os.Getenv("XTRUNK_ACCOUNT_SID"), os.Getenv("XTRUNK_AUTH_TOKEN")
	if sid == "" || token == "" {
		return nil
	}
	return func(_ context.Context, user, pass string) (bool, error) {
		u := subtle.ConstantTimeCompare([]byte(user), []byte(sid))
		p := subtle.ConstantTimeCompare([]byte(pass), []byte(token))
		return u&p == 1, nil
	}
}
