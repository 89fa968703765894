package signalling

import (
	"context"
	"time"
)

// The server's own requests to the store, the relay and SIP peers that no
// SIP transaction or call context bounds run under one of these timeouts,
// in a context derived from the server's lifetime (Server.life, ended
// when Close has finished), so that nothing the server started outlives
// it.
const (
	// cacheLookupTimeout bounds finding a request's trunk through the
	// cache (a store read on a miss) while the request's transaction
	// waits: past it the request is treated as for no trunk.
	cacheLookupTimeout = 2 * time.Second
	// startupStoreTimeout bounds New's store requests: the revision the
	// change feed starts from, and ending a previous run's live calls.
	startupStoreTimeout = 10 * time.Second
	// storeWriteTimeout bounds a single store write off the call path
	// (marking this edge down as it stops).
	storeWriteTimeout = 2 * time.Second
	// cdrWriteTimeout bounds one batch of CDRs (one transaction, or its
	// rows one by one when the batch failed).
	cdrWriteTimeout = 30 * time.Second
	// byeTimeout bounds a BYE to a leg as a call ends: a peer that does
	// not answer must not hold the call's CDR for RFC 3261's 32 s.
	byeTimeout = 5 * time.Second
	// hurriedByeWait is byeTimeout once the stop is hurried (Hurry): long
	// enough for a peer on the same network to answer, short enough that
	// a second signal ends the process at once.
	hurriedByeWait = 500 * time.Millisecond
	// relayDeleteTimeout bounds the NG delete at a call's end (its
	// answer carries the call's quality and recording for the CDR).
	relayDeleteTimeout = 5 * time.Second
	// notifyTimeout bounds a NOTIFY of a REFER's progress: a
	// non-INVITE transaction's Timer F (64*T1).
	notifyTimeout = 32 * time.Second
)

// within returns a context for at most d of the server's own work; it
// ends sooner if the server's life does.
func (s *Server) within(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.lifetime(), d)
}

// lifetime is the server's life, the parent of every call's context too.
func (s *Server) lifetime() context.Context {
	if s.life == nil { // a Server built without New (unit tests)
		return context.Background()
	}
	return s.life
}
