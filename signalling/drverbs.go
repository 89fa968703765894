package signalling

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/wav"
	"github.com/xtrunk/xtrunk/signalling/route"
	"github.com/xtrunk/xtrunk/signalling/sipmsg"
)

// The TwiML verbs disaster recovery runs (REQUIREMENTS §3.8). Anything
// else (<Say>, <Gather>, <Enqueue>…) is skipped and logged, as the
// document goes on.

// maxDRRedirects bounds the <Redirect>s (and <Dial action>s) one call
// follows: a document redirecting to itself must not hold the call.
const maxDRRedirects = 10

// maxPlayBytes caps a <Play> file (about 17 minutes of G.711).
const maxPlayBytes = 8 << 20

// playChunk is the samples one "play media" carries: 6 s, so that the
// command fits one NG datagram (ng.MaxDatagram, 64 KiB). A longer file is
// played as consecutive pieces.
const playChunk = 6 * 8000

// run executes verbs, the document at base, until one ends the call or
// connects it, or the document ends.
func (r *drRun) run(verbs []twimlVerb, base *url.URL) Ending {
	c := r.c
	for i := 0; i < len(verbs); i++ {
		if c.ctx.Err() != nil {
			return ended
		}
		v := verbs[i]
		log := c.log.With().Str("verb", v.Name).Logger()
		switch v.Name {
		case "Reject":
			if c.isAnswered() {
				return r.hangup(reasonDRReject)
			}
			if v.attr("reason") == "busy" {
				return endedBy(hangupSystem, 486, reasonBusy)
			}
			return endedBy(hangupSystem, 603, reasonDecline)
		case "Hangup":
			return r.hangup(reasonDRHangup)
		case "Pause":
			r.pause(v)
		case "Play":
			if err := r.play(v, base); err != nil {
				log.Warn().Err(err).Msg("disaster recovery: <Play> skipped")
			}
		case "Dial":
			st, rs, next := r.dial(v, base)
			if st == 200 {
				return endedBy(hangupCallee, 200, reasonOK)
			}
			if c.ctx.Err() != nil {
				return ended
			}
			if next != nil {
				return r.follow(next)
			}
			r.status, r.reason = st, rs
		case "Redirect":
			method := v.attr("method")
			if method == "" {
				method = http.MethodPost
			}
			return r.follow(&drNext{url: resolve(base, v.Text), method: method})
		default:
			log.Warn().Msg("disaster recovery: unsupported TwiML verb skipped")
		}
	}
	if c.isAnswered() {
		return r.hangup(reasonDRCompleted)
	}
	return endedBy(hangupSystem, sipStatus(r.status), HangupReason(r.reason))
}

// drNext is a document to fetch next: a <Redirect> or a <Dial action>.
type drNext struct {
	url, method string
	extra       url.Values
}

// follow fetches and runs the next document, within maxDRRedirects.
func (r *drRun) follow(n *drNext) Ending {
	if r.hops++; r.hops > maxDRRedirects {
		r.c.log.Warn().Int("hops", r.hops).Msg("disaster recovery: too many redirects")
		return r.fail(500, reasonDRTooManyHops)
	}
	verbs, base, err := r.fetch(n.url, n.method, n.extra)
	if err != nil {
		return r.fetchFailed(err)
	}
	return r.run(verbs, base)
}

// hangup ends an answered call with BYE (the document is done with it)
// or an unanswered one with 603.
func (r *drRun) hangup(reason HangupReason) Ending {
	if r.c.isAnswered() {
		r.c.closeWith(endedBy(hangupSystem, 200, reason))
		return ended
	}
	return endedBy(hangupSystem, 603, reasonDecline)
}

// pause waits <Pause length> seconds (1 by default, at most 600).
func (r *drRun) pause(v twimlVerb) {
	n := 1
	if s := v.attr("length"); s != "" {
		if k, err := strconv.Atoi(s); err == nil && k >= 0 {
			n = min(k, 600)
		}
	}
	r.sleep(time.Duration(n) * time.Second)
}

func (r *drRun) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.c.ctx.Done():
	case <-t.C:
	}
}

