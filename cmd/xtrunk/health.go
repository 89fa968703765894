package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
)

// check is one readiness condition of a process (/readyz).
type check struct {
	name string
	fn   func(ctx context.Context) error
}

// checkTimeout bounds each readiness check: a probe must answer quickly
// even when a dependency hangs.
const checkTimeout = 2 * time.Second

// health is the body of /healthz and /readyz.
type health struct {
	Status string            `json:"status"`           // ok, ready, not ready
	Checks map[string]string `json:"checks,omitempty"` // name -> "ok" or what failed
}

// addHealth serves /healthz (the process is alive and serving HTTP: 200)
// and /readyz (200 when every check passes, else 503 naming the failed
// ones) on mux, without authentication: they say nothing an attacker
// could use beyond "up".
func addHealth(mux *http.ServeMux, checks ...check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, health{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		res := health{Status: "ready", Checks: make(map[string]string, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
				defer cancel()
				msg := "ok"
				if err := c.fn(ctx); err != nil {
					msg = err.Error()
				}
				mu.Lock()
				res.Checks[c.name] = msg
				mu.Unlock()
			})
		}
		wg.Wait()
		code := http.StatusOK
		for _, m := range res.Checks {
			if m != "ok" {
				res.Status, code = "not ready", http.StatusServiceUnavailable
			}
		}
		writeHealth(w, code, res)
	})
}

func writeHealth(w http.ResponseWriter, code int, h health) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(h)
}

// metricsHandler serves the gatherers' metrics plus xtrunk_build_info.
func metricsHandler(gs ...prometheus.Gatherer) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(buildInfo()); err != nil {
		return nil, err
	}
	all := append(prometheus.Gatherers{reg}, gs...)
	return promhttp.HandlerFor(all, promhttp.HandlerOpts{}), nil
}

// serveHTTP listens on addr (tcp) and serves h until the returned stop is
// called.
func serveHTTP(flagName, addr string, h http.Handler) (stop func(), bound net.Addr, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--%s: %w", flagName, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, ln.Addr(), nil
}

// ngPing is a readiness check that an NG server (the relay, or a stock
// rtpengine) answers ping at addr. An unspecified host is pinged on
// loopback.
func ngPing(name, addr string) check {
	return check{name: name, fn: func(ctx context.Context) error {
		target := addr
		if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().IsUnspecified() {
			lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
			if ap.Addr().Is6() {
				lo = netip.IPv6Loopback()
			}
			target = netip.AddrPortFrom(lo, ap.Port()).String()
		}
		c, err := ng.Dial(target, ng.WithTimeout(checkTimeout), ng.WithRetransmit(250*time.Millisecond))
		if err != nil {
			return err
		}
		defer c.Close()
		res, err := c.Do(ctx, ng.Dict{"command": "ping"})
		if err != nil {
			return fmt.Errorf("%w: NG ping %s: %w", ErrNotReady, target, err)
		}
		if r := res.Str("result"); r != "pong" {
			return fmt.Errorf("%w: NG ping %s: result %q", ErrNotReady, target, r)
		}
		return nil
	}}
}

// serveMetrics serves /metrics (reg plus xtrunk_build_info), /healthz and
// /readyz (checks) on addr, the --metrics listener. An empty addr (the
// flag's "off") serves nothing: stop is a no-op and bound is "", so the
// daemons need no branch of their own around it.
func serveMetrics(addr string, reg prometheus.Gatherer, checks ...check) (stop func(), bound string, err error) {
	return serveMetricsAdmin(addr, reg, nil, checks...)
}

// serveMetricsAdmin is serveMetrics plus the process's /admin/ endpoints
// (admin.go), mounted by mount when it is not nil.
func serveMetricsAdmin(addr string, reg prometheus.Gatherer, mount func(*http.ServeMux), checks ...check) (stop func(), bound string, err error) {
	if addr == "" {
		return func() {}, "", nil
	}
	mux := http.NewServeMux()
	if mount != nil {
		mount(mux)
	}
	mh, err := metricsHandler(reg)
	if err != nil {
		return nil, "", err
	}
	mux.Handle("GET /metrics", mh)
	addHealth(mux, checks...)
	stop, a, err := serveHTTP("metrics", addr, mux)
	if err != nil {
		return nil, "", err
	}
	return stop, a.String(), nil
}

// storeCheck is a readiness check that the store answers a query.
func storeCheck(st *store.Store) check {
	return check{name: "store", fn: func(ctx context.Context) error {
		if _, err := st.Revision(ctx); err != nil {
			return fmt.Errorf("%w: store: %w", ErrNotReady, err)
		}
		return nil
	}}
}
