package signalling

import (
	"context"
	"time"
)

// Drain stops taking new calls — an INVITE outside a dialog gets 503
// Service Unavailable with Retry-After, OPTIONS get 503 — while requests
// within the calls in progress go on as before. It returns nil once the
// last call has ended on its own and its CDR is written, or ctx.Err() if
// ctx ends first; Close then hangs up what is left.
func (s *Server) Drain(ctx context.Context) error {
	s.draining.Store(true)
	s.metrics.setDraining(true)
	idle := s.whenIdle()
	select {
	case <-idle:
		return nil
	default:
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Draining reports whether Drain (or Close) has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// Calls is the number of calls in progress (or still ending).
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// DrainTimeout is how long a drain may last (drain-timeout, as last
// reloaded).
func (s *Server) DrainTimeout() time.Duration { return s.settings().cfg.DrainTimeout }