// play fetches <Play>'s WAV, answers the call if needed and has the relay
// play it to the carrier (NG "play media" with the file as a blob, in
// pieces of playChunk samples), waiting while it plays: loop times (0:
// until the caller hangs up).
func (r *drRun) play(v twimlVerb, base *url.URL) error {
	c := r.c
	loops := int64(1)
	if s := v.attr("loop"); s != "" {
		k, err := strconv.ParseInt(s, 10, 64)
		if err != nil || k < 0 {
			return fmt.Errorf("%w: loop=%q", ErrBadTwiML, s)
		}
		loops = min(k, 1000)
	}
	raw, err := r.fetchMedia(resolve(base, v.Text))
	if err != nil {
		return err
	}
	m, err := wav.Parse(raw)
	if err != nil {
		return err
	}
	if err := c.answerForMedia(int(m.PT)); err != nil {
		return err
	}
	for n := int64(0); loops == 0 || n < loops; n++ {
		for off := 0; off < len(m.Samples); off += playChunk {
			piece := wav.Media{PT: m.PT, Samples: m.Samples[off:min(off+playChunk, len(m.Samples))]}
			sent := time.Now()
			if _, err := c.s.ng.Do(c.ctx, ng.PlayMedia{CallID: c.id, Party: ng.PartySelect{FromTag: c.fromTag},
				Blob: string(wav.Encode(piece))}.Dict()); err != nil {
				return fmt.Errorf("relay play media: %w", err)
			}
			// the piece's frames, and a little more so that the next
			// piece does not cut the last one short
			frames := (len(piece.Samples) + 159) / 160
			r.sleep(time.Until(sent.Add(time.Duration(frames)*20*time.Millisecond + 10*time.Millisecond)))
			if c.ctx.Err() != nil {
				return nil
			}
		}
	}
	return nil
}

// fetchMedia GETs a <Play> URL (unsigned, as Twilio fetches media),
// capped at maxPlayBytes.
func (r *drRun) fetchMedia(u string) ([]byte, error) {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("%w: <Play> %q is not an http(s) URL", ErrDRRequest, u)
	}
	req, err := http.NewRequestWithContext(r.c.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDRRequest, err)
	}
	res, err := r.c.s.dr.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDRRequest, err)
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, fmt.Errorf("%w: <Play> HTTP %d", ErrDRRequest, res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxPlayBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDRRequest, err)
	}
	if len(b) > maxPlayBytes {
		return nil, fmt.Errorf("%w: <Play> file larger than %d bytes", ErrDRRequest, maxPlayBytes)
	}
	return b, nil
}

