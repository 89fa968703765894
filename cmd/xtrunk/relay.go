package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/sockbuf"
	"github.com/xtrunk/xtrunk/relay"
)

// relayDaemon is xtrunk relay: SIGINT or SIGTERM stops it (pinned
// sessions keep forwarding), SIGHUP re-reads the log level.
var relayDaemon = daemon[relay.Config]{config: relayConfig, reloadLogLevel: true, serve: serveRelay}

func serveRelay(p *process, cfg relay.Config) error {
	setGCPercent(cfg.GCPercent)
	log := p.log
	closePProf, err := startProfiler(log, cfg.PProf)
	if err != nil {
		return err
	}
	defer closePProf()
	r, err := relay.New(cfg, relay.WithLogger(log))
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", cfg.ListenNG)
	if err != nil {
		r.Close()
		return fmt.Errorf("--listen-ng: %w", err)
	}
	sc, _ := pc.(syscall.Conn) // a *net.UDPConn; a nil sc fails in SetReceive
	if err := watchNGBuffer(log, r.Metrics().Registry(), sc, cfg.NGReceiveBuffer); err != nil {
		_ = pc.Close()
		r.Close()
		return err
	}
	closeHTTP, metricsAddr, err := serveMetricsAdmin(cfg.Metrics, r.Metrics().Registry(), relayAdmin(r.Metrics().Registry(), envOperator()),
		check{name: "dataplane", fn: func(context.Context) error { return r.Ready() }},
		ngPing("ng", pc.LocalAddr().String()))
	if err != nil {
		r.Close()
		return err
	}
	defer closeHTTP()
	allow, err := cfg.NGAllowPrefixes()
	if err != nil {
		r.Close()
		return err
	}
	srv := ng.NewServer(r, ng.WithInline(relay.InlineNG), ng.WithLogger(log), ng.WithAllow(allow, r.Metrics().NGRefused))
	log.Info().Str("ng", pc.LocalAddr().String()).Strs("ng_allow", cfg.NGAllow).Str("dataplane", cfg.Dataplane).Bool("socketless", cfg.Socketless).Int("port_min", cfg.PortMin).Int("port_max", cfg.PortMax).Str("metrics", metricsAddr).Str("version", versionString()).Msg("relay ready")
	ready(log)
	err = srv.Serve(p.ctx, pc)
	stopping(log)
	log.Info().Msg("relay stopping; pinned sessions keep forwarding until a successor adopts them")
	cerr := r.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return cerr
}

// watchNGBuffer sizes the NG socket's receive buffer, logs what the
// kernel granted (a warning when net.core.rmem_max capped it) and exports
// its drops and size (xtrunk_relay_udp_receive_drops_total{socket="ng"},
// xtrunk_relay_udp_receive_buffer_bytes; control/sockbuf.Collector).
func watchNGBuffer(log zerolog.Logger, reg prometheus.Registerer, pc syscall.Conn, size int) error {
	res, err := sockbuf.SetReceive(pc, size)
	if err != nil {
		return fmt.Errorf("--ng-rcvbuf: %w", err)
	}
	ev := log.Info()
	if res.Capped() {
		ev = log.Warn().Str("fix", "raise net.core.rmem_max, or run with CAP_NET_ADMIN")
	}
	ev.Str("socket", "ng").Int("requested", res.Requested).Int("granted", res.Granted).Bool("forced", res.Forced).
		Msg("UDP receive buffer (granted as the kernel counts it: twice the usable size)")
	col := sockbuf.NewCollector("xtrunk_relay")
	col.Add("ng", pc)
	return reg.Register(col)
}

