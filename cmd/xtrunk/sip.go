package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling"
)

func runSIP(args []string) error {
	cfg := signalling.DefaultConfig()
	path, explicit := configPath(args)
	if err := loadSection(path, explicit, "sip", &cfg); err != nil {
		return err
	}
	fs := flag.NewFlagSet("sip", flag.ContinueOnError)
	fs.String("config", path, "YAML config file (section sip:)")
	fs.StringVar(&cfg.ListenUDP, "listen-udp", cfg.ListenUDP, "SIP UDP listen address")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "base domain: trunks are {prefix}.pstn.DOMAIN")
	fs.StringVar(&cfg.Edge, "edge", cfg.Edge, "this edge's name (localized hosts {prefix}.pstn.EDGE.DOMAIN)")
	fs.Var(&listFlag{vals: &cfg.Carriers}, "carrier", "carrier gateway URI sip:HOST[:PORT][;priority=N][;weight=N] (repeatable)")
	fs.Var(&listFlag{vals: &cfg.CarrierSources}, "carrier-source", "CIDR allowed to send origination traffic (repeatable)")
	fs.StringVar(&cfg.RelayNG, "relay-ng", cfg.RelayNG, "the relay's NG control address (UDP)")
	fs.StringVar(&cfg.RelayCustomerIface, "relay-customer-iface", cfg.RelayCustomerIface, "the relay's logical interface toward customers")
	fs.StringVar(&cfg.RelayCarrierIface, "relay-carrier-iface", cfg.RelayCarrierIface, "the relay's logical interface toward carriers")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "the control plane's store DSN (sqlite:PATH or postgres://…)")
	fs.StringVar(&cfg.Metrics, "metrics", cfg.Metrics, "Prometheus metrics address (empty: off)")
	fs.IntVar(&cfg.DefaultCPS, "default-cps", cfg.DefaultCPS, "per-trunk calls per second (0: no limit)")
	fs.IntVar(&cfg.DefaultConcurrency, "default-concurrency", cfg.DefaultConcurrency, "per-trunk concurrent calls (0: no limit)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, "sip")
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := store.Open(openCtx, cfg.DB, store.Options{Domain: cfg.Domain, Edges: edgeList(cfg.Edge)})
	cancel()
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := signalling.New(cfg, st, signalling.WithLogger(log))
	if err != nil {
		return err
	}
	defer srv.Close()
	if cfg.Metrics != "" {
		// Signalling metrics come in a later slice; the endpoint answers
		// so scrapers and health checks can be wired now.
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {})
		hs := &http.Server{Addr: cfg.Metrics, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", cfg.Metrics)
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
	}
	log.Info().Str("udp", cfg.ListenUDP).Str("domain", cfg.Domain).Str("relay_ng", cfg.RelayNG).Int("carriers", len(cfg.Carriers)).Msg("sip ready")
	err = srv.ListenAndServe(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func edgeList(e string) []string {
	if e == "" {
		return nil
	}
	return []string{e}
}
