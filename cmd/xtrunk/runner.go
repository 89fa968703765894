package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// The runner is the setup every long-running subcommand (relay, sip, api,
// up) shares, in one place as Caddy's and CoreDNS's mains keep theirs: the
// configuration from flags, XTRUNK_* and the config file (command.parse,
// through the daemon's config function), the logger, SIGINT/SIGTERM, and
// SIGHUP's reload. A subcommand plugs in as a daemon and only serves.

// storeOpenTimeout bounds opening the store at start (sip, api): a
// PostgreSQL that does not answer, or migrations that cannot run, fail the
// start rather than hang it.
const storeOpenTimeout = 30 * time.Second

// daemon is a long-running subcommand as the runner runs it.
type daemon[C any] struct {
	// config reads the subcommand's configuration from its arguments, the
	// environment and the config file. SIGHUP re-reads it the same way.
	config func(args []string) (C, *command, error)
	// reloadLogLevel has SIGHUP re-read the configuration and apply its
	// log level only (reloadFlagsOnly), from before serve starts until it
	// returns. Without it serve installs a reload of its own
	// (process.reloadOnHUP) or takes SIGHUP itself.
	reloadLogLevel bool
	// ownSignals leaves SIGINT, SIGTERM and SIGHUP to serve (xtrunk up
	// forwards them to its children); process.ctx then never ends.
	ownSignals bool
	// serve runs the subcommand until it stops.
	serve func(p *process, cfg C) error
}

// process is what the runner hands a daemon's serve.
type process struct {
	cmd  *command // the parsed command line, environment and file
	args []string // the arguments, for a reload to re-read
	log  zerolog.Logger
	// ctx ends at the first SIGINT or SIGTERM; signal says which. The
	// signals after it arrive on sigs (a second one cuts a drain short)
	// and do not kill the process unless serve calls defaultSignals.
	ctx   context.Context
	sigs  chan os.Signal
	first os.Signal
}

// run is the subcommand's entry point for main (subcommands).
func (d daemon[C]) run(args []string) error {
	cfg, cmd, err := d.config(args)
	if err != nil {
		return err
	}
	log, err := cmd.logger()
	if err != nil {
		return err
	}
	p := &process{cmd: cmd, args: args, log: log, ctx: context.Background()}
	if !d.ownSignals {
		// Signals first: one that comes while the daemon starts stops it
		// cleanly once started, rather than killing it halfway.
		stop := p.catchSignals()
		defer stop()
	}
	if d.reloadLogLevel {
		defer p.reloadOnHUP(reloadFlagsOnly(cmd, func() (*command, error) {
			_, fresh, err := d.config(args)
			return fresh, err
		}))()
	}
	return d.serve(p, cfg)
}

// catchSignals makes SIGINT and SIGTERM end p.ctx (the first) and arrive
// on p.sigs (the next ones) instead of killing the process. The returned
// function undoes it.
func (p *process) catchSignals() (stop func()) {
	p.sigs = make(chan os.Signal, 2)
	signal.Notify(p.sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	p.ctx = ctx
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-p.sigs:
			p.first = sig // read after ctx.Done: ordered by cancel
			cancel()
		case <-done:
		}
	}()
	return func() {
		signal.Stop(p.sigs)
		close(done)
		cancel()
	}
}

// signal is the signal that ended p.ctx (nil before it ended).
func (p *process) signal() os.Signal {
	if p.ctx.Err() == nil {
		return nil
	}
	return p.first
}

// defaultSignals gives SIGINT and SIGTERM their default action back: a
// further one kills the process (xtrunk api, once it is draining its
// requests).
func (p *process) defaultSignals() { signal.Stop(p.sigs) }

// reloadOnHUP has SIGHUP run reload (handleHUP) until the returned
// function is called.
func (p *process) reloadOnHUP(reload reloadFunc) (stop func()) {
	return p.cmd.handleHUP(p.log, reload)
}
