package ng

import (
	"errors"
	"strings"
)

// Decoding errors. Each is returned wrapped with the offset it was found at.
var (
	ErrTruncated   = errors.New("ng: bencode truncated")
	ErrTrailing    = errors.New("ng: trailing data after bencode value")
	ErrInvalidType = errors.New("ng: invalid bencode type byte")
	ErrInvalidInt  = errors.New("ng: invalid bencode integer")
	ErrInvalidLen  = errors.New("ng: invalid bencode string length")
	ErrDictKey     = errors.New("ng: bencode dictionary key is not a string")
	ErrTooDeep     = errors.New("ng: bencode nested too deeply")
)

// Message errors.
var (
	ErrNoCookie  = errors.New("ng: message has no cookie")
	ErrBadCookie = errors.New("ng: cookie is empty or contains a space")
	ErrNotDict   = errors.New("ng: message body is not a dictionary")
)

// ErrUnsupportedType is returned by the encoder for values it has no bencode
// form for (bool, float, nil, structs...).
var ErrUnsupportedType = errors.New("ng: cannot bencode value of this type")

// ErrTooLarge is returned by Client.Do for a request that cannot fit in a
// UDP datagram.
var ErrTooLarge = errors.New("ng: message too large for a datagram")

// ErrIntRange is returned when encoding an unsigned integer above MaxInt64:
// the decoder would reject it, so the encoder does not produce it.
var ErrIntRange = errors.New("ng: integer out of int64 range")

// ErrMissingKey is a request without a key its command needs; the wording
// is the relay's error-reason ("missing key: call-id").
var ErrMissingKey = errors.New("missing key")

// Client errors.
var (
	// ErrTimeout means no reply arrived within the client's timeout, after
	// retransmitting.
	ErrTimeout = errors.New("ng: request timed out")
	// ErrClosed is returned by Do after Close.
	ErrClosed = errors.New("ng: client closed")
	// ErrNoResult means a reply carried no "result" key.
	ErrNoResult = errors.New("ng: reply has no result")
)

// Class is what kind of failure an NG error reply reports, for the
// client to answer its own peer accordingly (signalling maps it to a SIP
// status). rtpengine's wire format has no such field, only
// "error-reason", so the class is read from the reason's wording: the
// strings stock rtpengine uses and the ones xtrunk's relay uses.
type Class int

// Error classes.
const (
	// ClassInternal is everything else: a relay or client bug, a
	// configuration error (an unknown interface), a missing key.
	ClassInternal Class = iota
	// ClassBadSDP means the SDP cannot be parsed or used: the body's
	// fault, not the relay's.
	ClassBadSDP
	// ClassNoCapacity means the relay is out of ports or over a load or
	// session limit: retry later, or elsewhere.
	ClassNoCapacity
	// ClassUnknownCall means the relay has no such call or tag.
	ClassUnknownCall
)

var classNames = [...]string{"internal", "bad_sdp", "no_capacity", "unknown_call"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "internal"
	}
	return classNames[c]
}

// reasonClasses map wording in an "error-reason" to its class, checked in
// order (lower case, substring). rtpengine's own: "Ran out of ports",
// "Parallel session limit reached", "Load limit exceeded", "CPU usage limit
// exceeded", "Bandwidth limit exceeded", "Failed to parse SDP",
// "Incomplete SDP specification", "Error rewriting SDP", "Unknown call-id",
// "Call-ID not found or tags didn't match", "Unknown tag"; xtrunk's relay
// adds "too many media streams", "answer has more media streams than the
// offer", "SRTP MKI is not supported", "no acceptable SRTP crypto suite".
var reasonClasses = []struct {
	sub   string
	class Class
}{
	{"ran out of ports", ClassNoCapacity},
	{"no free ports", ClassNoCapacity},
	{"limit reached", ClassNoCapacity},
	{"limit exceeded", ClassNoCapacity},
	{"unknown call", ClassUnknownCall},
	{"call-id not found", ClassUnknownCall},
	{"tags didn't match", ClassUnknownCall},
	{"unknown tag", ClassUnknownCall},
	{"tag not found", ClassUnknownCall},
	{"unknown monologue", ClassUnknownCall},
	{"sdp", ClassBadSDP},
	{"media stream", ClassBadSDP},
	{"crypto", ClassBadSDP},
	{"srtp", ClassBadSDP},
}

// ClassOf classifies an "error-reason".
func ClassOf(reason string) Class {
	r := strings.ToLower(reason)
	for _, rc := range reasonClasses {
		if strings.Contains(r, rc.sub) {
			return rc.class
		}
	}
	return ClassInternal
}

// ReplyError is returned by Client.Do when the peer answered with
// result "error"; Reason is its "error-reason", Class what kind of
// failure that wording reports.
type ReplyError struct {
	Class  Class
	Reason string
}

// NewReplyError makes the error for an "error-reason", classified.
func NewReplyError(reason string) *ReplyError {
	return &ReplyError{Class: ClassOf(reason), Reason: reason}
}

func (e *ReplyError) Error() string {
	return "ng: peer replied error (" + e.Class.String() + "): " + e.Reason
}
