package signalling

import "errors"

var (
	// ErrConfig is a bad signalling configuration.
	ErrConfig = errors.New("signalling: bad config")
)

// refusal is a termination check's answer: a SIP status and reason
// phrase, or silence (status 0).
type refusal struct {
	status int
	reason string
}

func (r *refusal) Error() string { return r.reason }
