package signalling

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Results of a 3xx from an origination URI (REQUIREMENTS §3.7), the
// result label of xtrunk_sip_redirects_total.
const (
	// redirectFollowed: the first Contact was dialled.
	redirectFollowed = "followed"
	// redirectRefused: no usable Contact, a Contact toward xtrunk itself,
	// or the call's one redirect already spent on another target.
	redirectRefused = "refused"
	// redirectLoop: the redirected target redirected again, or the
	// Contact names the target that sent the 3xx.
	redirectLoop = "loop"
)

// redirectFailure is what a 3xx that is not followed counts as: a
// failure of that target, which fails over (route.Failover) and, when it
// was the last target, is what the carrier hears — never the 3xx itself,
// which would hand the carrier the customer's PBX addresses to dial.
const (
	redirectFailureStatus = 503
	redirectFailureReason = "Service Unavailable"
)

// newRedirectMetric is xtrunk_sip_redirects_total{trunk,result}: 3xx
// answers from origination URIs, by what the edge did with them
// (followed, refused, loop). trunk is the trunk's sid.
func newRedirectMetric(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_redirects_total",
		Help: "3xx answers from origination URIs, by trunk and result (followed, refused, loop)."}, []string{"trunk", "result"})
	reg.MustRegister(v)
	return v
}

// Where a tenant named a carrier gateway as a target, the via label of
// xtrunk_sip_carrier_targets_refused_total.
const (
	viaOriginationURI = "origination_uri"
	viaRedirect       = "redirect"
	viaDRSip          = "dr_sip"
	viaTransfer       = "transfer" // a REFER's Refer-To URI
	viaContact        = "contact"  // a termination PBX's Contact (requests inside its call)
)

// newCarrierTargetMetric is
// xtrunk_sip_carrier_targets_refused_total{trunk,via}: targets a tenant
// named (an origination URI, a PBX's 3xx Contact, a DR <Sip>) that were
// not dialled because they are a carrier gateway (ErrTargetIsCarrier): a
// toll-fraud attempt or a misconfigured trunk, for the NOC to look at.
func newCarrierTargetMetric(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_carrier_targets_refused_total",
		Help: "Targets a tenant named that are carrier gateways, not dialled, by trunk and via (origination_uri, redirect, dr_sip, transfer, contact)."},
		[]string{"trunk", "via"})
	reg.MustRegister(v)
	return v
}

// carrierTargetRefused counts a refused target when err says it is a
// carrier's.
func (s *Server) carrierTargetRefused(trunk, via string, err error) {
	if s.carrierTargets != nil && errors.Is(err, ErrTargetIsCarrier) {
		s.carrierTargets.WithLabelValues(trunk, via).Inc()
	}
}

// redirectState is a call's one redirect (REQUIREMENTS §3.7: once per
// call): the 3xx the last dial got, and where the call was redirected.
type redirectState struct {
	res  *sip.Response // the last B-leg 3xx, taken by followRedirect
	to   string        // the redirected target, for the CDR ("" if none)
	used bool          // the call's redirect is spent
}

// noteRedirect keeps a B-leg's 3xx for followRedirect (dial calls it).
func (c *call) noteRedirect(res *sip.Response) {
	if res == nil || !res.IsRedirection() {
		return
	}
	c.mu.Lock()
	c.redir.res = res
	c.mu.Unlock()
}

// redirectedTo is where the call was redirected ("" if it was not).
func (c *call) redirectedTo() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redir.to
}

