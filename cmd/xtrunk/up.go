package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/relay"
	"github.com/xtrunk/xtrunk/signalling"
)

// upConfig is `xtrunk up`'s own configuration (flags, XTRUNK_*, and the
// up: section of the file).
type upConfig struct {
	DataDir      string        `yaml:"data-dir"`
	Metrics      string        `yaml:"metrics"`
	StartTimeout time.Duration `yaml:"start-timeout"`
	StopTimeout  time.Duration `yaml:"stop-timeout"`
}

// The data directory's default: the package's state directory when this
// user may write there, else one in the working directory.
const (
	systemDataDir = "/var/lib/xtrunk"
	localDataDir  = "xtrunk-data"
)

func defaultDataDir() string {
	if unix.Access(systemDataDir, unix.W_OK) == nil {
		return systemDataDir
	}
	return localDataDir
}

func upCommand(args []string) (upConfig, *command, error) {
	cfg := upConfig{DataDir: defaultDataDir(), Metrics: "127.0.0.1:9110", StartTimeout: 60 * time.Second, StopTimeout: 15 * time.Second}
	cmd := newCommand("up", "The whole edge on one box: runs relay, api and sip as child processes (this binary's subcommands),\n"+
		"each reading its own section of the one config file, and supervises them: start in order (relay, api, sip,\n"+
		"each once ready), restart on a crash (backoff), SIGTERM drains sip then stops the others, SIGHUP reloads.", upExamples)
	cmd.env = []string{"XTRUNK_ACCOUNT_SID, XTRUNK_AUTH_TOKEN  the api's main account on an empty store (else generated into its credentials file)"}
	fs := cmd.fs
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "where the embedded SQLite store (and the generated credentials) live when the file names no db: /var/lib/xtrunk when writable, else ./xtrunk-data")
	fs.StringVar(&cfg.Metrics, "metrics", cfg.Metrics, "up's own /metrics (children's restarts and state), /healthz and /readyz (all children ready) address (empty: off)")
	fs.DurationVar(&cfg.StartTimeout, "start-timeout", cfg.StartTimeout, "how long each child may take to become ready at start")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", cfg.StopTimeout, "after SIGTERM, how long relay and api (and sip beyond its drain-timeout) may take to exit before they are killed")
	if err := cmd.parse(args, &cfg); err != nil {
		return cfg, nil, err
	}
	if cfg.StartTimeout <= 0 || cfg.StopTimeout <= 0 {
		return cfg, nil, fmt.Errorf("%w: start-timeout and stop-timeout must be positive", ErrConfig)
	}
	return cfg, cmd, nil
}

const upExamples = `xtrunk up --config /etc/xtrunk/xtrunk.yaml
xtrunk up --config ./xtrunk.yaml --data-dir ./state --metrics 127.0.0.1:9110
kill -HUP $(pidof -s xtrunk)    # reload carriers, limits, log levels in every child
curl -s 127.0.0.1:9110/readyz`

// edge is what up found in the config file: each child's effective
// configuration (flags it adds, as up starts it, included) and the
// flags up adds.
type edge struct {
	config string // the file the children read ("" for none)
	relay  relay.Config
	sip    signalling.Config
	api    api.Config
	// apiMetrics is the api's --metrics (a flag, not in api.Config).
	apiMetrics string
	extra      map[string][]string // child -> flags up adds
}

