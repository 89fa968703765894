package ng

import "errors"

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

// ReplyError is returned by Client.Do when the peer answered with
// result "error"; Reason is its "error-reason".
type ReplyError struct {
	Reason string
}

func (e *ReplyError) Error() string {
	return "ng: peer replied error: " + e.Reason
}
