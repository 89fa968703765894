package wav

import "errors"

// ErrFormat is a file that is not a WAV of 8 kHz mono G.711.
var ErrFormat = errors.New("unsupported media file")
