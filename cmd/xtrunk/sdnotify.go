package main

import (
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
)

// sdNotify sends state ("READY=1", "STOPPING=1") to systemd over
// $NOTIFY_SOCKET, so units can be Type=notify: systemd then starts what
// depends on a process only once it really serves. Without the variable
// (not under systemd) it does nothing. The protocol is one datagram on a
// unix socket; an abstract socket is written with a leading '@'.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// ready logs that the process is up and tells systemd.
func ready(log zerolog.Logger) {
	if err := sdNotify("READY=1"); err != nil {
		log.Warn().Err(err).Msg("sd_notify READY=1")
	}
}

// stopping tells systemd the process is shutting down (a drain can take
// a while; systemd should not think it hung).
func stopping(log zerolog.Logger) {
	if err := sdNotify("STOPPING=1"); err != nil {
		log.Debug().Err(err).Msg("sd_notify STOPPING=1")
	}
}

// handleHUP makes SIGHUP reload what can change without a restart
// instead of killing the process (the default action): the log level
// from the config file (unless --log-level or XTRUNK_LOG_LEVEL pins it),
// then every reload hook. Everything else takes a restart, and the log
// line says so. The returned function stops the handling.
func (c *command) handleHUP(log zerolog.Logger, hooks ...func(zerolog.Logger)) (stop func()) {
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
			ev := log.Info()
			if c.given["log-level"] {
				ev = ev.Str("log_level", zerolog.GlobalLevel().String()+" (pinned by flag or environment)")
			} else if lvl, err := c.logLevelFromFile(); err != nil {
				log.Error().Err(err).Msg("SIGHUP: config file unreadable; log level unchanged")
			} else {
				zerolog.SetGlobalLevel(lvl)
				ev = ev.Str("log_level", lvl.String())
			}
			for _, h := range hooks {
				h(log)
			}
			ev.Str("config", c.path).Msg("SIGHUP: reloaded the log level; other settings take a restart")
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
