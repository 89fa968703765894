package auth

import "errors"

// Verification failures. A caller answers ErrStale with a new challenge
// marked stale=true; every other failure with a plain new challenge (or,
// for ErrMalformed, 400). Unknown users and wrong passwords both give
// ErrRejected.
var (
	ErrMalformed = errors.New("malformed credentials")
	ErrRejected  = errors.New("authentication failed")
	ErrStale     = errors.New("stale nonce")
	ErrReplay    = errors.New("replayed credentials")
	// ErrURIMismatch: the credentials are for another Request-URI (a
	// rewritten request); a caller answers 403, not a new challenge.
	ErrURIMismatch = errors.New("digest uri is not the Request-URI")
)
