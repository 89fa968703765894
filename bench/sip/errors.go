package sip

import "errors"

var (
	// ErrConfig is returned for a benchmark configuration that cannot run.
	ErrConfig = errors.New("sip: bad configuration")
	// ErrEdgeStart is returned when an edge process does not come up: no
	// NG pong from its relay, or no SIP answer, within its start timeout.
	ErrEdgeStart = errors.New("sip: edge did not start")
	// ErrSIPp is returned when a SIPp run leaves no statistics to read
	// (it did not start, or died before writing them).
	ErrSIPp = errors.New("sip: SIPp run failed")
)
