package bpf

import "errors"

var (
	// ErrNotBPFFS is returned when the pin directory is not on a bpffs and
	// one cannot be mounted there.
	ErrNotBPFFS = errors.New("pin path is not on a bpffs")
	// ErrNoXDP is returned when the program cannot be attached to a device
	// in any XDP mode.
	ErrNoXDP = errors.New("cannot attach XDP")
	// ErrLayout is returned when pins of another map layout are found.
	ErrLayout = errors.New("pinned maps have an incompatible layout")
	// ErrPinDirBusy is returned when another process (another relay)
	// holds the pin directory's lock past Options.LockWait.
	ErrPinDirBusy = errors.New("pin directory in use")
	// ErrTooManyAddrs is returned when the fast path's table of relay
	// addresses (XTR_MAX_ADDRS) is full.
	ErrTooManyAddrs = errors.New("fast path relay address table full")
	// ErrInvalidAddr is returned for a relay address or session key
	// without an address.
	ErrInvalidAddr = errors.New("invalid relay address")
	// ErrBlobTooLarge is returned when a call record does not fit a map value.
	ErrBlobTooLarge = errors.New("call record too large")
	// ErrJitterSample is returned for an Options.JitterSample that is not
	// 1 or a power of two up to MaxJitterSample.
	ErrJitterSample = errors.New("invalid jitter sample interval")
)

// ErrXSK is returned when an AF_XDP socket cannot be registered with the
// program.
var ErrXSK = errors.New("cannot register AF_XDP socket")

// errRaced reports that another process installed the pin directory
// between this one finding it absent and renaming its own onto it.
var errRaced = errors.New("pin directory installed meanwhile")
