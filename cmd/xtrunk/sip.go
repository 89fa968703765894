package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling"
)

// sipDaemon is xtrunk sip: SIGTERM drains (a second signal cuts the
// drain short), SIGINT stops at once, calls still up get a BYE either
// way; SIGHUP reloads what can change while calls run (sipReload).
var sipDaemon = daemon[signalling.Config]{config: sipConfig, serve: serveSIP}

func serveSIP(p *process, cfg signalling.Config) error {
	setGCPercent(cfg.GCPercent)
	log := p.log
	setMemoryLimit(log, cfg.MemoryLimit)
	// A signal while the store opens is acted on once sip serves (drain
	// or stop), so the open is not cut short by it.
	openCtx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), storeOpenTimeout)
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
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	served := make(chan error, 1)
	var serving atomic.Bool
	serving.Store(true)
	go func() {
		err := srv.ListenAndServe(serveCtx)
		serving.Store(false)
		served <- err
	}()
	defer p.reloadOnHUP(sipReload(p.cmd, p.args, srv))()
	closePProf, err := startProfiler(log, cfg.PProf)
	if err != nil {
		return err
	}
	defer closePProf()
	closeHTTP, metricsAddr, err := serveMetricsAdmin(cfg.Metrics, srv.Registry(), sipAdmin(srv, storeOperator(st)), sipReadiness(srv, st, &serving, cfg.RelayNG)...)
	if err != nil {
		return err
	}
	defer closeHTTP()
	ev := log.Info()
	for _, tr := range srv.Transports() {
		ev = ev.Str(strings.ToLower(tr), srv.Addr(tr).String())
	}
	ev.Str("domain", cfg.Domain).Str("relay_ng", cfg.RelayNG).Int("carriers", len(cfg.Carriers)).Str("metrics", metricsAddr).Str("version", versionString()).Msg("sip ready")
	ready(log)

	select {
	case err := <-served:
		return err // a listener failed
	case <-p.ctx.Done():
	}
	// SIGTERM drains; SIGINT stops at once. Calls still up get a BYE
	// either way and their CDRs are written before sip exits. A signal
	// after the first hurries the stop (hurryOnSignal); one more kills.
	began := time.Now()
	hurry, stopWatch := hurryOnSignal(log, srv, p)
	defer stopWatch()
	if sig := p.signal(); sig == syscall.SIGTERM {
		drain(log, srv, hurry, srv.DrainTimeout())
	} else {
		log.Info().Str("signal", sig.String()).Int("calls", srv.Calls()).Msg("stopping")
	}
	stopping(log)
	if err := srv.Close(); err != nil {
		log.Debug().Err(err).Msg("close")
	}
	stopServing()
	<-served
	log.Info().Dur("stop_took", time.Since(began)).Msg("sip stopped")
	return nil
}

// hurryOnSignal watches for a signal after the first while sip stops:
// it ends the drain (the returned context), has the server hang up
// without waiting long for BYE answers (signalling.Server.Hurry), and
// gives SIGINT and SIGTERM their default action back, so a third signal
// kills the process. stop ends the watch.
func hurryOnSignal(log zerolog.Logger, srv *signalling.Server, p *process) (hurry context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-p.sigs:
			log.Info().Str("signal", sig.String()).Int("calls", srv.Calls()).Msg("second signal: hanging up now; a third kills the process")
			srv.Hurry()
			p.defaultSignals()
			cancel()
		case <-done:
		}
	}()
	return ctx, func() { close(done); cancel() }
}

