package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/xtrunk/xtrunk/control/store"
)

// Twilio error codes the API itself produces (the store's rules bring
// their own, see store.Code*).
const (
	CodeAuthenticate     = 20003 // missing or wrong credentials
	CodeMethodNotAllowed = 20004
	CodeAccountInactive  = 20005
	CodeNotFound         = 20404
	CodeTooLarge         = 20413 // request body too large
	CodeTooManyRequests  = 20429 // too many failed logins from this source, or writes from a subaccount
	CodeInternal         = 20500
)

// Error is an API failure with what Twilio's error body carries.
type Error struct {
	Status  int
	Code    int
	Message string

	wrongCredentials bool // a 401 that counts toward the login limit
}

// ErrEdgeAddress: an --edge-address value is not an address or CIDR.
var ErrEdgeAddress = errors.New("api: bad edge address")

// ErrTrustedProxy: a --trusted-proxy value is not an address or CIDR.
var ErrTrustedProxy = errors.New("api: bad trusted proxy")

func (e *Error) Error() string { return fmt.Sprintf("%d %d: %s", e.Status, e.Code, e.Message) }

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: store.CodeInvalidParameter, Message: fmt.Sprintf(format, args...)}
}

func notFound(path string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("The requested resource %s was not found", path)}
}

// errorBody is Twilio's error document.
type errorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// toAPIError classifies err: the API's own errors as they are, the store's
// rule errors by kind (not found 404, invalid or conflict 400), anything
// else a 500 (internal: logged, not shown).
func toAPIError(err error, path string) (*Error, bool) {
	var ae *Error
	if errors.As(err, &ae) {
		return ae, false
	}
	var se *store.Error
	if errors.As(err, &se) {
		switch {
		case errors.Is(se.Kind, store.ErrNotFound):
			return notFound(path), false
		case errors.Is(se.Kind, store.ErrInvalid), errors.Is(se.Kind, store.ErrConflict):
			return &Error{Status: http.StatusBadRequest, Code: se.Code, Message: se.Msg}, false
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "Internal server error"}, true
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="xtrunk"`)
	}
	writeJSON(w, e.Status, errorBody{Code: e.Code, Message: e.Message,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", e.Code), Status: e.Status})
}

// Errors of the credentials file.
var (
	// ErrCredentials is a malformed credentials file.
	ErrCredentials = errors.New("api: credentials file")
	// ErrCredentialsMode is a credentials file others may read.
	ErrCredentialsMode = errors.New("api: credentials file readable by group or others")
)
