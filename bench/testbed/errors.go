package testbed

import "errors"

var (
	// ErrClosed is returned by operations on a lab (or its namespaces) after Close.
	ErrClosed = errors.New("testbed: lab closed")
	// ErrBadName is returned for a logical name that cannot become part of a
	// namespace or interface name.
	ErrBadName = errors.New("testbed: bad name")
	// ErrDuplicate is returned when a namespace or interface name is already used in the lab.
	ErrDuplicate = errors.New("testbed: name already in use")
	// ErrAddrNotAllowed is returned for an address or route outside the
	// benchmarking ranges 198.18.0.0/15 and 2001:2::/48; a lab must never be
	// able to reach a real network.
	ErrAddrNotAllowed = errors.New("testbed: address outside 198.18.0.0/15 and 2001:2::/48")
	// ErrDefaultRoute is returned by AddRoute for a zero-length prefix.
	ErrDefaultRoute = errors.New("testbed: default routes are not allowed")
	// ErrForeignNS is returned when a namespace from another lab is passed in.
	ErrForeignNS = errors.New("testbed: namespace belongs to another lab")
	// ErrStopTimeout is returned by Process.Stop when the process ignored
	// SIGTERM and had to be killed.
	ErrStopTimeout = errors.New("testbed: process did not exit after SIGTERM; killed")
	// ErrNotPrivileged describes why privileged tests cannot run.
	ErrNotPrivileged = errors.New("testbed: not privileged")
)