// relayConfig is xtrunk relay's configuration from args, the
// environment and the config file.
func relayConfig(args []string) (relay.Config, *command, error) {
	cfg := relay.DefaultConfig()
	cmd := newCommand("relay", "The media relay: XDP fast path, NG control (rtpengine's protocol).", relayExamples)
	fs := cmd.fs
	var ifaces []string
	for _, i := range cfg.Interfaces {
		ifaces = append(ifaces, i.String())
	}
	fs.Var(&listFlag{vals: &ifaces}, "interface", "logical interface NAME/IP[!ADVERTISED_IP] (repeatable; rtpengine syntax)")
	ngAllow := cfg.NGAllow
	fs.Var(&listFlag{vals: &ngAllow}, "ng-allow", "source CIDR allowed to send NG commands (repeatable; default 127.0.0.1/32 and ::1/128); others are dropped")
	fs.StringVar(&cfg.ListenNG, "listen-ng", cfg.ListenNG, "NG control address (UDP)")
	fs.IntVar(&cfg.NGReceiveBuffer, "ng-rcvbuf", cfg.NGReceiveBuffer, "receive buffer in bytes of the NG socket (0: the kernel's default); capped by net.core.rmem_max without CAP_NET_ADMIN; drops show in xtrunk_relay_udp_receive_drops_total")
	fs.IntVar(&cfg.PortMin, "port-min", cfg.PortMin, "lowest media port")
	fs.IntVar(&cfg.PortMax, "port-max", cfg.PortMax, "highest media port")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "media timeout: a call without packets this long is marked timed out")
	fs.DurationVar(&cfg.FinalTimeout, "final-timeout", cfg.FinalTimeout, "delete calls older than this even while media flows (0: never; idle calls go by --timeout)")
	fs.DurationVar(&cfg.LearnWindow, "learning-window", cfg.LearnWindow, "latching window after each offer/answer")
	fs.StringVar(&cfg.PinPath, "pin-path", cfg.PinPath, "bpffs directory for pinned maps and links")
	fs.StringVar(&cfg.Metrics, "metrics", cfg.Metrics, "Prometheus metrics address (empty: off)")
	fs.StringVar(&cfg.PProf, "pprof", cfg.PProf, "Go profiler address, served at /debug/pprof/: a loopback IP and port, e.g. 127.0.0.1:6061 (empty: off)")
	fs.IntVar(&cfg.GCPercent, "gc-percent", cfg.GCPercent, "Go GC target (GOGC) for the process (0: Go's default of 100); the GOGC environment variable wins")
	fs.StringVar(&cfg.Dataplane, "dataplane", cfg.Dataplane, "xdp or userspace")
	fs.BoolVar(&cfg.Socketless, "socketless", cfg.Socketless, "xdp: no socket per call, userspace media through AF_XDP sockets (one per device and RX queue); --socketless=false: bound sockets per call (the previous behaviour)")
	fs.StringVar(&cfg.XDPMode, "xdp-mode", cfg.XDPMode, "auto (native, generic where the driver has none), native or generic")
	fs.StringVar(&cfg.RecordingDir, "recording-dir", cfg.RecordingDir, "directory for call recordings (WAV + JSON sidecar)")
	fs.IntVar(&cfg.JitterSample, "jitter-sample", cfg.JitterSample, "xdp: time two consecutive RTP arrivals in every N packets of a stream for RFC 3550 jitter (1: every packet, exact; a power of two up to 64: cheaper per packet, the estimate converges N times slower)")
	fs.BoolVar(&cfg.RemoveOnExit, "remove-on-exit", cfg.RemoveOnExit, "detach XDP and remove pins on a clean exit (ends fast-path media)")
	if err := cmd.parse(args, &cfg); err != nil {
		return cfg, nil, err
	}
	cfg.NGAllow = ngAllow
	if _, err := cfg.NGAllowPrefixes(); err != nil {
		return cfg, nil, err
	}
	if cmd.given["socketless"] && cfg.Socketless && cfg.Dataplane != relay.DataplaneXDP {
		// Socketless is the xdp default and ignored by userspace, but
		// asking for it by name there is a mistake worth saying.
		return cfg, nil, fmt.Errorf("%w: --socketless needs --dataplane xdp (AF_XDP sockets get their packets from the XDP program)", ErrConfig)
	}
	cfg.Interfaces = nil
	for _, s := range ifaces {
		ifc, err := relay.ParseInterface(s)
		if err != nil {
			return cfg, nil, err
		}
		cfg.Interfaces = append(cfg.Interfaces, ifc)
	}
	return cfg, cmd, nil
}

const relayExamples = `xtrunk relay --interface customer/203.0.113.10 --interface carrier/198.51.100.10
xtrunk relay --config /etc/xtrunk/xtrunk.yaml
xtrunk relay --interface pub/192.0.2.1!203.0.113.1 --dataplane userspace --metrics 127.0.0.1:9101
curl -s 127.0.0.1:9101/readyz`
