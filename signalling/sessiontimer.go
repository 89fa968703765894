package signalling

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028). The edge is a B2BUA: each leg has its own
// session timer, negotiated with the edge as UAS on the A-leg (the
// inbound INVITE) and as UAC on the B-leg. On each leg either the edge
// refreshes (re-INVITE with the SDP that leg already has, or UPDATE
// without a body when the peer allows it) at half the interval, or it
// waits for the peer's refresh; a leg whose session ends unrefreshed
// (Session-Expires − min(32 s, Session-Expires/3), §10), or whose refresh
// fails with a timeout, 408 or 481, ends the whole call with BYE on both
// legs.

const (
	// DefaultSessionExpires is the interval the edge asks for when a leg's
	// peer asks for none (`--session-expires`): RFC 4028's recommended
	// 30 minutes.
	DefaultSessionExpires = 1800 * time.Second
	// DefaultMinSE is the smallest interval the edge accepts
	// (`--session-min-se`); RFC 4028's floor is 90 s.
	DefaultMinSE = 90 * time.Second

	refresherUAC = "uac"
	refresherUAS = "uas"
	optionTimer  = "timer"

	// maxRefreshWait bounds one refresh transaction (Timer F/B).
	maxRefreshWait = 32 * time.Second
	// maxDelta is the longest interval a header can carry (32-bit
	// delta-seconds, as parseDelta reads them).
	maxDelta = math.MaxUint32 * time.Second
	// refreshRetry is the pause before a refresh answered with a status
	// that does not end the session (491, 5xx…) is tried again.
	refreshRetry = 2 * time.Second
)

// Why a session timer ended a call (the CDR's hangup cause).
const (
	reasonSessionExpired HangupReason = "Session timer expired"
	reasonRefreshFailed  HangupReason = "Session refresh failed"
)

// sessionExpires is a Session-Expires header: the interval in seconds and
// who refreshes ("" when the header says nothing).
type sessionExpires struct {
	delta     uint32
	refresher string
}

func (se sessionExpires) String() string {
	if se.refresher == "" {
		return strconv.FormatUint(uint64(se.delta), 10)
	}
	return strconv.FormatUint(uint64(se.delta), 10) + ";refresher=" + se.refresher
}

// parseDelta reads delta-seconds (RFC 3261 §25.1: 1*DIGIT); zero is no
// session and refused, as are values past 2^32−1.
func parseDelta(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %q is not delta-seconds", errTimerHeader, s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: %q is out of range", errTimerHeader, s)
	}
	return uint32(n), nil
}

// parseSessionExpires reads `delta-seconds *(SEMI se-params)`; a
// refresher other than uac or uas is an error, other parameters are
// ignored (generic-param).
func parseSessionExpires(v string) (sessionExpires, error) {
	parts := strings.Split(v, ";")
	d, err := parseDelta(parts[0])
	if err != nil {
		return sessionExpires{}, err
	}
	se := sessionExpires{delta: d}
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "refresher") {
			continue
		}
		switch r := strings.ToLower(strings.TrimSpace(val)); r {
		case refresherUAC, refresherUAS:
			if se.refresher != "" && se.refresher != r {
				return sessionExpires{}, fmt.Errorf("%w: two refreshers", errTimerHeader)
			}
			se.refresher = r
		default:
			return sessionExpires{}, fmt.Errorf("%w: refresher %q", errTimerHeader, val)
		}
	}
	return se, nil
}

// parseMinSE reads `delta-seconds *(SEMI generic-param)`.
func parseMinSE(v string) (uint32, error) {
	d, _, _ := strings.Cut(v, ";")
	return parseDelta(d)
}

// headerValues are the values of every header named by one of names
// (full and compact forms: sipgo keeps a compact name as it came).
func headerValues(m sip.Message, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, h := range m.GetHeaders(n) {
			out = append(out, h.Value())
		}
	}
	return out
}

