package sdp

import "errors"

// Parse wraps these with the line number ("sdp: bad m= line at line 6: port
// out of range"); test for them with errors.Is. The reasons never quote the
// input, which is untrusted and ends up in logs.
var (
	ErrNoVersion       = errors.New("sdp: first line is not v=0")
	ErrBadLine         = errors.New("sdp: malformed line")
	ErrNoOrigin        = errors.New("sdp: no o= line")
	ErrBadOrigin       = errors.New("sdp: bad o= line")
	ErrNoSessionName   = errors.New("sdp: no s= line")
	ErrBadMedia        = errors.New("sdp: bad m= line")
	ErrNoConnection    = errors.New("sdp: media has no connection address")
	ErrBadConnection   = errors.New("sdp: bad c= line")
	ErrBadRTCP         = errors.New("sdp: bad a=rtcp")
	ErrBadCrypto       = errors.New("sdp: bad a=crypto")
	ErrBadCryptoKey    = errors.New("sdp: a=crypto key length does not match its suite")
	ErrDuplicateCrypto = errors.New("sdp: a=crypto tag used twice in one media")
)
