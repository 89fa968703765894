package signalling

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/domain"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/route"
	"github.com/xtrunk/xtrunk/signalling/sipmsg"
)

// dest is where a B-leg INVITE goes: a carrier gateway (termination) or an
// origination URI (origination), already resolved to the rules of
// REQUIREMENTS §3.4–3.5.
type dest struct {
	user      string      // Request-URI user; "" means the dialed number
	host      string      // IP literal or FQDN (IPv6 without brackets)
	port      int         // 0: the transport's default
	transport string      // "UDP", "TCP" or "TLS"
	headers   [][2]string // X- headers for every call
	// An origination URI's sid and the edge its ;edge= (;region=) names
	// ("" for none): the call leaves from that edge (edges.go).
	sid, edge string
	// tenantVia says the target is one a tenant named, and how
	// (viaOriginationURI, viaRedirect, viaDRSip, viaTransfer): its
	// address is vetted as it is dialled (tenantDialCheck), and so are
	// the requests inside the call that follow (the fork's dialogs inherit
	// the INVITE's check), to whatever Contact the PBX answered with. "":
	// the edge's own choice (a carrier gateway, another edge).
	tenantVia string
}

func (d dest) String() string {
	u := sip.Uri{Scheme: "sip", User: d.user, Host: d.host, Port: d.port}
	return u.String() + ";transport=" + strings.ToLower(d.transport)
}

// destOfURI reads a carrier gateway URI given with --carrier.
func destOfURI(u sip.Uri) dest {
	d := dest{user: u.User, host: u.Host, port: u.Port, transport: "UDP"}
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("transport"); ok && v != "" {
			d.transport = strings.ToUpper(v)
		}
	}
	if u.IsEncrypted() {
		d.transport = "TLS"
	}
	return d
}

// destOfSipURL reads an origination URI from the store: sips: is sip: over
// TLS, ;transport= picks the transport, ?X-… become headers, ;edge= and
// ;region= are for choosing the edge and not sent.
func destOfSipURL(u domain.SipURL) dest {
	d := dest{user: u.User, host: u.Host, port: u.Port, transport: "UDP", headers: u.Headers}
	if v, ok := u.Param("transport"); ok && v != "" {
		d.transport = strings.ToUpper(v)
	}
	if u.Secure {
		d.transport = "TLS"
	}
	return d
}

// NumberConfig is what an origination call needs for one DID: the number,
// its trunk and the trunk's enabled origination URIs.
type NumberConfig struct {
	Number  store.PhoneNumber
	Trunk   store.Trunk
	Targets []route.Target[dest]
	Active  bool // the number's account (and its main account) take calls
}

// Number finds the trunk a DID belongs to; ok is false for a number that
// is not provisioned or on no trunk.
func (c *Cache) Number(ctx context.Context, e164 string) (*NumberConfig, bool, error) {
	c.mu.Lock()
	nc, hit := c.numbers[e164]
	gen := c.gen
	c.mu.Unlock()
	if hit {
		return nc, nc != nil, nil
	}
	nc, err := c.loadNumber(ctx, e164)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	if gen == c.gen && len(c.numbers) < 100000 {
		c.numbers[e164] = nc
	}
	c.mu.Unlock()
	return nc, nc != nil, nil
}

