package signalling

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xtrunk/xtrunk/control/domain"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// Disaster recovery (REQUIREMENTS §3.8): when no origination URI takes a
// call, the edge asks the trunk's DisasterRecoveryUrl what to do, as
// Twilio does — the same parameters, the same X-Twilio-Signature — and
// runs the TwiML it answers (twiml.go, drverbs.go).

// drTimeout bounds one DR request, redirects included: the carrier is
// waiting on an unanswered INVITE.
const drTimeout = 5 * time.Second

// Results of a DR request, the result label of
// xtrunk_sip_dr_requests_total.
const (
	drOK        = "ok"         // a TwiML document to run
	drHTTPError = "http_error" // a status other than 2xx
	drTimedOut  = "timeout"    // no answer within drTimeout
	drBadTwiML  = "bad_twiml"  // not a TwiML document (or too large)
	drError     = "error"      // the URL could not be requested at all
)

// drState is the edge's DR client and its metric.
type drState struct {
	hc *http.Client
	// reqs is xtrunk_sip_dr_requests_total{trunk,result}: requests to
	// disaster-recovery URLs (the trunk's, <Redirect>s, <Dial action>s)
	// by trunk sid and result (ok, http_error, timeout, bad_twiml, error).
	reqs *prometheus.CounterVec
}

// newDRState makes the DR client: redirects followed (Go's default, at
// most 10), HTTPS verified against the system's roots, drTimeout. Every
// connection it opens, to the trunk's URL, a redirect's or a <Play>'s, is
// first checked by allowed with the address the name resolved to (so a
// name re-pointed after the check cannot slip past it).
func newDRState(reg prometheus.Registerer, allowed func(netip.Addr) error) *drState {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: drTimeout, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %q", ErrDRAddress, address)
			}
			return allowed(ap.Addr().Unmap())
		}}
	tr.DialContext = dialer.DialContext
	// No proxy from the environment: through one, the check above would
	// see only the proxy's address and the proxy would fetch whatever the
	// tenant's URL names.
	tr.Proxy = nil
	d := &drState{hc: &http.Client{Timeout: drTimeout, Transport: tr}}
	d.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_dr_requests_total",
		Help: "Disaster-recovery URL requests, by trunk and result (ok, http_error, timeout, bad_twiml, error)."}, []string{"trunk", "result"})
	reg.MustRegister(d.reqs)
	return d
}

// drAddrAllowed refuses what a DR URL (the tenant's to name) must not
// make the edge connect to: loopback, unspecified, link-local (cloud
// metadata services live there), multicast, and the edge's own addresses
// (isOwnAddr), where sip's and the relay's admin endpoints answer local
// clients without credentials, the API and the store may listen, and a
// tenant's request would come from the edge itself. Private ranges stay
// allowed: a customer's DR server on a private interconnect.
func (s *Server) drAddrAllowed(a netip.Addr) error {
	if r := domain.SpecialAddr(a); r != "" {
		return fmt.Errorf("%w: %s is a %s address", ErrDRAddress, a, r)
	}
	switch {
	case slices.Contains(metadataAddrs, a):
		return fmt.Errorf("%w: %s is a cloud metadata service", ErrDRAddress, a)
	case s.isOwnAddr(a):
		return fmt.Errorf("%w: %s is an address of the edge", ErrDRAddress, a)
	}
	return nil
}

// metadataAddrs are cloud instance-metadata services outside the
// link-local range (AWS's IPv6 one, Alibaba Cloud's): a DR URL must not
// reach them either.
var metadataAddrs = []netip.Addr{netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("100.100.100.200")}

