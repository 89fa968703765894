package termshot

import "errors"

// ErrFont is a failure to load the embedded Go Mono font.
var ErrFont = errors.New("termshot: font")

// ErrEncode is a failure to encode the PNG.
var ErrEncode = errors.New("termshot: encode")
