package main

import "errors"

// Sentinel errors of the command line and the config file.
var (
	// ErrDemoFailed is a demo call that did not meet the bar (xtrunk demo).
	ErrDemoFailed = errors.New("demo: a call failed")
	// ErrConfig is a bad flag, environment variable or config file value.
	ErrConfig = errors.New("config")
	// ErrUnknownKey is a config file key that is no flag nor setting.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrNotReady is a readiness check that failed (/readyz).
	ErrNotReady = errors.New("not ready")
	// ErrChildFailed is a child of xtrunk up that exited or did not get
	// ready while the edge was starting.
	ErrChildFailed = errors.New("child failed")
	// ErrCtl is an admin request of xtrunk ctl or top that failed: the
	// process unreachable, or its answer an error.
	ErrCtl = errors.New("ctl")
)

// errStopped is a stop asked for while the edge was starting: up exits 0.
var errStopped = errors.New("stopped while starting")

// errCheckFailed is check-config's result when the file has errors (they
// are printed one per line before it).
var errCheckFailed = errors.New("the config has errors")
