package sockbuf

import "errors"

// ErrNoDropCounter is returned by Drops on a kernel whose SO_MEMINFO is
// too short to hold the drop counter (an old kernel).
var ErrNoDropCounter = errors.New("sockbuf: the kernel's SO_MEMINFO has no drop counter")
