package store

import (
	"errors"
	"fmt"

	"github.com/xtrunk/xtrunk/control/domain"
)

// Kinds of failure. Every error the store returns for a rule or a missing
// row wraps exactly one of these, so callers classify with errors.Is.
var (
	// ErrNotFound: no such row in this account (another account's rows are
	// not found either, so nothing leaks across accounts).
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid: a value breaks a rule (range, syntax, strength...).
	ErrInvalid = errors.New("store: invalid value")
	// ErrConflict: the value is valid but clashes with existing state
	// (domain taken, number on another trunk, limit reached...).
	ErrConflict = errors.New("store: conflict")
)

// ErrCorrupt: SQLite's integrity check found the database file damaged.
var ErrCorrupt = errors.New("store: database file is corrupt")

// ErrClosed is returned by Watch's channel owner and by calls after Close.
var ErrClosed = errors.New("store: closed")

// Twilio error codes the store's rules map to. The API puts them in the
// error body's "code" and links https://www.twilio.com/docs/errors/{code}.
const (
	CodeInvalidParameter  = 20001 // a parameter is missing, malformed or out of range
	CodeNotFound          = 20404 // the resource does not exist (in this account)
	CodeInvalidDomain     = 21232 // DomainName is not {prefix}.pstn.{domain}
	CodeTrunkDependencies = 21247 // sub-domain parent missing / trunk still has sub-domains
	CodeDomainTaken       = 21248 // DomainName already used by a trunk
	CodePhoneInvalid      = 21421 // PhoneNumber is not E.164
	CodePhoneUnavailable  = 21422 // PhoneNumber is already provisioned
	CodeCallerIDExists    = 21450 // caller ID already verified on this account
	CodeCallerIDIsDID     = 21212 // caller ID is another account's DID (Twilio: invalid From number)
)

// Error is a rule violation or a missing row: Kind is one of the sentinels
// above, Code the Twilio error code, Param the offending parameter.
type Error struct {
	Kind  error
	Code  int
	Param string
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is(err, ErrInvalid) and friends work.
func (e *Error) Unwrap() error { return e.Kind }

func invalid(param, format string, args ...any) error {
	return &Error{Kind: ErrInvalid, Code: CodeInvalidParameter, Param: param, Msg: fmt.Sprintf(format, args...)}
}

func invalidCode(code int, param, format string, args ...any) error {
	return &Error{Kind: ErrInvalid, Code: code, Param: param, Msg: fmt.Sprintf(format, args...)}
}

func conflict(code int, param, format string, args ...any) error {
	return &Error{Kind: ErrConflict, Code: code, Param: param, Msg: fmt.Sprintf(format, args...)}
}

func notFound(what, sid string) error {
	return &Error{Kind: ErrNotFound, Code: CodeNotFound, Msg: fmt.Sprintf("%s %s was not found", what, sid)}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// fromDomain turns control/domain's rule violations into the store's
// (ErrInvalid, code 20001, same parameter and message); nil stays nil.
func fromDomain(err error) error {
	if err == nil {
		return nil // before errors.As: its target escapes, an allocation per check
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return invalid(de.Param, "%s", de.Msg)
	}
	return err
}
