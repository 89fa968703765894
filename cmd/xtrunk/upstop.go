package main

import (
	"os"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
)

// supervisor is xtrunk up once its children are planned.
type supervisor struct {
	cmd      *command
	args     []string // up's, to re-read its config on SIGHUP
	cfg      upConfig
	log      zerolog.Logger
	edge     *edge
	children []*child // in start order: relay, api, sip
	sigs     chan os.Signal
}

func (s *supervisor) child(name string) *child {
	for _, c := range s.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// startAll starts the children in order, each once the one before is
// ready; a child is supervised (restarted after a crash) once it has
// been ready. A signal, a child that exits or one not ready in time
// stops those started.
func (s *supervisor) startAll() error {
	for i, c := range s.children {
		if err := c.start(); err != nil {
			s.haltAll(syscall.SIGTERM, s.children[:i])
			return err
		}
		readyc := make(chan error, 1)
		go func() { readyc <- c.waitReady(s.cfg.StartTimeout) }()
		for waiting := true; waiting; {
			select {
			case err := <-readyc:
				if err != nil {
					// not restarted: a child that cannot start is a
					// configuration to fix, not a crash
					c.stop.Store(true)
					go c.supervise()
					s.haltAll(syscall.SIGTERM, s.children[:i+1])
					return err
				}
				go c.supervise() // from now on a crash is restarted
				waiting = false
			case sig := <-s.sigs:
				if sig == syscall.SIGHUP {
					for _, c := range s.children[:i+1] {
						c.signal(sig)
					}
					continue
				}
				s.log.Info().Str("signal", sig.String()).Str("starting", c.name).Msg("signal while starting: stopping")
				stopping(s.log)
				c.stop.Store(true)
				go c.supervise()
				s.haltAll(sig, s.children[:i+1])
				return errStopped
			}
		}
	}
	return nil
}

// run forwards signals until the edge is stopped: SIGHUP to every child
// (and up reloads its own log level); SIGTERM drains sip, then stops api
// and relay; SIGINT, or a second signal during a stop, stops all at once.
func (s *supervisor) run() error {
	reload := reloadFlagsOnly(s.cmd, func() (*command, error) {
		_, fresh, err := upCommand(s.args)
		return fresh, err
	})
	for sig := range s.sigs {
		switch sig {
		case syscall.SIGHUP:
			s.log.Info().Msg("SIGHUP: forwarded to relay, api and sip")
			for _, c := range s.children {
				c.signal(syscall.SIGHUP)
			}
			s.cmd.reloadNow(s.log, reload)
			continue
		case syscall.SIGTERM:
			s.drainStop()
		default:
			s.log.Info().Str("signal", sig.String()).Msg("stopping the edge at once")
			stopping(s.log)
			s.haltAll(syscall.SIGINT, s.children)
		}
		break
	}
	s.log.Info().Msg("xtrunk up stopped: every child exited")
	return nil
}

// drainStop is the SIGTERM stop: sip first (it drains: new calls get
// 503, calls up go on for its drain-timeout), then api and relay. A
// second SIGTERM or SIGINT meanwhile stops everything at once.
func (s *supervisor) drainStop() {
	drain := s.edge.sip.DrainTimeout
	if cfg, _, err := sipConfig([]string{"--config", s.edge.config}); err == nil {
		drain = cfg.DrainTimeout // as sip may have reloaded it
	}
	s.log.Info().Dur("drain_timeout", drain).Msg("SIGTERM: draining sip, then stopping api and relay")
	stopping(s.log)
	hurry := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.child("sip").halt(syscall.SIGTERM, drain+s.cfg.StopTimeout, s.cfg.StopTimeout, hurry)
		select {
		case <-hurry: // they were sent SIGINT
			s.haltAll(syscall.SIGINT, s.children)
		default:
			s.haltAll(syscall.SIGTERM, s.children)
		}
	}()
	for {
		select {
		case <-stopped:
			return
		case sig := <-s.sigs:
			if sig == syscall.SIGHUP {
				continue
			}
			select {
			case <-hurry:
				continue
			default:
			}
			s.log.Info().Str("signal", sig.String()).Msg("second signal: stopping every child at once")
			for _, c := range s.children {
				c.stop.Store(true)
				c.signal(syscall.SIGINT)
			}
			close(hurry)
		}
	}
}

// haltAll stops the children cs with sig, all at once, each killed if it
// has not exited within stop-timeout.
func (s *supervisor) haltAll(sig os.Signal, cs []*child) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.halt(sig, s.cfg.StopTimeout, s.cfg.StopTimeout, nil) })
	}
	wg.Wait()
}
