package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
)

func runAPI(args []string) error {
	cfg := api.DefaultConfig()
	path, explicit := configPath(args)
	if err := loadSection(path, explicit, "api", &cfg); err != nil {
		return err
	}
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.String("config", path, "YAML config file (section api:)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP address (host:port, or unix:/path)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "store: sqlite:PATH (embedded) or postgres://... (shared by several edges)")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "base domain: trunk termination URIs are {prefix}.pstn.DOMAIN")
	fs.Var(&listFlag{vals: &cfg.Edges}, "edges", "edge names, comma-separated or repeated (localized URIs {prefix}.pstn.EDGE.DOMAIN, edge= in origination URIs)")
	fs.StringVar(&cfg.Realm, "realm", cfg.Realm, "SIP digest realm credentials are hashed for (default: the domain)")
	fs.StringVar(&cfg.CredentialsFile, "credentials-file", cfg.CredentialsFile, "where a generated main account's credentials are written (default: xtrunk-credentials.env beside the SQLite file)")
	fs.StringVar(&cfg.PublicURL, "public-url", cfg.PublicURL, "scheme://host for absolute URLs in responses (default: from each request)")
	fs.StringVar(&cfg.RecordingDir, "recording-dir", cfg.RecordingDir, "the relay's --recording-dir: recordings' WAVs are served from it, by name")
	fs.Var(&listFlag{vals: &cfg.EdgeAddresses}, "edge-address", "addresses or CIDRs of the edge beyond this host's interfaces (other edges, NAT), comma-separated or repeated: origination URIs may not point at them")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, "api")
	if err != nil {
		return err
	}

	edgeAddrs, err := api.ParseEdgeAddresses(cfg.EdgeAddresses)
	if err != nil {
		return fmt.Errorf("--edge-address: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := store.Open(openCtx, cfg.DB, cfg.StoreOptions())
	cancel()
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := api.EnsureMainAccount(ctx, st, os.Getenv("XTRUNK_ACCOUNT_SID"), os.Getenv("XTRUNK_AUTH_TOKEN"), cfg.CredentialsPath(), log); err != nil {
		return err
	}

	var ln net.Listener
	if p, ok := strings.CutPrefix(cfg.Listen, "unix:"); ok {
		os.Remove(p) // a stale socket from a previous run
		ln, err = net.Listen("unix", p)
	} else {
		ln, err = net.Listen("tcp", cfg.Listen)
	}
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{
		Handler: api.New(st, api.WithLogger(log), api.WithPublicURL(cfg.PublicURL),
			api.WithRecordingDir(cfg.RecordingDir), api.WithEdgeAddresses(edgeAddrs)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // recordings' media
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info().Str("listen", ln.Addr().String()).Str("store", st.Backend()).Str("domain", st.Domain()).
		Strs("edges", st.Edges()).Int("schema", store.SchemaVersion()).Msg("api ready")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// First signal: finish the requests in flight. A second one kills the
	// process (stop restores the default action).
	stop()
	log.Info().Msg("api stopping: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
