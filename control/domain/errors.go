package domain

import (
	"errors"
	"fmt"
)

// ErrInvalid is what every rule violation wraps: a value breaks a rule
// (syntax, range, a forbidden address).
var ErrInvalid = errors.New("domain: invalid value")

// Error is a rule violation: Param names the offending value (the API
// parameter it came in, "SipUrl" for an origination URI), Msg says what
// is wrong in words an API client is shown as they are.
type Error struct {
	Param string
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is(err, ErrInvalid) work.
func (e *Error) Unwrap() error { return ErrInvalid }

func invalid(param, format string, args ...any) error {
	return &Error{Param: param, Msg: fmt.Sprintf(format, args...)}
}