// followRedirect handles a 3xx that target d answered: the first Contact
// is dialled once per call, unless it points at xtrunk itself. It returns
// what dial returns for the redirected leg; a 3xx not followed, or a
// second one, comes back as a 503 failure of d (failover applies).
func (c *call) followRedirect(d dest, offer []byte, log zerolog.Logger) (int, string, error) {
	c.mu.Lock()
	res, used := c.redir.res, c.redir.used
	c.redir.res = nil
	c.mu.Unlock()
	count := func(result string) {
		if c.s.redirects != nil {
			c.s.redirects.WithLabelValues(c.p.trunk.Sid, result).Inc()
		}
	}
	if res == nil {
		return redirectFailureStatus, redirectFailureReason, nil
	}
	if used {
		count(redirectRefused)
		log.Warn().Int("status", res.StatusCode).Msg("redirect refused: the call was redirected once already")
		return redirectFailureStatus, redirectFailureReason, nil
	}
	nd, err := c.s.redirectDest(c.ctx, res, d)
	if err != nil {
		if errors.Is(err, ErrRedirectLoop) {
			count(redirectLoop)
		} else {
			count(redirectRefused)
			c.s.carrierTargetRefused(c.p.trunk.Sid, viaRedirect, err)
		}
		log.Warn().Err(err).Int("status", res.StatusCode).Msg("redirect refused")
		return redirectFailureStatus, redirectFailureReason, nil
	}
	if c.p.trunk.Secure {
		nd.transport = "TLS" // as outboundInvite dials it: the CDR says what was dialled
	}
	c.mu.Lock()
	c.redir.used, c.redir.to = true, nd.String()
	c.mu.Unlock()
	count(redirectFollowed)
	rlog := log.With().Str("redirect", nd.String()).Logger()
	rlog.Info().Int("status", res.StatusCode).Msg("redirect followed")
	st, rs, err := c.dial(nd, offer)
	if err == nil && st >= 300 && st < 400 {
		c.mu.Lock()
		c.redir.res = nil
		c.mu.Unlock()
		count(redirectLoop)
		rlog.Warn().Int("status", st).Msg("redirected target redirected again: a failure of the target")
		return redirectFailureStatus, redirectFailureReason, nil
	}
	return st, rs, err
}

// redirectDest reads the first Contact of a 3xx into the target to dial:
// user, host, port and transport only (edge=, tnx= and every other
// parameter or header of the Contact are ignored), with the X- headers of
// the origination URI d that redirected. The trunk's Secure (TLS, SRTP)
// and recording settings apply as to any of its targets, since they come
// from the call's trunk, not from the target.
func (s *Server) redirectDest(ctx context.Context, res *sip.Response, d dest) (dest, error) {
	u, err := firstContact(res)
	if err != nil {
		return dest{}, err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "sip" && scheme != "sips" {
		return dest{}, fmt.Errorf("%w: Contact scheme %q", ErrRedirectRefused, u.Scheme)
	}
	nd := dest{user: u.User, host: strings.Trim(u.Host, "[]"), port: u.Port, transport: "UDP", headers: d.headers, tenantVia: viaRedirect}
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("transport"); ok && v != "" {
			switch t := strings.ToUpper(v); t {
			case "UDP", "TCP", "TLS":
				nd.transport = t
			default:
				return dest{}, fmt.Errorf("%w: Contact transport %q", ErrRedirectRefused, v)
			}
		}
	}
	if scheme == "sips" {
		nd.transport = "TLS"
	}
	if nd.user != "" && !validURIUser(nd.user) {
		return dest{}, fmt.Errorf("%w: Contact user %q", ErrRedirectRefused, nd.user)
	}
	if sameDest(nd, d) {
		return dest{}, fmt.Errorf("%w: Contact %s is the redirecting target", ErrRedirectLoop, nd)
	}
	if err := s.checkTenantTarget(ctx, nd.host); err != nil {
		return dest{}, err
	}
	return nd, nil
}

// firstContact is the URI of the first Contact of res: the first
// Contact header, up to its first comma outside quotes and angle
// brackets (sipgo's Contact() would read a list's last entry).
func firstContact(res *sip.Response) (sip.Uri, error) {
	var u sip.Uri
	hs := res.GetHeaders("Contact")
	if len(hs) == 0 {
		hs = res.GetHeaders("m")
	}
	if len(hs) == 0 {
		return u, fmt.Errorf("%w: no Contact", ErrRedirectRefused)
	}
	v := hs[0].Value()
	inQuotes, inBrackets := false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuotes:
			i++
		case c == '"':
			inQuotes = !inQuotes
		case c == '<' && !inQuotes:
			inBrackets = true
		case c == '>' && !inQuotes:
			inBrackets = false
		case c == ',' && !inQuotes && !inBrackets:
			v = v[:i]
		}
	}
	v = strings.TrimSpace(v)
	if v == "" || v == "*" {
		return u, fmt.Errorf("%w: no usable Contact", ErrRedirectRefused)
	}
	var params sip.HeaderParams
	if _, err := sip.ParseAddressValue(v, &u, &params); err != nil {
		return u, fmt.Errorf("%w: Contact: %w", ErrRedirectRefused, err)
	}
	if u.Wildcard || u.Host == "" {
		return u, fmt.Errorf("%w: no usable Contact", ErrRedirectRefused)
	}
	return u, nil
}