func (c *Cache) loadNumber(ctx context.Context, e164 string) (*NumberConfig, error) {
	n, err := c.st.PhoneNumberByE164(ctx, e164)
	if errors.Is(err, store.ErrNotFound) || (err == nil && n.TrunkSid == "") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := c.st.Trunk(ctx, n.AccountSid, n.TrunkSid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	acct, err := c.st.Account(ctx, n.AccountSid)
	if err != nil {
		return nil, err
	}
	active, err := c.accountActive(ctx, acct)
	if err != nil {
		return nil, err
	}
	nc := &NumberConfig{Number: n, Trunk: t, Active: active}
	page := store.Page{Size: store.MaxPageSize}
	for {
		urls, next, err := c.st.ListOriginationURLs(ctx, t.AccountSid, t.Sid, page)
		if err != nil {
			return nil, err
		}
		for _, o := range urls {
			if !o.Enabled {
				continue
			}
			// Any edge's name: ;edge= naming another edge is what hands
			// calls over (edges.go), not a URI to skip.
			u, err := domain.ParseSipURL(o.SipURL, nil)
			if err != nil {
				continue // the store validated it on write; a rule change since is not a call failure
			}
			d := destOfSipURL(u)
			d.sid, d.edge, d.tenantVia = o.Sid, u.Edge(), viaOriginationURI
			nc.Targets = append(nc.Targets, route.Target[dest]{Priority: o.Priority, Weight: o.Weight, Value: d})
		}
		if next == "" {
			break
		}
		page = store.Page{Size: store.MaxPageSize, Token: next}
	}
	return nc, nil
}

// parseCarrierSources reads --carrier-source CIDRs (a bare address is a
// /32 or /128).
func parseCarrierSources(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		v = strings.TrimSpace(v)
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("%w: carrier_source %q: not a CIDR or address", ErrConfig, v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// fromCarrier reports whether req comes from a carrier source
// (--carrier-source): such INVITEs are origination.
func (s *Server) fromCarrier(req *sip.Request) bool {
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return false
	}
	return s.inCarrierNets(src.Addr())
}

// admitOrigination runs the checks of REQUIREMENTS §3.1 on a carrier's
// INVITE: the DID must be on a trunk (else 404).
func (s *Server) admitOrigination(ctx context.Context, req *sip.Request, log zerolog.Logger) (*plan, *refusal, []sip.Header) {
	if ref, hdr := unsupported(req); ref != nil {
		return nil, ref, hdr
	}
	mf, err := sipmsg.CheckMaxForwards(req)
	if err != nil {
		return nil, &refusal{483, "Too Many Hops"}, nil
	}
	dialed := req.Recipient.User
	if !sipmsg.IsE164(dialed) {
		return nil, &refusal{404, "Not Found"}, nil
	}
	nc, ok, err := s.cache.Number(ctx, dialed)
	if err != nil {
		log.Error().Err(err).Msg("number lookup failed")
		return nil, &refusal{500, "Server Internal Error"}, nil
	}
	if !ok {
		return nil, &refusal{404, "Not Found"}, nil
	}
	if !nc.Active {
		return &plan{trunk: nc.Trunk}, &refusal{403, "Account suspended"}, nil
	}
	from := ""
	if f := req.From(); f != nil {
		from = f.Address.User
	}
	return &plan{dir: store.DirectionOriginating, trunk: nc.Trunk, from: from, to: dialed,
		phoneSid: nc.Number.Sid, diversion: dialed, maxFwd: mf, targets: nc.Targets}, nil, nil
}

// outboundInvite builds the B-leg INVITE toward d (no body): Request-URI
// user from the URI or the dialed number, transport from the URI (TLS
// always for a Secure trunk's customer), Diversion and X- headers on
// origination. It returns the leg's dialog UA too: its Contact, Via and
// the From host name xtrunk by its address toward peer (d's address).
func (s *Server) outboundInvite(c *call, d dest, peer netip.Addr) (*sip.Request, *sipgo.DialogUA) {
	transport := d.transport
	if c.p.trunk.Secure && !c.p.customerIsA() {
		transport = "TLS" // a Secure trunk's origination is TLS whatever the URI says
	}
	port := d.port
	if port == 0 && transport == "TLS" {
		port = 5061
	}
	user := d.user
	if user == "" {
		user = c.p.to
	}
	ruri := sip.Uri{Scheme: "sip", User: user, Host: d.host, Port: port, UriParams: sip.NewParams()}
	if transport != "UDP" {
		ruri.UriParams.Add("transport", strings.ToLower(transport))
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	req.SetTransport(transport)
	ua := s.legUA(transport, peer)
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.p.from, Host: ua.ContactHDR.Address.Host}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: c.p.to, Host: d.host, Port: port}})
	if d.tenantVia != "" {
		req.SetDialCheck(s.tenantDialCheck(c.p.trunk.Sid, d.tenantVia))
	}
	cid := sip.CallIDHeader(newLegID()) // the edge's own, unguessable: the B-leg's in-dialog key
	req.AppendHeader(&cid)
	mf := sip.MaxForwardsHeader(c.p.maxFwd)
	req.AppendHeader(&mf)
	if c.p.diversion != "" {
		req.AppendHeader(sip.NewHeader("Diversion", "<sip:"+c.p.diversion+"@"+s.cfg.Domain+">;reason=unconditional"))
	}
	for _, h := range d.headers {
		req.AppendHeader(sip.NewHeader(h[0], h[1]))
	}
	for _, h := range c.st.inviteHeaders() { // RFC 4028
		req.AppendHeader(h)
	}
	if name := c.callerName(); name != "" {
		withCallerName(req, &from, ua, name)
	}
	return req, ua
}

// withCallerName puts the caller's CNAM name (sanitised, cnam_name.go) in
// the display name of the B-leg INVITE's From, Contact and
// P-Asserted-Identity (REQUIREMENTS §3.9). The Contact is the leg UA's,
// copied: the UA is shared by every call toward the same peer.
func withCallerName(req *sip.Request, from *sip.FromHeader, ua *sipgo.DialogUA, name string) {
	from.DisplayName = name
	ct := ua.ContactHDR.Clone()
	ct.DisplayName = name
	req.AppendHeader(ct)
	pai := sip.Uri{Scheme: "sip", User: from.Address.User, Host: from.Address.Host}
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", `"`+name+`" <`+pai.String()+`>`))
}
