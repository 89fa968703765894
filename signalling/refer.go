package signalling

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/signalling/sipmsg"
)

// Call transfer by REFER (RFC 3515, REQUIREMENTS §4): the customer's PBX
// on an origination call (the B-leg) asks the edge to connect the PSTN
// caller (the transferee, the A-leg) to another party. The edge accepts
// (202), calls the Refer-To target itself, reports progress with NOTIFY
// (message/sipfrag), bridges the transferee to the target through a new
// relay session and ends the PBX's leg; the trunk's TransferMode says
// which targets are allowed, its TransferCallerId whose number the target
// sees. Transfer results: the label values of xtrunk_sip_transfers_total.
const (
	transferRefused   = "refused"
	transferCompleted = "completed"
	transferFailed    = "failed"
)

// Trunk TransferMode values (control/store.TransferModes).
const (
	transferDisableAll = "disable-all"
	transferEnableAll  = "enable-all"
	transferSIPOnly    = "sip-only"
)

// referTarget is a parsed Refer-To: a telephone number (tel:+…, or
// sip:+…@ one of the edge's own domains, decided by the caller) or a SIP
// URI to call directly.
type referTarget struct {
	number   string  // E.164, for tel: URIs
	uri      sip.Uri // for sip: and sips: URIs
	isSIP    bool
	replaces bool // an attended transfer (Refer-To …?Replaces=…)
}

// maxReferTo bounds the Refer-To value the parser looks at.
const maxReferTo = 1024

// parseReferTo reads a Refer-To header value (RFC 3515 §2.1): a
// name-addr ("Name" <uri>) or a bare addr-spec, with the embedded headers
// of the URI (after '?') looked at for Replaces only. tel: URIs must be
// global numbers (+ and digits; visual separators are dropped).
func parseReferTo(v string) (referTarget, error) {
	var t referTarget
	v = strings.TrimSpace(v)
	if v == "" || len(v) > maxReferTo {
		return t, fmt.Errorf("%w: empty or too long", ErrReferTo)
	}
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return t, fmt.Errorf("%w: unterminated <", ErrReferTo)
		}
		v = v[i+1 : i+j]
	} else if i := strings.IndexByte(v, ';'); i >= 0 {
		// addr-spec form: header parameters follow the URI (RFC 3261 §20.10)
		v = v[:i]
	}
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '?'); i >= 0 {
		for _, h := range strings.Split(v[i+1:], "&") {
			name, _, _ := strings.Cut(h, "=")
			if strings.EqualFold(strings.TrimSpace(name), "Replaces") {
				t.replaces = true
			}
		}
		v = v[:i]
	}
	scheme, rest, ok := strings.Cut(v, ":")
	if !ok {
		return t, fmt.Errorf("%w: no URI scheme", ErrReferTo)
	}
	switch strings.ToLower(scheme) {
	case "tel":
		num, _, _ := strings.Cut(rest, ";")
		num = stripVisual(num)
		if !sipmsg.IsE164(num) {
			return t, fmt.Errorf("%w: tel URI %q is not a global E.164 number", ErrReferTo, num)
		}
		t.number = num
		return t, nil
	case "sip", "sips":
		var u sip.Uri
		if err := sip.ParseUri(v, &u); err != nil {
			return t, fmt.Errorf("%w: %v", ErrReferTo, err)
		}
		if u.Host == "" || strings.ContainsAny(u.Host, " \t\r\n<>\"") || strings.ContainsAny(u.User, " \t\r\n<>\"") {
			return t, fmt.Errorf("%w: SIP URI without a usable host", ErrReferTo)
		}
		if m, ok := u.UriParams.Get("method"); ok && !strings.EqualFold(m, "INVITE") {
			return t, fmt.Errorf("%w: method %q", ErrReferTo, m) // only INVITE makes a transfer
		}
		u.Headers = nil
		t.uri, t.isSIP = u, true
		return t, nil
	}
	return t, fmt.Errorf("%w: scheme %q", ErrReferTo, scheme)
}

// stripVisual drops a tel: number's visual separators (RFC 3966).
func stripVisual(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', '(', ')', ' ':
			return -1
		}
		return r
	}, s)
}

// referDecision is what the trunk's TransferMode says of a target: ok, or
// the status and reason of the refusal. own reports whether a SIP URI's
// host is one of the edge's own or a carrier's (a number on it is a PSTN
// target).
func referDecision(mode string, t referTarget, own func(host string) bool) (status int, reason string, number string) {
	if t.replaces {
		return 501, "Attended transfer (Replaces) not supported", ""
	}
	number = t.number
	if t.isSIP && own(t.uri.Host) {
		if !sipmsg.IsE164(t.uri.User) {
			return 403, "Refer-To names the edge itself", ""
		}
		number = t.uri.User
	}
	switch mode {
	case transferEnableAll:
	case transferSIPOnly:
		if number != "" {
			return 403, "Trunk allows transfers to SIP URIs only", ""
		}
	default: // disable-all, and anything unknown: refusing is the safe side
		return 403, "Transfers disabled on this trunk", ""
	}
	return 0, "", number
}

