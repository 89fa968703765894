package media

import "errors"

var (
	// ErrConfig is returned for a benchmark configuration that cannot run.
	ErrConfig = errors.New("media: bad configuration")
	// ErrTooManyCalls is returned for a step with more calls than the lab's
	// port plan holds (see MaxCalls).
	ErrTooManyCalls = errors.New("media: too many calls for the port plan")
	// ErrRelayStart is returned when a relay under test does not come up
	// (no NG pong within its start timeout).
	ErrRelayStart = errors.New("media: relay did not start")
	// ErrSetup is returned when calls cannot be set up over NG.
	ErrSetup = errors.New("media: call setup failed")
	// ErrSRTP is returned when a relay does not terminate the caller's
	// SRTP as --srtp asks: no SRTP answer, or packets that do not get
	// through decrypted (toward the callee) or encrypted with the key it
	// announced (toward the caller).
	ErrSRTP = errors.New("media: SRTP not terminated")
	// ErrNoProgram is returned when --prog-stats finds no XDP program in
	// the relay process to read the statistics of.
	ErrNoProgram = errors.New("media: no XDP program")
)