// validURIUser accepts a Request-URI user a redirect may set: printable
// ASCII without the characters that would end the URI or the header.
func validURIUser(u string) bool {
	if len(u) > 128 {
		return false
	}
	for i := 0; i < len(u); i++ {
		b := u[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("<>\"@;?,", b) >= 0 {
			return false
		}
	}
	return true
}

// sameDest reports whether a and b name the same host, port and user
// (the default port of each transport made explicit).
func sameDest(a, b dest) bool {
	port := func(d dest) int {
		switch {
		case d.port != 0:
			return d.port
		case d.transport == "TLS":
			return 5061
		}
		return 5060
	}
	return strings.EqualFold(a.host, b.host) && port(a) == port(b) && a.user == b.user
}

// checkTenantTarget refuses a target a tenant names (a 3xx Contact, a
// DR <Sip>) that is xtrunk itself or a carrier gateway. Itself: its
// --domain and every name under it ({prefix}.pstn.DOMAIN and the
// localized hosts), --advertise, and any address of the edge (listeners,
// relay interfaces, the host's interfaces, loopback, unspecified), which
// would loop the call back. A carrier: a --carrier gateway's host or an
// address in --carrier-source, which would take the call to the PSTN from
// the edge's address (the carrier trusts it) past termination's checks:
// caller ID, trial, CPS and concurrency limits — toll fraud. REFER does
// the same (referDecision, resolvesToCarrier). A name is resolved as the
// dial would resolve it, so a customer's DNS name for the edge or a
// carrier is refused too. This is the early, named refusal (counted as a
// refused redirect); the address actually dialled is vetted again as it
// is dialled (tenantDialCheck), which also covers SRV answers and a name
// that resolves differently the second time.
func (s *Server) checkTenantTarget(ctx context.Context, host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	dom := strings.ToLower(s.cfg.Domain)
	if h == dom || strings.HasSuffix(h, "."+dom) {
		return fmt.Errorf("%w: %s is xtrunk's own domain", ErrRedirectRefused, host)
	}
	if adv := strings.ToLower(s.cfg.Advertise); adv != "" && h == strings.Trim(adv, "[]") {
		return fmt.Errorf("%w: %s is the edge's advertised host", ErrRedirectRefused, host)
	}
	if s.carrierHost(h) {
		return fmt.Errorf("%w: %w: %s", ErrRedirectRefused, ErrTargetIsCarrier, host)
	}
	for _, a := range s.resolveHost(ctx, h) {
		if s.isOwnAddr(a) {
			return fmt.Errorf("%w: %s is an address of the edge", ErrRedirectRefused, host)
		}
		if s.isCarrier(a) {
			return fmt.Errorf("%w: %w: %s is a carrier's address", ErrRedirectRefused, ErrTargetIsCarrier, host)
		}
	}
	return nil
}

// resolveHost is host's addresses: itself when it is one, else what it
// resolves to (within resolveTimeout; none when it does not resolve).
func (s *Server) resolveHost(ctx context.Context, host string) []netip.Addr {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	r := s.resolver
	if r == nil {
		r = net.DefaultResolver
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, _ := r.LookupNetIP(rctx, "ip", host)
	addrs := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, ip.Unmap())
	}
	return addrs
}

// isOwnAddr reports whether a is an address of this edge.
func (s *Server) isOwnAddr(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
		return true
	}
	if s.lis != nil {
		for _, tr := range s.lis.transports() {
			if s.lis.addr(tr).Addr().Unmap() == a {
				return true
			}
		}
	}
	if adv, err := netip.ParseAddr(strings.Trim(s.cfg.Advertise, "[]")); err == nil && adv.Unmap() == a {
		return true
	}
	for ip := range s.relayIfaces {
		if r, err := netip.ParseAddr(ip); err == nil && r.Unmap() == a {
			return true
		}
	}
	return s.hostAddrs.has(a)
}
