package signalling

import "errors"

var (
	// ErrConfig is a bad signalling configuration.
	ErrConfig = errors.New("signalling: bad config")
	// ErrCallIDInUse is a new INVITE whose Call-ID is a live call's
	// (482 Loop Detected): another source's, or a merged request.
	ErrCallIDInUse = errors.New("signalling: Call-ID in use by a live call")
	// ErrReferTo is a REFER's Refer-To that names no usable target (400).
	ErrReferTo = errors.New("signalling: bad Refer-To")
)

// refusal is a termination check's answer: a SIP status and reason
// phrase, or silence (status 0).
type refusal struct {
	status int
	reason string
}

func (r *refusal) Error() string { return r.reason }
