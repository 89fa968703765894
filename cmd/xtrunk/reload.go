package main

import (
	"flag"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/rs/zerolog"
)

// reloadFunc re-reads a command's configuration the way it was read at
// start (its arguments, the environment, the config file) and applies
// what can change while it runs. It returns the fresh command (its log
// level is applied by handleHUP), the keys it applied and the keys that
// changed but take a restart. An error leaves everything as it was.
type reloadFunc func() (fresh *command, applied, restart []string, err error)

// handleHUP makes SIGHUP reload what can change without a restart
// instead of killing the process (the default action): the log level
// (unless --log-level or XTRUNK_LOG_LEVEL pins it) and whatever reload
// applies. One log line names the keys applied and the keys that changed
// but need a restart; a file that does not parse or validate is logged
// and the process goes on with the configuration it has. The returned
// function stops the handling.
func (c *command) handleHUP(log zerolog.Logger, reload reloadFunc) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
			}
			c.reloadNow(log, reload)
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// reloadNow is one SIGHUP.
func (c *command) reloadNow(log zerolog.Logger, reload reloadFunc) {
	fresh, applied, restart, err := reload()
	if err != nil {
		log.Error().Err(err).Str("config", c.path).Msg("SIGHUP: configuration refused; running on the one in force")
		return
	}
	lvl, err := zerolog.ParseLevel(fresh.logLevel)
	if err != nil || fresh.logLevel == "" {
		log.Error().Str("log_level", fresh.logLevel).Str("config", c.path).Msg("SIGHUP: bad log-level; running on the configuration in force")
		return
	}
	if lvl != zerolog.GlobalLevel() {
		zerolog.SetGlobalLevel(lvl)
		applied = append(applied, "log-level")
	}
	ev := log.Info()
	if len(restart) > 0 {
		ev = log.Warn() // the operator expected a change that is not in force
	}
	if c.given["log-level"] {
		ev = ev.Bool("log_level_pinned", true) // by flag or environment: the file's is ignored
	}
	if applied == nil {
		applied = []string{}
	}
	if restart == nil {
		restart = []string{}
	}
	ev.Strs("applied", applied).Strs("restart_needed", restart).Str("log_level", lvl.String()).Str("config", c.path).
		Msg("SIGHUP: configuration reloaded")
}

// changedFlags are the flags whose values differ between the command as
// started and fresh (the same command parsed again), except skip: what
// a process that reloads nothing else would need a restart for.
func changedFlags(started, fresh *command, skip ...string) []string {
	skip = append(skip, "config", "log-level")
	var out []string
	started.fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(skip, f.Name) {
			return
		}
		if g := fresh.fs.Lookup(f.Name); g == nil || g.Value.String() != f.Value.String() {
			out = append(out, f.Name)
		}
	})
	return out
}

// union is a and the keys of b it lacks, in order.
func union(a, b []string) []string {
	for _, k := range b {
		if !slices.Contains(a, k) {
			a = append(a, k)
		}
	}
	return a
}

// reloadFlagsOnly is the reload of a process that applies nothing but the
// log level (relay, api): it names the changed keys that need a restart.
func reloadFlagsOnly(started *command, parse func() (*command, error)) reloadFunc {
	return func() (*command, []string, []string, error) {
		fresh, err := parse()
		if err != nil {
			return nil, nil, nil, err
		}
		return fresh, nil, changedFlags(started, fresh), nil
	}
}