// planEdge reads the file the way each child will (so that a bad file
// fails here, before anything starts) and decides the flags up adds: the
// same SQLite store for sip and api when the file names none, and a
// loopback HTTP listener for a child without one, or with port 0 (up
// waits on its /readyz, so it must know the port).
func planEdge(cmd *command, cfg upConfig, log zerolog.Logger) (*edge, error) {
	e := &edge{config: cmd.path, extra: map[string][]string{}}
	if _, err := os.Stat(cmd.path); err != nil {
		if cmd.explicit {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		e.config = "" // no file: defaults and the environment
	} else if abs, err := filepath.Abs(cmd.path); err == nil {
		e.config = abs // for the children, and for the operator to read
	}
	base := []string{"--config", e.config}
	var err error
	if e.relay, _, err = relayConfig(base); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if e.sip, _, err = sipConfig(base); err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	if e.api, e.apiMetrics, _, err = apiConfig(base); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if err := e.shareStore(cfg, log); err != nil {
		return nil, err
	}
	// up runs this edge's one sip: the live-call rows a crashed run left
	// are its own
	e.extra["sip"] = append(e.extra["sip"], "--finish-live-calls")
	for _, m := range []struct {
		child string
		addr  *string
	}{{"relay", &e.relay.Metrics}, {"sip", &e.sip.Metrics}, {"api", &e.apiMetrics}} {
		if _, port, _ := net.SplitHostPort(*m.addr); *m.addr != "" && port != "0" {
			continue
		}
		a, err := freeLoopbackPort()
		if err != nil {
			return nil, err
		}
		*m.addr = a
		e.extra[m.child] = append(e.extra[m.child], "--metrics", a)
	}
	return e, nil
}

// shareStore gives sip and api one store: the one the file names for
// either, else SQLite in the data directory.
func (e *edge) shareStore(cfg upConfig, log zerolog.Logger) error {
	def := signalling.DefaultConfig().DB
	sipSet, apiSet := e.sip.DB != def, e.api.DB != api.DefaultConfig().DB
	switch {
	case sipSet && apiSet:
		if e.sip.DB != e.api.DB {
			log.Warn().Str("sip_db", e.sip.DB).Str("api_db", e.api.DB).Msg("sip and api use different stores: trunks made through the API will not reach sip")
		}
		return nil
	case sipSet:
		e.api.DB = e.sip.DB
	case apiSet:
		e.sip.DB = e.api.DB
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		abs, err := filepath.Abs(filepath.Join(cfg.DataDir, "xtrunk.db"))
		if err != nil {
			return err
		}
		e.sip.DB, e.api.DB = "sqlite:"+abs, "sqlite:"+abs
	}
	if !sipSet {
		e.extra["sip"] = append(e.extra["sip"], "--db", e.sip.DB)
	}
	if !apiSet {
		e.extra["api"] = append(e.extra["api"], "--db", e.api.DB)
	}
	return nil
}

// freeLoopbackPort is a TCP port on 127.0.0.1 free right now.
func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sipListeners are sip's listen addresses, "auto" resolved as sip does.
func sipListeners(c signalling.Config) [][2]string {
	var out [][2]string
	tcp, tlsAddr := c.ListenTCP, c.ListenTLS
	if tcp == signalling.ListenAuto {
		tcp = c.ListenUDP
	}
	if tlsAddr == signalling.ListenAuto {
		host, _, err := net.SplitHostPort(c.ListenUDP)
		if err != nil {
			host = "0.0.0.0"
		}
		tlsAddr = net.JoinHostPort(host, "5061")
	}
	if c.TLSCert == "" {
		tlsAddr = ""
	}
	for _, l := range [][2]string{{"udp", c.ListenUDP}, {"tcp", tcp}, {"tls", tlsAddr}} {
		if l[1] != "" {
			out = append(out, l)
		}
	}
	return out
}

// apiURL is the API's base URL.
func apiURL(c api.Config) string {
	if p, ok := strings.CutPrefix(c.Listen, "unix:"); ok {
		return "http+unix://" + p
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "http://" + c.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// credentials says where the operator's main account is: the
// environment's, or the api's credentials file.
func (e *edge) credentials() string {
	if os.Getenv("XTRUNK_ACCOUNT_SID") != "" {
		return "XTRUNK_ACCOUNT_SID / XTRUNK_AUTH_TOKEN (environment)"
	}
	p := e.api.CredentialsPath()
	if _, err := os.Stat(p); err != nil {
		return p + " (absent: the store's main account was not generated by this api; see XTRUNK_ACCOUNT_SID/XTRUNK_AUTH_TOKEN)"
	}
	return p
}

// announce logs the endpoints and, on a terminal, prints them for a
// person.
func (e *edge) announce(log zerolog.Logger, upMetrics string, w io.Writer, tty bool) {
	ev := log.Info()
	var sip []string
	for _, l := range sipListeners(e.sip) {
		sip = append(sip, l[0]+":"+l[1])
	}
	ev.Strs("sip", sip).Str("api", apiURL(e.api)).Str("relay_ng", e.relay.ListenNG).Str("store", e.sip.DB).
		Str("relay_metrics", e.relay.Metrics).Str("sip_metrics", e.sip.Metrics).Str("api_metrics", e.apiMetrics).
		Str("up_metrics", upMetrics).Str("credentials", e.credentials()).Str("config", e.config).Str("version", versionString()).
		Msg("xtrunk up: edge ready")
	if !tty {
		return
	}
	fmt.Fprintf(w, "\nxtrunk %s: edge ready\n", versionString())
	for _, l := range sipListeners(e.sip) {
		fmt.Fprintf(w, "  SIP %-4s      %s\n", strings.ToUpper(l[0]), l[1])
	}
	fmt.Fprintf(w, "  REST API      %s\n", apiURL(e.api))
	fmt.Fprintf(w, "  credentials   %s\n", e.credentials())
	fmt.Fprintf(w, "  store         %s\n", e.sip.DB)
	fmt.Fprintf(w, "  metrics       relay %s, sip %s, api %s", e.relay.Metrics, e.sip.Metrics, e.apiMetrics)
	if upMetrics != "" {
		fmt.Fprintf(w, ", up %s", upMetrics)
	}
	fmt.Fprintf(w, "\n  config        %s\n  reload: kill -HUP %d; stop: kill %d (sip drains first)\n\n", orNone(e.config), os.Getpid(), os.Getpid())
}

func orNone(s string) string {
	if s == "" {
		return "(none: defaults and XTRUNK_* variables)"
	}
	return s
}

// upDaemon is xtrunk up: it takes SIGTERM, SIGINT and SIGHUP itself and
// passes them on to its children (supervisor.run).
var upDaemon = daemon[upConfig]{config: upCommand, ownSignals: true, serve: serveUp}

// serveUp is `xtrunk up`: the edge's three processes under one supervisor.
func serveUp(p *process, cfg upConfig) error {
	cmd, args, log := p.cmd, p.args, p.log
	e, err := planEdge(cmd, cfg, log)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// Signals first: a SIGTERM while the children start must stop them.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	m := newUpMetrics()
	var children []*child
	for _, name := range []string{"relay", "api", "sip"} {
		addr := map[string]string{"relay": e.relay.Metrics, "api": e.apiMetrics, "sip": e.sip.Metrics}[name]
		children = append(children, &child{name: name, path: self, args: append([]string{"--config", e.config}, e.extra[name]...),
			readyz: readyzURL(addr), log: log, metrics: m, done: make(chan struct{})})
	}
	s := &supervisor{cmd: cmd, args: args, cfg: cfg, log: log, edge: e, children: children, sigs: sigs}
	upMetrics := ""
	if cfg.Metrics != "" {
		var checks []check
		for _, c := range children {
			checks = append(checks, check{name: c.name, fn: func(ctx context.Context) error {
				if !c.isReady(ctx) {
					return fmt.Errorf("%w: %s (%s)", ErrNotReady, c.name, c.readyz)
				}
				return nil
			}})
		}
		closeHTTP, bound, err := serveMetrics(cfg.Metrics, m.reg, checks...)
		if err != nil {
			return err
		}
		defer closeHTTP()
		upMetrics = bound
	}
	if err := s.startAll(); errors.Is(err, errStopped) {
		return nil
	} else if err != nil {
		return err
	}
	e.announce(log, upMetrics, os.Stdout, isTerminal(os.Stdout))
	ready(log)
	return s.run()
}