// ownHost reports whether host is the edge's: its domain or a subdomain
// (the trunks' *.pstn.DOMAIN), its --advertise or a listener's address.
func (s *Server) ownHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	d := strings.ToLower(s.cfg.Domain)
	if d != "" && (host == d || strings.HasSuffix(host, "."+d)) {
		return true
	}
	if s.cfg.Advertise != "" && strings.EqualFold(host, strings.Trim(s.cfg.Advertise, "[]")) {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	for _, tr := range s.lis.transports() {
		if la := s.lis.addr(tr).Addr(); la.IsValid() && la.Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// carrierHost reports whether host is a carrier's: a --carrier
// gateway's host, or an address in --carrier-source. A SIP URI there is
// the PSTN by another name: its number goes out under the termination
// rules like a tel: target, anything else is refused. Without this a
// sip-only trunk could reach the PSTN around them.
func (s *Server) carrierHost(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	for _, t := range s.settings().carriers {
		if strings.EqualFold(strings.TrimSuffix(strings.Trim(t.Value.host, "[]"), "."), host) {
			return true
		}
	}
	a, err := netip.ParseAddr(host)
	return err == nil && s.isCarrier(a)
}

// isCarrier reports whether a is a carrier's: in --carrier-source, or a
// --carrier gateway's address (a literal, or a name's as last resolved).
func (s *Server) isCarrier(a netip.Addr) bool {
	return s.inCarrierNets(a) || s.carrierAddrs.has(s, a)
}

func (s *Server) inCarrierNets(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.settings().carrierNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ownOrCarrier is referDecision's own: the edge's hosts and the
// carriers'.
func (s *Server) ownOrCarrier(host string) bool { return s.ownHost(host) || s.carrierHost(host) }

// onRefer answers a REFER inside a call: 202 and a transfer in the
// background, or a refusal.
func (s *Server) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	c, fromA := s.inDialogCall(req, tx)
	if c == nil {
		return
	}
	status, reason, tgt := c.checkRefer(fromA, req, tx)
	if status == 0 {
		return // readInDialog answered
	}
	if status != 202 {
		c.log.Info().Int("status", status).Str("reason", reason).Bool("from_a", fromA).Msg("REFER refused")
		s.metrics.transfers.WithLabelValues(c.p.trunk.Sid, transferRefused).Inc()
		respond(tx, req, status, reason, nil)
		return
	}
	if !c.reinvite.TryLock() { // one transfer or re-INVITE at a time
		respond(tx, req, 491, "Request Pending", nil)
		return
	}
	c.mu.Lock()
	c.transferring = true
	c.mu.Unlock()
	respond(tx, req, 202, "Accepted", nil)
	go func() {
		defer c.reinvite.Unlock()
		c.transfer(tgt)
	}()
}

// transferorLeft is onBye's question when the B-leg (the transferor)
// hangs up: during a transfer, the BYE ends only the transferor's leg —
// many PBXs hang up as soon as the REFER is accepted — and the transfer
// goes on (true); otherwise the call ends as usual (false).
func (c *call) transferorLeft() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.transferring {
		return false
	}
	c.transferorGone = true
	c.log.Info().Msg("transferor hung up; the transfer goes on")
	return true
}

// transferTarget is an accepted REFER's target: a number (out through
// the carriers) or a SIP URI.
type transferTarget struct {
	number string
	uri    sip.Uri
	refer  string // the Refer-To value, for the log
}

// checkRefer decides a REFER: 202 with the target, a refusal, or 0 when
// the request was already answered (not in order, call not answered).
func (c *call) checkRefer(fromA bool, req *sip.Request, tx sip.ServerTransaction) (int, string, transferTarget) {
	var tt transferTarget
	if c.readInDialog(fromA, req, tx, 403, "Call not answered") == nil {
		return 0, "", tt
	}
	switch {
	case fromA && c.p.customerIsA():
		// The PBX's own call out (termination): its leg is the edge's
		// server dialog, which a target's new client dialog cannot
		// replace in this B2BUA.
		return 501, "Transfer of termination calls not supported", tt
	case fromA != c.p.customerIsA() || c.p.bCarrier:
		return 403, "Only the customer may transfer", tt
	}
	hs := req.GetHeaders("Refer-To")
	if len(hs) != 1 {
		return 400, "Exactly one Refer-To required", tt
	}
	t, err := parseReferTo(hs[0].Value())
	if err != nil {
		c.log.Info().Err(err).Msg("bad Refer-To")
		return 400, "Bad Refer-To", tt
	}
	status, reason, number := referDecision(c.p.trunk.TransferMode, t, c.s.ownOrCarrier)
	if status != 0 {
		return status, reason, tt
	}
	if number == "" {
		switch destOfURI(t.uri).transport {
		case "UDP", "TCP", "TLS":
		default:
			return 400, "Unsupported transport in Refer-To", tt
		}
	}
	tt = transferTarget{number: number, uri: t.uri, refer: hs[0].Value()}
	return 202, "Accepted", tt
}
