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

// Hurry shortens the stop (a second signal): calls hung up from now on,
// and BYEs already waiting, wait at most hurriedByeWait for the far end's
// answer instead of byeTimeout (a PBX gone after a load run answers
// none), and Close stops waiting for calls still ending. BYEs are still
// sent and every CDR is still written. Safe to call more than once and
// before Close.
func (s *Server) Hurry() {
	if s.hurryUp != nil {
		s.hurryUp()
	}
}

// hurried is closed once Hurry was called (never for a Server built
// without New).
func (s *Server) hurried() <-chan struct{} {
	if s.hurry == nil {
		return nil
	}
	return s.hurry.Done()
}

// hangupWithin is the context a BYE to a leg waits for its answer in:
// byeTimeout, cut to hurriedByeWait from Hurry on. The BYE is sent either
// way: a BYE begun after Hurry still has hurriedByeWait.
func (s *Server) hangupWithin() (context.Context, context.CancelFunc) {
	select {
	case <-s.hurried():
		return s.within(hurriedByeWait)
	default:
	}
	ctx, cancel := s.within(byeTimeout)
	if s.hurry == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(s.hurry, func() {
		t := time.AfterFunc(hurriedByeWait, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() { stop(); cancel() }
}
