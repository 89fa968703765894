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

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay"
)

func runRelay(args []string) error {
	cfg := relay.DefaultConfig()
	path, explicit := configPath(args)
	if err := loadSection(path, explicit, "relay", &cfg); err != nil {
		return err
	}
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.String("config", path, "YAML config file (section relay:)")
	var ifaces []string
	for _, i := range cfg.Interfaces {
		ifaces = append(ifaces, i.String())
	}
	fs.Var(&listFlag{vals: &ifaces}, "interface", "logical interface NAME/IP[!ADVERTISED_IP] (repeatable; rtpengine syntax)")
	ngAllow := cfg.NGAllow
	fs.Var(&listFlag{vals: &ngAllow}, "ng-allow", "source CIDR allowed to send NG commands (repeatable; default 127.0.0.1/32 and ::1/128); others are dropped")
	fs.StringVar(&cfg.ListenNG, "listen-ng", cfg.ListenNG, "NG control address (UDP)")
	fs.IntVar(&cfg.PortMin, "port-min", cfg.PortMin, "lowest media port")
	fs.IntVar(&cfg.PortMax, "port-max", cfg.PortMax, "highest media port")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "media timeout: a call without packets this long is marked timed out")
	fs.DurationVar(&cfg.FinalTimeout, "final-timeout", cfg.FinalTimeout, "delete calls older than this even while media flows (0: never; idle calls go by --timeout)")
	fs.DurationVar(&cfg.LearnWindow, "learning-window", cfg.LearnWindow, "latching window after each offer/answer")
	fs.StringVar(&cfg.PinPath, "pin-path", cfg.PinPath, "bpffs directory for pinned maps and links")
	fs.StringVar(&cfg.Metrics, "metrics", cfg.Metrics, "Prometheus metrics address (empty: off)")
	fs.StringVar(&cfg.Dataplane, "dataplane", cfg.Dataplane, "xdp or userspace")
	fs.StringVar(&cfg.XDPMode, "xdp-mode", cfg.XDPMode, "auto (native, generic where the driver has none), native or generic")
	fs.StringVar(&cfg.RecordingDir, "recording-dir", cfg.RecordingDir, "directory for call recordings (WAV + JSON sidecar)")
	fs.BoolVar(&cfg.RemoveOnExit, "remove-on-exit", cfg.RemoveOnExit, "detach XDP and remove pins on a clean exit (ends fast-path media)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.NGAllow = ngAllow
	allow, err := cfg.NGAllowPrefixes()
	if err != nil {
		return err
	}
	cfg.Interfaces = nil
	for _, s := range ifaces {
		ifc, err := relay.ParseInterface(s)
		if err != nil {
			return err
		}
		cfg.Interfaces = append(cfg.Interfaces, ifc)
	}
	log, err := newLogger(*logLevel, "relay")
	if err != nil {
		return err
	}

	r, err := relay.New(cfg, relay.WithLogger(log))
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", cfg.ListenNG)
	if err != nil {
		r.Close()
		return fmt.Errorf("--listen-ng: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.Metrics != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", r.Metrics().Handler())
		srv := &http.Server{Addr: cfg.Metrics, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", cfg.Metrics)
		if err != nil {
			r.Close()
			return fmt.Errorf("--metrics: %w", err)
		}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	srv := ng.NewServer(r, ng.WithLogger(log), ng.WithAllow(allow, r.Metrics().NGRefused))
	log.Info().Str("ng", pc.LocalAddr().String()).Str("dataplane", cfg.Dataplane).Int("port_min", cfg.PortMin).Int("port_max", cfg.PortMax).Strs("ng_allow", cfg.NGAllow).Msg("relay ready")
	err = srv.Serve(ctx, pc)
	log.Info().Msg("relay stopping; pinned sessions keep forwarding until a successor adopts them")
	cerr := r.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return cerr
}