// listHas reports whether a comma-separated header (Supported, Require,
// Allow) of m lists token.
func listHas(m sip.Message, token string, names ...string) bool {
	for _, v := range headerValues(m, names...) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// timerOffer is what a request or response says about session timers.
type timerOffer struct {
	se        *sessionExpires // nil: no Session-Expires
	minSE     uint32          // 0: no Min-SE
	supported bool            // Supported: timer
	require   bool            // Require: timer
	update    bool            // Allow: UPDATE
}

// readTimerOffer reads m's Session-Expires (or x), Min-SE, Supported (or
// k), Require and Allow; a malformed Session-Expires or Min-SE is an
// error (400 to a request).
func readTimerOffer(m sip.Message) (timerOffer, error) {
	o := timerOffer{
		supported: listHas(m, optionTimer, "Supported", "k"),
		require:   listHas(m, optionTimer, "Require"),
		update:    listHas(m, string(sip.UPDATE), "Allow"),
	}
	if v := headerValues(m, "Session-Expires", "x"); len(v) > 0 {
		se, err := parseSessionExpires(v[0])
		if err != nil {
			return o, err
		}
		o.se = &se
	}
	if v := headerValues(m, "Min-SE"); len(v) > 0 {
		n, err := parseMinSE(v[0])
		if err != nil {
			return o, err
		}
		o.minSE = n
	}
	return o, nil
}

// legTimer is one leg's negotiated session timer.
type legTimer struct {
	interval      time.Duration // 0: no session timer on this leg
	edgeRefreshes bool
	update        bool // the peer allows UPDATE: refresh with it
	refreshAt     time.Time
	expireAt      time.Time
}

// expiryMargin is how long before the interval ends a session that was
// not refreshed is ended (RFC 4028 §10: min(32 s, interval/3)).
func expiryMargin(interval time.Duration) time.Duration {
	return min(32*time.Second, interval/3)
}

// restart starts the leg's interval again from now (a refresh).
func (l *legTimer) restart(now time.Time) {
	if l.interval <= 0 {
		l.refreshAt, l.expireAt = time.Time{}, time.Time{}
		return
	}
	l.expireAt = now.Add(l.interval - expiryMargin(l.interval))
	l.refreshAt = time.Time{}
	if l.edgeRefreshes {
		l.refreshAt = now.Add(l.interval / 2)
	}
}

// refresher is the Session-Expires refresher parameter for this leg in a
// message of a transaction the edge sends (asUAC) or answers.
func (l legTimer) refresher(asUAC bool) string {
	if l.edgeRefreshes == asUAC {
		return refresherUAC
	}
	return refresherUAS
}

func seconds(d time.Duration) uint32 { return uint32((d + time.Second - 1) / time.Second) }

// uasTimer negotiates a leg's timer from a request the edge answers (the
// A-leg's INVITE, or a refresh from either leg), RFC 4028 §9. minSE is
// the edge's minimum, dflt the interval it wants when the request asks
// none (0: none), cur the leg's timer so far. tooSmall is a Session-Expires
// below minSE: 422.
func uasTimer(o timerOffer, minSE, dflt time.Duration, cur legTimer) (l legTimer, require, tooSmall bool) {
	l = legTimer{update: cur.update}
	refresher := ""
	if o.se != nil {
		l.interval = time.Duration(o.se.delta) * time.Second
		if l.interval < minSE {
			return cur, false, true
		}
		refresher = o.se.refresher
		if refresher == "" {
			// The UAS chooses: the requester when it does timers, else us.
			refresher = refresherUAS
			if o.supported {
				refresher = refresherUAC
			}
		}
	} else {
		l.interval = dflt
		if cur.interval > 0 {
			l.interval = cur.interval
		}
		if l.interval <= 0 {
			return legTimer{update: cur.update}, false, false
		}
		l.interval = max(l.interval, minSE, time.Duration(o.minSE)*time.Second)
		refresher = refresherUAS
		if o.supported && cur.interval > 0 && !cur.edgeRefreshes {
			refresher = refresherUAC // the peer refreshed so far: keep it so
		}
	}
	l.edgeRefreshes = refresher == refresherUAS
	return l, refresher == refresherUAC || o.supported, false
}

// uacTimer reads a leg's timer from the 2xx to a request the edge sent
// (RFC 4028 §7.2): no Session-Expires, no timer; refresher uas is the
// peer, anything else the edge. One exception: a leg the edge refreshes
// alone because its peer does not do timers (§9: the edge answered its
// INVITE with refresher=uas) stays so when such a peer's 2xx to a refresh
// says nothing of timers.
func uacTimer(o timerOffer, cur legTimer) legTimer {
	l := legTimer{update: cur.update}
	if o.se == nil {
		if cur.interval > 0 && cur.edgeRefreshes && !o.supported && !o.require {
			l.interval, l.edgeRefreshes = cur.interval, true
		}
		return l
	}
	l.interval = time.Duration(o.se.delta) * time.Second
	l.edgeRefreshes = o.se.refresher != refresherUAS
	return l
}

// sessionTimers is a call's session timer state, both legs.
type sessionTimers struct {
	minSE time.Duration // the edge's minimum (--session-min-se)
	dflt  time.Duration // what the edge asks for (--session-expires)
	allow string        // the edge's Allow (UPDATE among them): peers may refresh with UPDATE

	mu       sync.Mutex
	a, b     legTimer
	aOffer   timerOffer    // the A-leg INVITE's, until the answer
	bAsk     time.Duration // Session-Expires asked of the B-leg (0: none)
	bMinSE   time.Duration // Min-SE toward the B-leg (raised by a 422)
	bRetried bool          // the B-leg's INVITE was retried after a 422
	// The watcher (sessionrefresh.go): one timer for the earliest thing
	// to do on either leg, re-armed whenever a leg's times change. fire
	// is what it runs: set from the answer until the call ends (nil:
	// nothing is armed).
	timer *time.Timer
	fire  func()
}

func (s *Server) newSessionTimers() *sessionTimers {
	return &sessionTimers{minSE: s.cfg.SessionMinSE, dflt: s.cfg.SessionExpires, bMinSE: s.cfg.SessionMinSE, allow: s.allow}
}

func (st *sessionTimers) leg(toA bool) *legTimer {
	if toA {
		return &st.a
	}
	return &st.b
}

// set replaces a leg's timer, restarting its interval, and re-arms the
// watcher.
func (st *sessionTimers) set(toA bool, l legTimer) {
	l.restart(time.Now())
	st.mu.Lock()
	*st.leg(toA) = l
	st.armLocked()
	st.mu.Unlock()
}

// timerHeaders are Session-Expires (with refresher) and Require: timer as
// negotiated, for a response or request on a leg.
func timerHeaders(l legTimer, asUAC, require bool) []sip.Header {
	hdrs := []sip.Header{sip.NewHeader("Supported", optionTimer)}
	if l.interval <= 0 {
		return hdrs
	}
	se := sessionExpires{delta: seconds(l.interval), refresher: l.refresher(asUAC)}
	hdrs = append(hdrs, sip.NewHeader("Session-Expires", se.String()))
	if require {
		hdrs = append(hdrs, sip.NewHeader("Require", optionTimer))
	}
	return hdrs
}

// readInvite takes the A-leg INVITE's offer and decides the interval
// asked of the B-leg. A Session-Expires below the minimum is refused
// with 422 and Min-SE, a malformed one with 400.
func (st *sessionTimers) readInvite(req *sip.Request) (*refusal, []sip.Header) {
	o, err := readTimerOffer(req)
	if err != nil {
		return &refusal{400, "Bad Session-Expires or Min-SE"}, nil
	}
	if o.se != nil && time.Duration(o.se.delta)*time.Second < st.minSE {
		return &refusal{422, "Session Interval Too Small"}, []sip.Header{st.minSEHeader(st.minSE)}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.aOffer = o
	st.a.update = o.update
	st.bAsk = st.dflt
	if o.se != nil {
		st.bAsk = time.Duration(o.se.delta) * time.Second // the caller's interval end to end
	}
	if st.bAsk > 0 {
		st.bAsk = max(st.bAsk, st.minSE, time.Duration(o.minSE)*time.Second)
	}
	return nil, nil
}

func (st *sessionTimers) minSEHeader(d time.Duration) sip.Header {
	return sip.NewHeader("Min-SE", strconv.FormatUint(uint64(seconds(d)), 10))
}

// inviteHeaders are the B-leg INVITE's: Supported: timer, and the
// interval asked with Min-SE (the refresher is left to the callee, §7.1).
func (st *sessionTimers) inviteHeaders() []sip.Header {
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	hdrs := []sip.Header{sip.NewHeader("Supported", optionTimer)}
	if st.allow != "" {
		hdrs = append(hdrs, sip.NewHeader("Allow", st.allow))
	}
	if st.bAsk > 0 {
		hdrs = append(hdrs, sip.NewHeader("Session-Expires", strconv.FormatUint(uint64(seconds(st.bAsk)), 10)))
	}
	return append(hdrs, st.minSEHeader(st.bMinSE))
}

// tooSmall takes a B-leg 422 (§7.3): true (once per call) when the INVITE
// should go again with the callee's Min-SE.
func (st *sessionTimers) tooSmall(res *sip.Response) bool {
	if st == nil {
		return false
	}
	o, err := readTimerOffer(res)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil || o.minSE == 0 || st.bRetried {
		return false
	}
	st.bRetried = true
	m := time.Duration(o.minSE) * time.Second
	st.bMinSE = max(st.bMinSE, m)
	st.bAsk = max(st.bAsk, m)
	return true
}

// answered sets both legs' timers at the answer: the B-leg's from its
// 2xx, the A-leg's as the edge answers its INVITE; it returns the headers
// for the A-leg's 2xx.
func (st *sessionTimers) answered(bRes *sip.Response) []sip.Header {
	bo, err := readTimerOffer(bRes)
	if err != nil {
		bo = timerOffer{} // a callee's malformed header: no timer on its leg
	}
	st.mu.Lock()
	ao, cur := st.aOffer, st.a
	b := uacTimer(bo, legTimer{update: bo.update})
	st.mu.Unlock()
	a, require, _ := uasTimer(ao, st.minSE, st.dflt, cur) // a too small interval was refused at admission
	st.set(false, b)
	st.set(true, a)
	hdrs := timerHeaders(a, false, require)
	if st.allow != "" {
		hdrs = append(hdrs, sip.NewHeader("Allow", st.allow))
	}
	return hdrs
}

// sessionTimerEnded counts a call a session timer ended.
func (m *metrics) sessionTimerEnded(trunk string) {
	m.sessionExpired.WithLabelValues(trunk).Inc()
}

// validateSessionTimers checks session_min_se and session_expires: whole
// seconds (the headers carry seconds), at least 1 s of minimum, and an
// interval the edge asks for no shorter than the minimum it accepts.
func (c Config) validateSessionTimers() error {
	if c.SessionMinSE < time.Second || c.SessionMinSE%time.Second != 0 {
		return fmt.Errorf("%w: session_min_se must be whole seconds, at least 1s", ErrConfig)
	}
	if c.SessionExpires < 0 || c.SessionExpires%time.Second != 0 {
		return fmt.Errorf("%w: session_expires must be whole seconds (0: off)", ErrConfig)
	}
	if c.SessionMinSE > maxDelta || c.SessionExpires > maxDelta {
		return fmt.Errorf("%w: session_min_se and session_expires must fit delta-seconds (at most %d s)", ErrConfig, uint64(math.MaxUint32))
	}
	if c.SessionExpires > 0 && c.SessionExpires < c.SessionMinSE {
		return fmt.Errorf("%w: session_expires is below session_min_se", ErrConfig)
	}
	return nil
}
