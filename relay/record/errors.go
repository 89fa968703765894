package record

import "errors"

var (
	// ErrOptions is returned for unusable recording options.
	ErrOptions = errors.New("recording options")
	// ErrClosed is returned when a recording is closed twice.
	ErrClosed = errors.New("recording already closed")
	// ErrWrite is returned when the recording's files cannot be written.
	ErrWrite = errors.New("writing recording")

	errNotStopped = errors.New("recording not stopped")
)
