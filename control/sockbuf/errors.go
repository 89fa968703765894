package sockbuf

import "errors"

// ErrNotSocket is returned for a connection without a file descriptor.
var ErrNotSocket = errors.New("sockbuf: not a socket with a file descriptor")

// ErrNoDropCounter is returned by Drops on a kernel whose SO_MEMINFO is
// too short to hold the drop counter (an old kernel).
var ErrNoDropCounter = errors.New("sockbuf: the kernel's SO_MEMINFO has no drop counter")
