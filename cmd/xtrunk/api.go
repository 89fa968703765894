package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
)

// apiShutdownTimeout bounds finishing the requests in flight at the
// first SIGINT or SIGTERM (a recording's download may be one of them).
const apiShutdownTimeout = 15 * time.Second

// apiSettings is xtrunk api's configuration: api.Config and the
// --metrics flag, which is not part of it.
type apiSettings struct {
	api.Config
	metrics string
}

// apiDaemon is xtrunk api: the first SIGINT or SIGTERM finishes the
// requests in flight, a second one kills it; SIGHUP re-reads the log
// level.
var apiDaemon = daemon[apiSettings]{
	config: func(args []string) (apiSettings, *command, error) {
		cfg, metrics, cmd, err := apiConfig(args)
		return apiSettings{cfg, metrics}, cmd, err
	},
	reloadLogLevel: true,
	serve:          serveAPI,
}

func serveAPI(p *process, settings apiSettings) error {
	cfg, metrics, log, ctx := settings.Config, settings.metrics, p.log, p.ctx
	edgeAddrs, err := api.ParseEdgeAddresses(cfg.EdgeAddresses)
	if err != nil {
		return fmt.Errorf("--edge-address: %w", err)
	}
	proxies, err := api.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxy: %w", err)
	}

	openCtx, cancel := context.WithTimeout(ctx, storeOpenTimeout)
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
	// /healthz and /readyz answer without auth beside the API; everything
	// else is the API and its Basic auth.
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.Handle("/", api.New(st, api.WithLogger(log), api.WithPublicURL(cfg.PublicURL),
		api.WithRecordingDir(cfg.RecordingDir), api.WithEdgeAddresses(edgeAddrs), api.WithRegistry(reg),
		api.WithTenantWriteLimit(cfg.TenantWriteRate, cfg.TenantWriteBurst), api.WithTrustedProxies(proxies)))
	addHealth(mux, storeCheck(st))
	if metrics != "" {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	closeHTTP, metricsAddr, err := serveMetrics(metrics, reg, storeCheck(st))
	if err != nil {
		ln.Close()
		return err
	}
	defer closeHTTP()
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // recordings' media
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info().Str("listen", ln.Addr().String()).Str("store", st.Backend()).Str("domain", st.Domain()).
		Strs("edges", st.Edges()).Int("schema", store.SchemaVersion()).Str("metrics", metricsAddr).Str("version", versionString()).Msg("api ready")
	ready(log)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// First signal: finish the requests in flight. A second one kills the
	// process.
	p.defaultSignals()
	stopping(log)
	log.Info().Msg("api stopping: draining requests")
	// ctx has ended (that is why the api stops); the requests in flight
	// still get apiShutdownTimeout.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), apiShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// apiConfig is the configuration from args, the environment and the config
// file.
func apiConfig(args []string) (api.Config, string, *command, error) {
	cfg := api.DefaultConfig()
	cmd := newCommand("api", "The control plane: a Twilio-compatible REST API on SQLite (embedded) or PostgreSQL.", apiExamples)
	cmd.env = []string{"XTRUNK_ACCOUNT_SID, XTRUNK_AUTH_TOKEN  the main account created on an empty store (they win over --credentials)"}
	fs := cmd.fs
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP address (host:port, or unix:/path)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "store: sqlite:PATH (embedded) or postgres://... (shared by several edges)")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "base domain: trunk termination URIs are {prefix}.pstn.DOMAIN")
	fs.Var(&listFlag{vals: &cfg.Edges}, "edges", "edge names, comma-separated or repeated (localized URIs {prefix}.pstn.EDGE.DOMAIN, edge= in origination URIs)")
	fs.StringVar(&cfg.Realm, "realm", cfg.Realm, "SIP digest realm credentials are hashed for (default: the domain)")
	fs.StringVar(&cfg.CredentialsFile, "credentials", cfg.CredentialsFile, "the main account's credentials file (KEY=value, mode 0600, as xtrunk init writes it): on an empty store the account is created from it; absent, one is generated into it (default: xtrunk-credentials.env beside the SQLite file)")
	fs.StringVar(&cfg.CredentialsFile, "credentials-file", cfg.CredentialsFile, "deprecated: --credentials")
	fs.StringVar(&cfg.PublicURL, "public-url", cfg.PublicURL, "scheme://host for absolute URLs in responses (default: from each request)")
	fs.StringVar(&cfg.RecordingDir, "recording-dir", cfg.RecordingDir, "the relay's --recording-dir: recordings' WAVs are served from it, by name")
	fs.Var(&listFlag{vals: &cfg.EdgeAddresses}, "edge-address", "addresses or CIDRs of the edge beyond this host's interfaces (other edges, NAT), comma-separated or repeated: origination URIs may not point at them")
	fs.Var(&listFlag{vals: &cfg.TrustedProxies}, "trusted-proxy", "reverse proxies in front of the API (addresses or CIDRs, comma-separated or repeated): X-Forwarded-For from them names the client, for the failed-login limit and the log (the proxy must append the peer it saw: nginx $proxy_add_x_forwarded_for); from anyone else it is ignored")
	fs.Float64Var(&cfg.TenantWriteRate, "tenant-write-rate", cfg.TenantWriteRate, "writes (POST, DELETE) a second each subaccount may make; past it and --tenant-write-burst, 429 (0: no limit; the main account is never limited)")
	fs.IntVar(&cfg.TenantWriteBurst, "tenant-write-burst", cfg.TenantWriteBurst, "writes a subaccount may make at once before --tenant-write-rate applies")
	metrics := fs.String("metrics", "", "Prometheus /metrics, /healthz and /readyz address, without auth (empty: off)")
	if err := cmd.parse(args, &cfg); err != nil {
		return cfg, "", nil, err
	}
	if cfg.TenantWriteBurst < 1 || cfg.TenantWriteRate < 0 || math.IsNaN(cfg.TenantWriteRate) || math.IsInf(cfg.TenantWriteRate, 0) {
		return cfg, "", nil, fmt.Errorf("%w: --tenant-write-rate must be 0 or more and --tenant-write-burst 1 or more", ErrConfig)
	}
	return cfg, *metrics, cmd, nil
}

const apiExamples = `xtrunk api --domain example.net --edges ashburn,dublin     # SQLite in ./xtrunk.db, 127.0.0.1:8080
xtrunk api --db postgres://xtrunk@db.example.net/xtrunk --metrics 127.0.0.1:9103
curl -s 127.0.0.1:8080/readyz
curl -u "$XTRUNK_ACCOUNT_SID:$XTRUNK_AUTH_TOKEN" http://127.0.0.1:8080/v1/Trunks`