// answerForMedia answers the carrier's leg so that media can be played to
// it: the relay gets an answer from a placeholder party (on hold, port
// 9, the codec of the file) and its SDP for the carrier goes in the 200.
func (c *call) answerForMedia(pt int) error {
	c.mu.Lock()
	answered := c.answered
	c.mu.Unlock()
	if answered {
		return nil
	}
	offered := sdpAudioPayloadTypes(c.a.InviteRequest.Body())
	if len(offered) > 0 && !containsInt(offered, pt) {
		if other := 8 - pt; containsInt(offered, other) {
			pt = other // the carrier takes only the other law: played as is, it is noise, but the call goes on
		}
	}
	name := "PCMU"
	if pt == 8 {
		name = "PCMA"
	}
	hold := "v=0\r\no=xtrunk-dr 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
		"m=audio 9 RTP/AVP " + strconv.Itoa(pt) + "\r\na=rtpmap:" + strconv.Itoa(pt) + " " + name + "/8000\r\na=sendrecv\r\n"
	toTag := sip.GenerateTagN(16)
	sdp, err := c.s.mediaAnswer(c.ctx, c, toTag, netip.Addr{}, []byte(hold))
	if err != nil {
		return fmt.Errorf("relay answer for playback: %w", err)
	}
	c.mu.Lock()
	c.answered, c.answer, c.bTag, c.sdpToA = true, time.Now(), toTag, sdp
	c.mu.Unlock()
	if err := c.a.WriteResponse(sip.NewSDPResponseFromRequest(c.a.InviteRequest, sdp)); err != nil {
		c.closeWith(endedBy(hangupCaller, 487, reasonTerminated))
		return fmt.Errorf("200 to the carrier: %w", err)
	}
	c.log.Info().Msg("disaster recovery answered the call")
	c.s.metrics.callAnswered(c.p.dir, c.p.trunk.Sid, time.Since(c.start))
	return nil
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// drDialLeg shapes a <Dial>'s B-leg INVITE (drShape): the caller ID and
// the called user, and how long it may ring.
type drDialLeg struct {
	from, to string
	ring     time.Duration
	bridge   bool // the A-leg is answered: re-INVITE it on the leg's 200
}

// drShape applies a <Dial>'s caller ID and called number to the B-leg
// INVITE that dial built (a no-op outside disaster recovery).
func (c *call) drShape(req *sip.Request) {
	c.mu.Lock()
	leg := c.drLeg
	c.mu.Unlock()
	if leg == nil {
		return
	}
	if f := req.From(); f != nil && leg.from != "" {
		f.Address.User = leg.from
	}
	if t := req.To(); t != nil && leg.to != "" {
		t.Address.User = leg.to
	}
}

// callerID is a <Dial>'s callerId when the new leg may present it, else
// "" (the call's own caller ID stays). The document is the tenant's, and
// the value goes into the From toward a carrier or PBX: it must be an
// E.164 number (anything else could break the header or, with CR LF, add
// new ones) that the tenant may present, as termination requires
// (REQUIREMENTS §2.4): the caller's own number (forwarding the call), a
// DID of the trunk's account or one of its verified caller IDs. Any other
// would let a tenant put someone else's number on the PSTN.
func (r *drRun) callerID(v twimlVerb) string {
	c := r.c
	id := strings.TrimSpace(v.attr("callerId"))
	switch {
	case id == "":
		return ""
	case !sipmsg.IsE164(id):
		c.log.Warn().Str("caller_id", id).Msg("disaster recovery: <Dial callerId> is not E.164, ignored")
		return ""
	case id == c.p.from:
		return id
	}
	ok, err := callerOfAccount(c.ctx, c.s.st, c.p.trunk.AccountSid, id)
	if err != nil {
		c.log.Error().Err(err).Str("caller_id", id).Msg("disaster recovery: <Dial callerId> lookup failed, ignored")
		return ""
	}
	if !ok {
		c.log.Warn().Str("caller_id", id).Msg("disaster recovery: <Dial callerId> is not the caller's number, a DID or a verified caller ID of the account, ignored")
		return ""
	}
	return id
}

// numberAllowed reports whether a <Dial><Number> may be called: any
// E.164 number for a full account; only its verified caller IDs for a
// trial account, as termination allows (REQUIREMENTS §1).
func (r *drRun) numberAllowed(number string) bool {
	c := r.c
	if !r.trial {
		return true
	}
	ok, err := c.s.st.IsVerifiedCallerID(c.ctx, c.p.trunk.AccountSid, number)
	if err != nil {
		c.log.Error().Err(err).Str("number", number).Msg("disaster recovery: verified-number lookup failed, <Number> skipped")
		return false
	}
	if !ok {
		c.log.Warn().Str("number", number).Msg("disaster recovery: trial account, <Number> is not a verified caller ID, skipped")
	}
	return ok
}

// drRing is how long a <Dial>'s leg may ring (0: as long as it likes).
func (c *call) drRing() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drLeg == nil {
		return 0
	}
	return c.drLeg.ring
}

// dial runs <Dial>: each <Number> (through the carriers, as termination
// routes it) or <Sip> (that URI, directly) in turn until one answers.
// It returns 200 when connected, else the last failure and, with an
// action, the document to fetch next.
func (r *drRun) dial(v twimlVerb, base *url.URL) (int, string, *drNext) {
	c := r.c
	bridge := c.isAnswered() // after <Play>: the new leg is bridged with a re-INVITE (drbridge.go)
	if bridge {
		r.stopMedia()
	}
	ring := 30 * time.Second
	if k, err := strconv.Atoi(v.attr("timeout")); err == nil && k > 0 {
		ring = time.Duration(min(k, 600)) * time.Second
	}
	nouns := v.Children
	if len(nouns) == 0 && v.Text != "" {
		nouns = []twimlVerb{{Name: "Number", Text: v.Text}}
	}
	status, reason, rang := 404, "Not Found", false
	for _, n := range nouns {
		var targets []route.Target[dest]
		to := ""
		switch n.Name {
		case "Number":
			to = strings.TrimSpace(n.Text)
			if !sipmsg.IsE164(to) {
				c.log.Warn().Str("number", to).Msg("disaster recovery: <Number> is not E.164")
				continue
			}
			if !r.numberAllowed(to) {
				continue
			}
			for _, t := range c.s.order(c.s.settings().carriers) {
				t.Value.user = to
				targets = append(targets, t)
			}
		case "Sip":
			d, err := r.sipDest(n.Text)
			if err != nil {
				c.log.Warn().Err(err).Msg("disaster recovery: <Sip> refused")
				continue
			}
			to = d.user
			targets = []route.Target[dest]{{Value: d}}
		default:
			c.log.Warn().Str("noun", n.Name).Msg("disaster recovery: unsupported <Dial> noun skipped")
			continue
		}
		offer, err := r.reoffer(targets, n.Name == "Number", bridge)
		if err != nil {
			c.log.Error().Err(err).Msg("disaster recovery: relay offer failed")
			status, reason = 500, "Server Internal Error"
			continue
		}
		c.mu.Lock()
		c.drLeg = &drDialLeg{from: r.callerID(v), to: to, ring: ring, bridge: bridge}
		c.mu.Unlock()
		status, reason = c.dialTargets(offer, targets)
		c.mu.Lock()
		c.drLeg, c.redir.res = nil, nil
		c.mu.Unlock()
		rang = true
		if status == 200 || c.ctx.Err() != nil {
			return status, reason, nil
		}
	}
	return r.dialDone(v, base, status, reason, rang)
}