// twilioSignature is X-Twilio-Signature as Twilio documents it (Security,
// "Validating Signatures from Twilio"): take the full URL of the request
// (with its query string), append each POST parameter's name and value
// sorted by name, no delimiters; HMAC-SHA1 it with the account's auth
// token; base64. A GET has no POST parameters: post is nil.
func twilioSignature(authToken, fullURL string, post url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	keys := make([]string, 0, len(post))
	for k := range post {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := append([]string(nil), post[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// drRun is one call's disaster recovery: the call, the relay's offer for
// new legs, the account's auth token for signatures, and where it stands.
type drRun struct {
	c      *call
	offer  []byte
	sid    string // the CDR's Call SID: CallSid
	token  string
	hops   int    // <Redirect>s followed
	status int    // what the carrier hears if the document ends unanswered
	reason string // … and its reason phrase
	// bIface is the relay interface of the last <Dial> offer (reoffer).
	bIface  string
	offered bool
	trial   bool // the account is a trial one: <Number> only to its verified caller IDs
}

// wantsDR reports whether an origination call that no URI took (final
// status status) goes to the trunk's DisasterRecoveryUrl: failures that
// fail over (route.Failover: no answer, 5xx, 480, none enabled), not a
// PBX's definite answer (busy, not found, 6xx), and not a call the
// carrier cancelled.
func (c *call) wantsDR(status int) bool {
	return !c.p.customerIsA() && c.p.trunk.DisasterRecoveryURL != "" && c.ctx.Err() == nil &&
		c.s.dr != nil && route.Failover(status)
}

// disasterRecovery runs the trunk's DR TwiML after the origination URIs
// failed with status. It returns what run does with the call: 200 when a
// <Dial> connected it, a final status for the carrier, or 0 when the
// call has ended already (hung up after the document, or cancelled).
func (c *call) disasterRecovery(offer []byte, status int, reason string) Ending {
	c.mu.Lock()
	if c.sid == "" {
		c.sid = store.NewSid(store.PrefixCall)
	}
	sid := c.sid
	c.mu.Unlock()
	r := &drRun{c: c, offer: offer, sid: sid, status: status, reason: reason}
	acct, err := c.s.st.Account(c.ctx, c.p.trunk.AccountSid)
	if err != nil {
		c.log.Error().Err(err).Msg("disaster recovery: account lookup failed")
		return r.fail(500, reasonDRFailed)
	}
	r.token = acct.AuthToken
	r.trial = strings.EqualFold(acct.Type, store.TypeTrial)
	method := c.p.trunk.DisasterRecoveryMethod
	c.log.Info().Str("url", c.p.trunk.DisasterRecoveryURL).Int("status", status).Msg("no origination URI took the call: disaster recovery")
	verbs, base, err := r.fetch(c.p.trunk.DisasterRecoveryURL, method, nil)
	if err != nil {
		return r.fetchFailed(err)
	}
	return r.run(verbs, base)
}

// params are Twilio's call parameters for a DR request.
func (r *drRun) params() url.Values {
	c := r.c
	return url.Values{"CallSid": {r.sid}, "AccountSid": {c.p.trunk.AccountSid}, "From": {c.p.from}, "To": {c.p.to},
		"CallStatus": {"ringing"}, "Direction": {"inbound"}, "ApiVersion": {"2010-04-01"}, "ForwardedFrom": {c.p.diversion}}
}

// fetch requests rawURL (relative to base when not absolute) with the
// call's parameters and extra, signed, and parses the TwiML it answers.
// It returns the document's verbs and its final URL (after redirects),
// against which its relative URLs resolve.
func (r *drRun) fetch(rawURL, method string, extra url.Values) ([]twimlVerb, *url.URL, error) {
	verbs, u, result, err := r.request(rawURL, method, extra)
	r.c.s.dr.reqs.WithLabelValues(r.c.p.trunk.Sid, result).Inc()
	if err != nil {
		return nil, nil, &drFetchError{result: result, err: err}
	}
	return verbs, u, nil
}

// drFetchError is a failed DR request and its metric result.
type drFetchError struct {
	result string
	err    error
}

func (e *drFetchError) Error() string { return e.err.Error() }
func (e *drFetchError) Unwrap() error { return e.err }

func (r *drRun) request(rawURL, method string, extra url.Values) ([]twimlVerb, *url.URL, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, drError, fmt.Errorf("%w: %q is not an http(s) URL", ErrDRRequest, rawURL)
	}
	params := r.params()
	for k, v := range extra {
		params[k] = v
	}
	var req *http.Request
	if strings.EqualFold(method, http.MethodGet) {
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(r.c.ctx, http.MethodGet, u.String(), nil)
		if err == nil {
			req.Header.Set("X-Twilio-Signature", twilioSignature(r.token, u.String(), nil))
		}
	} else {
		req, err = http.NewRequestWithContext(r.c.ctx, http.MethodPost, u.String(), strings.NewReader(params.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", twilioSignature(r.token, u.String(), params))
		}
	}
	if err != nil {
		return nil, nil, drError, fmt.Errorf("%w: %w", ErrDRRequest, err)
	}
	req.Header.Set("User-Agent", "xtrunk-dr/1.0")
	req.Header.Set("Accept", "application/xml, text/xml")
	res, err := r.c.s.dr.hc.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, nil, drTimedOut, fmt.Errorf("%w: timed out after %s: %w", ErrDRRequest, drTimeout, err)
		}
		return nil, nil, drError, fmt.Errorf("%w: %w", ErrDRRequest, err)
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, nil, drHTTPError, fmt.Errorf("%w: HTTP %d", ErrDRRequest, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxTwiMLBytes+1))
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil, drTimedOut, fmt.Errorf("%w: timed out reading the answer: %w", ErrDRRequest, err)
		}
		return nil, nil, drError, fmt.Errorf("%w: %w", ErrDRRequest, err)
	}
	verbs, err := parseTwiML(body)
	if err != nil {
		return nil, nil, drBadTwiML, err
	}
	return verbs, res.Request.URL, drOK, nil
}

// fetchFailed ends the call after a DR request failed: 500 for an answer
// that is not TwiML, 503 when the URL did not answer properly. The reason
// phrase, also the CDR's hangup cause, says which.
func (r *drRun) fetchFailed(err error) Ending {
	r.c.log.Warn().Err(err).Msg("disaster recovery failed")
	if r.c.ctx.Err() != nil {
		return ended // the carrier cancelled: the call has ended
	}
	var fe *drFetchError
	result := drError
	if errors.As(err, &fe) {
		result = fe.result
	}
	switch result {
	case drBadTwiML:
		return r.fail(500, reasonDRBadTwiML)
	case drTimedOut:
		return r.fail(503, reasonDRTimeout)
	case drHTTPError:
		return r.fail(503, reasonDRHTTPError)
	}
	return r.fail(503, reasonDRUnreachable)
}

// fail ends DR with status: as the final answer when the call is still
// unanswered, with BYE (the CDR keeping reason) when it was answered.
func (r *drRun) fail(status sipStatus, reason HangupReason) Ending {
	e := endedBy(hangupSystem, status, reason)
	if r.c.isAnswered() {
		r.c.closeWith(e)
		return ended
	}
	return e
}

// isAnswered reports whether the A-leg got its 200.
func (c *call) isAnswered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answered
}

// resolve is ref relative to the document at base.
func resolve(base *url.URL, ref string) string {
	u, err := url.Parse(strings.TrimSpace(ref))
	if err != nil || base == nil {
		return strings.TrimSpace(ref)
	}
	return base.ResolveReference(u).String()
}

// callSid is the call's Call SID: the one a DR request named, else a new one.
func (c *call) callSid() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sid == "" {
		c.sid = store.NewSid(store.PrefixCall)
	}
	return c.sid
}
