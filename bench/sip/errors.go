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

// errKilled says an edge process had to be killed: noted in the results,
// not a failure of the run.
var errKilled = errors.New("did not exit within 30 s of SIGTERM; killed")
