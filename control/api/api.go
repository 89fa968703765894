// Package api serves xtrunk's provisioning REST API, wire-compatible with
// Twilio's Trunking v1 API (/v1/Trunks and its sub-resources) and the SIP,
// IncomingPhoneNumbers, OutgoingCallerIds, Calls, Recordings and Accounts
// parts of the 2010-04-01 API: same paths (".json" suffixes included),
// form-encoded POST bodies, JSON field names, sid formats, paging
// (PageSize, Page, PageToken; "meta" on v1, next_page_uri and friends on
// 2010), HTTP Basic auth with AccountSid/AuthToken, and Twilio's error
// document (code, message, more_info, status). Twilio's helper libraries
// work against it unchanged but for the host they talk to.
//
// Every request acts for one account: on v1 the authenticated one, on
// 2010 the AccountSid in the path, which must be the authenticated account
// or one of its subaccounts. Anything else, like another account's
// resource, is 404. Bad input is a 4xx with a Twilio error document; a 5xx
// means the store failed.
package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
)

// MaxBody is the largest request body accepted.
const MaxBody = 64 << 10

// Server is the REST API over a store.
type Server struct {
	st           *store.Store
	log          zerolog.Logger
	publicURL    string
	routes       []route
	edgeAddrs    []netip.Prefix               // --edge-address
	hostAddrs    func() ([]netip.Addr, error) // this host's addresses
	recordingDir string                       // where recordings' files are, by name
	logins       *loginLimiter                // failed logins per source
	writes       *writeLimiter                // writes per subaccount
	proxies      []netip.Prefix               // trusted reverse proxies (X-Forwarded-For)
	metrics      *apiMetrics                  // nil without WithRegistry
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(s *Server) { s.log = l } }

// WithPublicURL sets the scheme://host used in absolute URLs (v1 "url",
// "meta" paging URLs, recordings' media_url). Default: from each request.
func WithPublicURL(u string) Option {
	return func(s *Server) { s.publicURL = strings.TrimSuffix(u, "/") }
}

// WithTenantWriteLimit sets the writes a second (rate; <= 0: no limit)
// and at once (burst) each subaccount may make.
func WithTenantWriteLimit(rate float64, burst int) Option {
	return func(s *Server) { s.writes = newWriteLimiter(time.Now, rate, burst) }
}

// New returns the API over st.
func New(st *store.Store, opts ...Option) *Server {
	s := &Server{st: st, log: zerolog.Nop(), hostAddrs: interfaceAddrs, recordingDir: DefaultRecordingDir,
		logins: newLoginLimiter(time.Now), writes: newWriteLimiter(time.Now, DefaultTenantWriteRate, DefaultTenantWriteBurst)}
	for _, o := range opts {
		o(s)
	}
	s.routes = s.table()
	return s
}

// request is what a handler gets.
type request struct {
	*http.Request
	ctx     context.Context
	auth    store.Account // the authenticated account
	account string        // the account acted for
	p       map[string]string
	form    params
	base    string // scheme://host for absolute URLs
}

type handler func(w http.ResponseWriter, r *request) error

// ServeHTTP authenticates, routes and renders errors.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	began := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error().Interface("panic", v).Str("method", hr.Method).Str("path", hr.URL.Path).Msg("api handler panicked")
			if rec.status == 0 {
				writeError(rec, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "Internal server error"})
			}
		}
		s.log.Debug().Str("method", hr.Method).Str("path", hr.URL.Path).Int("status", rec.status).Dur("took", time.Since(began)).Msg("api request")
		s.observe(hr, rec.status, time.Since(began))
	}()
	if err := s.serve(rec, hr); err != nil {
		ae, internal := toAPIError(err, hr.URL.Path)
		if internal {
			s.storeFailed()
			s.log.Error().Err(err).Str("method", hr.Method).Str("path", hr.URL.Path).Msg("api request failed")
		}
		writeError(rec, ae)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request) error {
	client := s.clientAddr(hr)
	src := sourceKey(client)
	if wait, limited := s.logins.blocked(src); limited {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		return &Error{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests,
			Message: "Too many failed authentications from this address; retry later"}
	}
	auth, err := s.authenticate(hr)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && ae.wrongCredentials {
		s.logins.failed(src)
		s.log.Info().Str("src", client).Str("peer", hr.RemoteAddr).Msg("api authentication failed")
	}
	if err != nil {
		return err
	}
	rt, params, ok := s.match(hr.URL.Path)
	if !ok {
		return notFound(hr.URL.Path)
	}
	h := rt.methods[hr.Method]
	if h == nil {
		allow := make([]string, 0, len(rt.methods))
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			if rt.methods[m] != nil {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "Method not allowed"}
	}
	if hr.Method != http.MethodGet && auth.OwnerSid != "" && auth.OwnerSid != auth.Sid {
		if wait, first, ok := s.writes.take(auth.Sid); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			s.writeLimited()
			if first {
				s.log.Warn().Str("account", auth.Sid).Float64("rate", s.writes.rate).Int("burst", int(s.writes.burst)).
					Msg("api: account over its write limit; its writes get 429 until its bucket refills")
			}
			return &Error{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests,
				Message: fmt.Sprintf("Too many writes from this account: at most %g a second, %d at once; retry later", s.writes.rate, int(s.writes.burst))}
		}
	}
	r := &request{Request: hr, ctx: hr.Context(), auth: auth, account: auth.Sid, p: params, base: s.base(hr)}
	if ac, ok := params["AC"]; ok {
		// 2010: the path names the account; it must be this one or a
		// subaccount of it, and anything else looks like nothing at all.
		can, err := s.st.CanAccess(r.ctx, auth.Sid, ac)
		if err != nil {
			return err
		}
		if !can {
			return notFound(hr.URL.Path)
		}
		r.account = ac
	}
	if r.form, err = readForm(w, hr); err != nil {
		return err
	}
	return h(w, r)
}

func (s *Server) authenticate(hr *http.Request) (store.Account, error) {
	user, pass, ok := hr.BasicAuth()
	if !ok {
		return store.Account{}, &Error{Status: http.StatusUnauthorized, Code: CodeAuthenticate, Message: "Authentication Error - No credentials provided"}
	}
	fail := &Error{Status: http.StatusUnauthorized, Code: CodeAuthenticate, Message: "Authentication Error - invalid username or password", wrongCredentials: true}
	if !store.ValidSid(store.PrefixAccount, user) {
		return store.Account{}, fail
	}
	a, err := s.st.Account(hr.Context(), user)
	if errors.Is(err, store.ErrNotFound) {
		subtle.ConstantTimeCompare([]byte(pass), []byte(store.NewAuthToken())) // same work as a known account
		return store.Account{}, fail
	}
	if err != nil {
		return store.Account{}, err
	}
	if subtle.ConstantTimeCompare([]byte(pass), []byte(a.AuthToken)) != 1 {
		return store.Account{}, fail
	}
	if a.Status != store.StatusActive {
		return store.Account{}, &Error{Status: http.StatusUnauthorized, Code: CodeAccountInactive, Message: "Account is not active"}
	}
	return a, nil
}

func (s *Server) base(hr *http.Request) string {
	if s.publicURL != "" {
		return s.publicURL
	}
	scheme := "http"
	if hr.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + hr.Host
}

// writeJSON renders v as Twilio does: '&' in URLs stays '&' (no HTML
// escaping).
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // our own types always marshal; keep the contract anyway
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"code":20500,"message":"Internal server error","more_info":"https://www.twilio.com/docs/errors/20500","status":500}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