// dialDone is a <Dial> that did not connect: its status, and the action
// document when there is one (with DialCallStatus).
func (r *drRun) dialDone(v twimlVerb, base *url.URL, status int, reason string, rang bool) (int, string, *drNext) {
	action := v.attr("action")
	if action == "" {
		return status, reason, nil
	}
	dcs := "failed"
	switch {
	case status == 486 || status == 600:
		dcs = "busy"
	case rang && (status == 408 || status == 480 || status == 487):
		dcs = "no-answer"
	}
	method := v.attr("method")
	if method == "" {
		method = http.MethodPost
	}
	return status, reason, &drNext{url: resolve(base, action), method: method,
		extra: url.Values{"DialCallStatus": {dcs}, "DialCallDuration": {"0"}, "DialSipResponseCode": {strconv.Itoa(status)}}}
}

// sipDest reads a <Sip> URI into a target: any SIP URI but xtrunk's own
// domains and addresses, which would loop the call back, and carrier
// gateways, which would bypass termination's checks (checkTenantTarget).
func (r *drRun) sipDest(text string) (dest, error) {
	var u sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(text), &u); err != nil {
		return dest{}, fmt.Errorf("%w: %q: %w", ErrBadTwiML, text, err)
	}
	if u.Host == "" {
		return dest{}, fmt.Errorf("%w: %q has no host", ErrBadTwiML, text)
	}
	if err := r.c.s.checkTenantTarget(r.c.ctx, u.Host); err != nil {
		r.c.s.carrierTargetRefused(r.c.p.trunk.Sid, viaDRSip, err)
		return dest{}, err
	}
	d := destOfURI(u)
	d.tenantVia = viaDRSip
	return d, nil
}

// sdpAudioPayloadTypes are the payload types of an SDP's first audio
// m= line (none when there is none).
func sdpAudioPayloadTypes(body []byte) []int {
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(strings.TrimSpace(line))
		if len(f) < 4 || f[0] != "m=audio" {
			continue
		}
		var out []int
		for _, p := range f[3:] {
			if k, err := strconv.Atoi(p); err == nil {
				out = append(out, k)
			}
		}
		return out
	}
	return nil
}

// reoffer makes the relay's offer for a <Dial> leg on the interface
// facing its targets: the carrier side for a <Number>, the customer side
// (or the one --relay-interface names for the target's address) for a
// <Sip>. The unanswered session of the origination attempts is deleted
// and offered again when the side differs, since the relay fixes a
// call's interfaces at its first offer. force makes a new session
// whatever the side: the A-leg was answered against <Play>'s placeholder.
func (r *drRun) reoffer(targets []route.Target[dest], carrier, force bool) ([]byte, error) {
	c := r.c
	ifs := c.s.interfaces(c.ctx, c, targets)
	if carrier && len(c.s.relayIfaces) == 0 {
		ifs[1] = c.s.cfg.RelayCarrierIface
	}
	if r.offered && ifs[1] == r.bIface && !force {
		return r.offer, nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	c.s.mediaDelete(ctx, c)
	offer, err := c.s.offerAnswer(ctx, c, false, c.fromTag, "", c.aSrc, c.a.InviteRequest.Body(), c.p.customerIsA(), ifs)
	if err != nil {
		return nil, err
	}
	r.offer, r.bIface, r.offered = offer, ifs[1], true
	c.mu.Lock()
	c.sdpToB = offer
	c.mu.Unlock()
	return offer, nil
}
