package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"
)

// setGCPercent sets the process's GC target, unless GOGC is in the
// environment (it wins) or pct <= 0 (Go's default stays).
func setGCPercent(pct int) {
	if os.Getenv("GOGC") == "" && pct > 0 {
		debug.SetGCPercent(pct)
	}
}

// startProfiler serves the profiler on addr (see servePProf) unless addr
// is empty; stop closes it.
func startProfiler(log zerolog.Logger, addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	stop, bound, err := servePProf(addr)
	if err != nil {
		return nil, err
	}
	log.Info().Str("pprof", bound).Msg("profiler listening")
	return stop, nil
}

// servePProf serves Go's profiler (/debug/pprof/: CPU, heap, allocs,
// goroutines, mutex, block, trace) on addr, which must be a loopback IP
// and port: profiles show memory contents and a CPU profile costs CPU, so
// they are for an operator on the host (or an SSH tunnel), never the
// network. The handlers are on a mux of their own, not
// http.DefaultServeMux.
func servePProf(addr string) (stop func(), bound string, err error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("%w: --pprof %q: want a loopback IP and port (127.0.0.1:6060): %w", ErrConfig, addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, "", fmt.Errorf("%w: --pprof %q: the profiler listens on loopback only (127.0.0.1 or ::1)", ErrConfig, addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // named profiles: heap, allocs, goroutine, mutex, block, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return nil, "", fmt.Errorf("--pprof: %w", err)
	}
	// No WriteTimeout: a CPU profile or trace writes after ?seconds=N.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, ln.Addr().String(), nil
}