// sipConfig is the configuration from args, the environment and the config
// file.
func sipConfig(args []string) (signalling.Config, *command, error) {
	cfg := signalling.DefaultConfig()
	cmd := newCommand("sip", "The SIP signalling: the trunking B2BUA between customers' PBXs and carrier gateways.", sipExamples)
	fs := cmd.fs
	fs.StringVar(&cfg.ListenUDP, "listen-udp", cfg.ListenUDP, "SIP UDP listen address (empty: off)")
	fs.StringVar(&cfg.ListenTCP, "listen-tcp", cfg.ListenTCP, "SIP TCP listen address (auto: the UDP address; empty: off)")
	fs.StringVar(&cfg.ListenTLS, "listen-tls", cfg.ListenTLS, "SIP TLS listen address, on when --tls-cert is given (auto: the UDP host, port 5061; empty: off)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "TLS certificate chain (PEM); renewals are picked up without a restart")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "TLS private key (PEM)")
	fs.StringVar(&cfg.TLSMinVersion, "tls-min-version", cfg.TLSMinVersion, "lowest TLS version, listening and dialing: 1.2 or 1.3 (1.0, 1.1 for old PBXs)")
	fs.StringVar(&cfg.TLSCA, "tls-ca", cfg.TLSCA, "extra CA certificates (PEM) trusted for TLS servers xtrunk dials")
	fs.BoolVar(&cfg.TLSInsecureSkipVerify, "tls-insecure-skip-verify", cfg.TLSInsecureSkipVerify, "do not verify TLS servers xtrunk dials (labs only)")
	fs.StringVar(&cfg.Advertise, "advertise", cfg.Advertise, "host put in Contact/Via/From on every leg, behind NAT for instance (default: the listen host; on a wildcard listener, the address of the interface facing each peer)")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "base domain: trunks are {prefix}.pstn.DOMAIN")
	fs.StringVar(&cfg.Edge, "edge", cfg.Edge, "this edge's name (localized hosts {prefix}.pstn.EDGE.DOMAIN)")
	fs.Var(&listFlag{vals: &cfg.Carriers}, "carrier", "carrier gateway URI sip:HOST[:PORT][;priority=N][;weight=N] (repeatable)")
	fs.Var(&listFlag{vals: &cfg.CarrierSources}, "carrier-source", "CIDR allowed to send origination traffic (repeatable)")
	fs.StringVar(&cfg.RelayNG, "relay-ng", cfg.RelayNG, "the relay's NG control address (UDP)")
	fs.StringVar(&cfg.RelayCustomerIface, "relay-customer-iface", cfg.RelayCustomerIface, "the relay's logical interface toward customers")
	fs.StringVar(&cfg.RelayCarrierIface, "relay-carrier-iface", cfg.RelayCarrierIface, "the relay's logical interface toward carriers")
	fs.Var(&listFlag{vals: &cfg.RelayInterfaces}, "relay-interface", "the relay's interface NAME/IP (its --interface): a leg whose signalling uses IP gets NAME (repeatable)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "the control plane's store DSN (sqlite:PATH or postgres://…)")
	fs.StringVar(&cfg.Metrics, "metrics", cfg.Metrics, "Prometheus metrics address, served at /metrics (empty: off)")
	fs.StringVar(&cfg.PProf, "pprof", cfg.PProf, "Go profiler address, served at /debug/pprof/: a loopback IP and port, e.g. 127.0.0.1:6060 (empty: off)")
	fs.IntVar(&cfg.DefaultCPS, "default-cps", cfg.DefaultCPS, "per-trunk calls per second (0: no limit)")
	fs.IntVar(&cfg.DefaultConcurrency, "default-concurrency", cfg.DefaultConcurrency, "per-trunk concurrent calls (0: no limit)")
	fs.DurationVar(&cfg.MediaTimeout, "media-timeout", cfg.MediaTimeout, "end an answered call with no RTP/RTCP in either direction for this long (0: never)")
	fs.DurationVar(&cfg.SessionMinSE, "session-min-se", cfg.SessionMinSE, "session timers (RFC 4028): shortest Session-Expires accepted; shorter gets 422 with Min-SE (whole seconds)")
	fs.DurationVar(&cfg.SessionExpires, "session-expires", cfg.SessionExpires, "session timers (RFC 4028): interval the edge asks for on a leg whose peer asks none (0: only the peers' own)")
	fs.DurationVar(&cfg.CarrierProbeInterval, "carrier-probe-interval", cfg.CarrierProbeInterval, "how often each carrier gateway gets an OPTIONS: down after 3 unanswered, up after 2 answered; a down gateway is skipped while another is up (0: no probe)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "on SIGTERM, how long calls in progress may go on before they are hung up")
	fs.IntVar(&cfg.GuardMaxRequests, "guard-max-requests", cfg.GuardMaxRequests, "requests per --guard-request-window from one source before it is banned (0: no limit)")
	fs.DurationVar(&cfg.GuardRequestWindow, "guard-request-window", cfg.GuardRequestWindow, "window for --guard-max-requests")
	fs.IntVar(&cfg.GuardMaxAuthFailures, "guard-max-auth-failures", cfg.GuardMaxAuthFailures, "failed digest authentications per --guard-auth-window before a ban (0: no limit)")
	fs.DurationVar(&cfg.GuardAuthWindow, "guard-auth-window", cfg.GuardAuthWindow, "window for --guard-max-auth-failures")
	fs.DurationVar(&cfg.GuardBan, "guard-ban", cfg.GuardBan, "how long a banned source (or prefix) is ignored")
	fs.IntVar(&cfg.GuardMaxSources, "guard-max-sources", cfg.GuardMaxSources, "sources whose request rates are tracked at once; full, the least recently seen is forgotten")
	fs.IntVar(&cfg.GuardMaxBans, "guard-max-bans", cfg.GuardMaxBans, "sources under a ban at once (a quarter of it for prefixes); full, the oldest ban ends")
	fs.IntVar(&cfg.GuardPrefixBans, "guard-prefix-bans", cfg.GuardPrefixBans, "distinct sources banned in one /24 (IPv6 /64) within --guard-prefix-window that ban the prefix (0: never, at most 8)")
	fs.DurationVar(&cfg.GuardPrefixWindow, "guard-prefix-window", cfg.GuardPrefixWindow, "window for --guard-prefix-bans")
	fs.BoolVar(&cfg.DigestURICheck, "digest-uri-check", cfg.DigestURICheck, "refuse (403) digest credentials whose uri= is not the Request-URI; =false only for clients that put the server's address there (SIPp without -auth_uri)")
	fs.DurationVar(&cfg.OptionsInterval, "options-interval", cfg.OptionsInterval, "one OPTIONS per source is answered per interval; the others get nothing (0: all)")
	fs.Var(&listFlag{vals: &cfg.GuardScanners}, "guard-scanner", "User-Agent substring that gets no answer (repeatable; replaces the built-in list)")
	fs.DurationVar(&cfg.TCPIdleTimeout, "tcp-idle-timeout", cfg.TCPIdleTimeout, "close a TCP/TLS connection nothing (not even a CRLF keep-alive) came on for this long (0: never)")
	fs.IntVar(&cfg.TCPMaxPerSource, "tcp-max-per-source", cfg.TCPMaxPerSource, "TCP+TLS connections open at once from one address; more are closed at accept (0: no cap)")
	fs.IntVar(&cfg.TCPMax, "tcp-max", cfg.TCPMax, "TCP+TLS connections open at once in all; more are closed at accept (0: no cap)")
	fs.DurationVar(&cfg.TLSHandshakeTimeout, "tls-handshake-timeout", cfg.TLSHandshakeTimeout, "a TLS client must finish its handshake within this")
	fs.BoolVar(&cfg.FinishLiveCalls, "finish-live-calls", cfg.FinishLiveCalls, "at start, end the live-call rows a previous run of this edge left in the store (CDR cause 'system: signalling restarted'); only when no other sip of this --edge name uses the store (xtrunk up sets it)")
	fs.IntVar(&cfg.UDPReceiveBuffer, "udp-rcvbuf", cfg.UDPReceiveBuffer, "receive buffer in bytes of the SIP UDP listener (0: the kernel's default); capped by net.core.rmem_max without CAP_NET_ADMIN; drops show in xtrunk_sip_udp_receive_drops_total")
	fs.DurationVar(&cfg.TxLinger, "tx-linger", cfg.TxLinger, "how long a finished SIP transaction absorbs retransmissions (Timers J, L, M, D; 0: RFC 3261's 32 s on UDP); a retransmission after it is handled as a new request")
	fs.IntVar(&cfg.NGReceiveBuffer, "ng-rcvbuf", cfg.NGReceiveBuffer, "receive buffer in bytes of the socket sip sends NG commands to the relay from (0: the kernel's default); capped as --udp-rcvbuf")
	fs.IntVar(&cfg.GCPercent, "gc-percent", cfg.GCPercent, "Go GC target (GOGC) for the process; the GOGC environment variable wins; lower it to trade setup latency for memory")
	fs.StringVar(&cfg.MemoryLimit, "memory-limit", cfg.MemoryLimit, "Go soft memory limit (GOMEMLIMIT wins): a size such as 2GiB, off, or auto (a quarter of MemTotal, or 90 % of the cgroup's memory.max if lower); near it the collector runs sooner than --gc-percent says")
	fs.StringVar(&cfg.CNAMURL, "cnam-url", cfg.CNAMURL, "CNAM source answering as Twilio Lookup v2 (caller_name), {number} replaced by the caller's E.164 number, e.g. https://AC…:token@lookups.twilio.com/v2/PhoneNumbers/{number}?Fields=caller_name (empty: no CNAM)")
	fs.DurationVar(&cfg.CNAMTimeout, "cnam-timeout", cfg.CNAMTimeout, "the longest a CNAM lookup holds a call; later, the call goes on without a name")
	fs.DurationVar(&cfg.CNAMTTL, "cnam-ttl", cfg.CNAMTTL, "how long a CNAM name is cached (no name: at most 1h)")
	fs.IntVar(&cfg.CNAMCacheSize, "cnam-cache-size", cfg.CNAMCacheSize, "numbers whose CNAM result is cached; full, the least recently used goes (0: no cache)")
	fs.StringVar(&cfg.EdgeSIPAddress, "edge-sip-address", cfg.EdgeSIPAddress, "the SIP address other edges hand calls over to, registered in the store: HOST:PORT or sip:HOST:PORT;transport=tcp|tls (default: --advertise or the UDP listener, with its port)")
	fs.StringVar(&cfg.EdgeSecret, "edge-secret", cfg.EdgeSecret, "secret shared by every edge (16+ characters; prefer the environment or the config file): signs and checks hand-over INVITEs for ;edge= origination URIs (empty: no hand-overs)")
	fs.DurationVar(&cfg.EdgeHeartbeat, "edge-heartbeat", cfg.EdgeHeartbeat, "how often the edge heartbeats in the store; an edge silent for 3 heartbeats is dead")
	if err := cmd.parse(args, &cfg); err != nil {
		return cfg, nil, err
	}
	return cfg, cmd, nil
}

// sipReload re-reads sip's configuration and hands it to the server,
// which applies carriers, limits and timeouts (signalling.Server.Reload).
func sipReload(started *command, args []string, srv *signalling.Server) reloadFunc {
	return func() (*command, []string, []string, error) {
		next, fresh, err := sipConfig(args)
		if err != nil {
			return nil, nil, nil, err
		}
		applied, restart, err := srv.Reload(next)
		if err != nil {
			return nil, nil, nil, err
		}
		return fresh, applied, union(restart, changedFlags(started, fresh, signalling.ReloadableKeys()...)), nil
	}
}

// drain refuses new calls and waits for the ones up to end, until
// timeout or hurry ends (another signal).
func drain(log zerolog.Logger, srv *signalling.Server, hurry context.Context, timeout time.Duration) {
	log.Info().Int("calls", srv.Calls()).Dur("timeout", timeout).Msg("SIGTERM: draining, new calls get 503")
	ctx, cancel := context.WithTimeout(hurry, timeout)
	defer cancel()
	if err := srv.Drain(ctx); err != nil {
		log.Info().Int("calls", srv.Calls()).Msg("drain over: hanging up the calls left")
		return
	}
	log.Info().Msg("drained: no calls left")
}

// sipReadiness: listeners up, the relay answering NG ping, the store
// answering a query.
func sipReadiness(srv *signalling.Server, st *store.Store, serving *atomic.Bool, relayNG string) []check {
	return []check{
		{name: "listeners", fn: func(context.Context) error {
			if !serving.Load() || len(srv.Transports()) == 0 {
				return fmt.Errorf("%w: SIP listeners are down", ErrNotReady)
			}
			return nil
		}},
		ngPing("relay", relayNG),
		storeCheck(st),
	}
}

const sipExamples = `xtrunk sip --domain example.net --edge ashburn --db sqlite:/var/lib/xtrunk/xtrunk.db \
    --carrier 'sip:gw1.carrier.net;priority=10;weight=60' --carrier-source 203.0.113.0/24 \
    --relay-ng 127.0.0.1:2223 --metrics 127.0.0.1:9102
xtrunk sip --config /etc/xtrunk/xtrunk.yaml --log-format console --log-level debug
curl -s 127.0.0.1:9102/readyz`

func edgeList(e string) []string {
	if e == "" {
		return nil
	}
	return []string{e}
}
