package signalling

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/limit"
)

// metrics is the signalling's private Prometheus registry.
//
// Labels are bounded: direction ("termination", "origination"), trunk
// (the trunk's sid: as many as are provisioned), code (a SIP status),
// reason (a constant of the code, never text from a peer), method (the
// SIP methods, anything else "other"), command (NG commands). Never a
// source address or a number.
//
// CPS, ASR, ACD and NER are recording rules in
// deploy/prometheus/recording.rules.yml (per trunk and per edge); the
// Grafana dashboard and the alert rules use them. In plain PromQL:
//
//	CPS per trunk:  sum by (trunk) (rate(xtrunk_sip_call_attempts_total[1m]))
//	ASR per trunk:  sum by (trunk) (increase(xtrunk_sip_calls_answered_total[1h]))
//	              / sum by (trunk) (increase(xtrunk_sip_calls_answered_total[1h])
//	                                or increase(xtrunk_sip_calls_failed_total[1h]))
//	                (not over attempts: an attempt is counted at admission, its
//	                answer later, so a window can hold more answers than
//	                attempts; the rules file says more)
//	ACD per trunk:  sum by (trunk) (increase(xtrunk_sip_call_duration_seconds_sum[1h]))
//	              / sum by (trunk) (increase(xtrunk_sip_call_duration_seconds_count[1h]))
//	median setup:   histogram_quantile(0.5, sum by (le) (rate(xtrunk_sip_call_setup_seconds_bucket[5m])))
//	SIP codes:      sum by (trunk, code) (increase(xtrunk_sip_calls_failed_total[1h]))
//
// An attempt is a call that passed admission (a 407 challenge or a
// refusal is not one: those are in xtrunk_sip_refusals_total).
type metrics struct {
	reg *prometheus.Registry

	// xtrunk_sip_call_attempts_total{direction,trunk}: calls admitted.
	attempts *prometheus.CounterVec
	// xtrunk_sip_calls_answered_total{direction,trunk}: calls answered.
	answered *prometheus.CounterVec
	// xtrunk_sip_calls_failed_total{direction,trunk,code}: admitted calls
	// that ended unanswered, by the final status sent to the caller.
	failed *prometheus.CounterVec
	// xtrunk_sip_calls_active{direction,trunk}: calls in progress.
	active *prometheus.GaugeVec
	// xtrunk_sip_call_setup_seconds{direction,trunk}: from the INVITE's
	// admission to the 200 sent back (post-dial delay and ringing).
	setup *prometheus.HistogramVec
	// xtrunk_sip_call_duration_seconds{direction,trunk}: answered calls,
	// from the 200 to the end (ACD = sum / count).
	duration *prometheus.HistogramVec
	// xtrunk_sip_refusals_total{trunk,code,reason}: INVITEs answered
	// with an error before becoming a call (407 challenges included);
	// trunk is "unknown" until the trunk is known (unknown domain,
	// draining).
	refusals *prometheus.CounterVec
	// xtrunk_sip_failovers_total{direction,target}: B-leg targets that
	// failed (no answer, or a status that fails over) with another target
	// left to try; target is the gateway (host:port;transport).
	failovers *prometheus.CounterVec
	// Per carrier gateway (termination's B-leg targets, gateway =
	// host:port;transport): xtrunk_sip_carrier_up (the OPTIONS probe:
	// 1 up, 0 down), xtrunk_sip_carrier_attempts_total (INVITEs sent),
	// xtrunk_sip_carrier_answers_total (200s), and
	// xtrunk_sip_carrier_failures_total{gateway,class} (class 3xx, 4xx,
	// 5xx, 6xx or timeout: no final answer), and
	// xtrunk_sip_carrier_setup_seconds (INVITE sent to its 200).
	carrierUpG                                *prometheus.GaugeVec
	carrierAttempts, carrierAnswers, carrierF *prometheus.CounterVec
	carrierSetup                              *prometheus.HistogramVec
	// xtrunk_sip_cdr_write_failures_total: CDRs that could not be
	// written to the store (lost).
	cdrFailed  prometheus.Counter
	cdrDropped prometheus.Counter
	// Call quality at call end, per trunk and leg (customer, carrier: what
	// that party sent to the relay): xtrunk_sip_call_loss_ratio (lost over
	// expected), xtrunk_sip_call_jitter_seconds (RFC 3550 interarrival
	// jitter) and xtrunk_sip_call_mos (ITU-T G.107 E-model, mos.go).
	qLoss, qJitter, qMOS *prometheus.HistogramVec
	// xtrunk_sip_guard_ignored_total{reason}: requests (and TCP/TLS
	// connections) not answered by the abuse guard: scanner, flood,
	// banned, auth_failures, options_rate.
	ignoredC *prometheus.CounterVec
	// xtrunk_sip_guard_bans_total{reason}: bans made — of a source (flood,
	// auth_failures) or of its /24 or /64 after repeated bans in it
	// (prefix). Read from the guard at scrape time:
	// xtrunk_sip_guard_banned{kind="source"|"prefix"}: under a ban now;
	// xtrunk_sip_guard_sources: sources whose rates are tracked (at most
	// --guard-max-sources); xtrunk_sip_guard_evictions_total: entries
	// pushed out of the guard's full tables (least recently seen first).
	bans *prometheus.CounterVec
	// xtrunk_sip_requests_total{method}: requests received (before the
	// guard; retransmissions absorbed by sipgo are not counted).
	requests *prometheus.CounterVec
	// xtrunk_sip_relay_ng_errors_total{command,kind}: NG commands to the
	// relay that failed: timeout, refused (the relay said error), other.
	ngErrors *prometheus.CounterVec
	// xtrunk_sip_tls_handshake_failures_total: TLS connections that did
	// not complete a handshake (or found no handshake slot).
	tlsFail prometheus.Counter
	// xtrunk_sip_relay_up (a GaugeFunc): 1 if the relay answered an NG
	// ping within 5 s (watchRelay pings every 2 s).
	// xtrunk_sip_draining: 1 once a SIGTERM is draining the process.
	draining prometheus.Gauge
	// xtrunk_sip_transfers_total{trunk,result}: REFERs (call transfers,
	// refer.go) by result: refused (4xx/5xx to the REFER), completed
	// (transferee bridged to the target), failed (the target did not
	// answer; the original call stays up).
	transfers *prometheus.CounterVec
	// xtrunk_sip_tls_certificate_expiry_timestamp_seconds: when the
	// served certificate expires (only with a TLS listener).

	// xtrunk_sip_session_timer_expired_total{trunk}: answered calls
	// ended by a session timer (RFC 4028): a leg's session expired
	// unrefreshed, or the edge's refresh failed (timeout, 408, 481).
	sessionExpired *prometheus.CounterVec
}

// Call directions, the direction label.
const (
	dirTermination = "termination"
	dirOrigination = "origination"
)

func newMetrics(s *Server, certs *certLoader) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	dt := []string{"direction", "trunk"}
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_call_attempts_total", Help: "Calls admitted, by direction and trunk."}, dt)
	m.answered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_calls_answered_total", Help: "Calls answered, by direction and trunk."}, dt)
	m.failed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_calls_failed_total", Help: "Admitted calls that ended unanswered, by final SIP status."}, []string{"direction", "trunk", "code"})
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xtrunk_sip_calls_active", Help: "Calls in progress, by direction and trunk."}, dt)
	m.setup = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_sip_call_setup_seconds", Help: "From admission of the INVITE to the 200 sent back.",
		Buckets: []float64{.1, .25, .5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 120}}, dt)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_sip_call_duration_seconds", Help: "Answered calls' duration, from the 200 to the end.",
		Buckets: []float64{5, 15, 30, 60, 120, 180, 300, 600, 1200, 1800, 3600, 7200}}, dt)
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_refusals_total", Help: "INVITEs refused before becoming a call, by trunk, status and reason."}, []string{"trunk", "code", "reason"})
	m.newNOC()
	m.ignoredC = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_guard_ignored_total", Help: "Requests and connections left unanswered by the abuse guard, by reason."}, []string{"reason"})
	m.bans = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_guard_bans_total", Help: "Sources banned by the abuse guard, by reason."}, []string{"reason"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_requests_total", Help: "SIP requests received, by method."}, []string{"method"})
	m.ngErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_relay_ng_errors_total", Help: "Failed NG commands to the relay, by command and kind (timeout, refused, other)."}, []string{"command", "kind"})
	m.tlsFail = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_sip_tls_handshake_failures_total", Help: "TLS connections that did not complete a handshake."})
	m.sessionExpired = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_session_timer_expired_total",
		Help: "Answered calls ended by a session timer (RFC 4028): a session expired unrefreshed or a refresh failed, by trunk."}, []string{"trunk"})
	m.draining = prometheus.NewGauge(prometheus.GaugeOpts{Name: "xtrunk_sip_draining", Help: "1 while draining (SIGTERM): new calls get 503."})
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_transfers_total", Help: "Call transfers (REFER) by trunk and result: refused, completed, failed."}, []string{"trunk", "result"})
	m.reg.MustRegister(m.attempts, m.answered, m.failed, m.active, m.setup, m.duration, m.refusals, m.ignoredC, m.bans,
		m.requests, m.ngErrors, m.tlsFail, m.draining, m.sessionExpired, m.transfers, m.failovers, m.carrierUpG, m.carrierAttempts,
		m.carrierAnswers, m.carrierF, m.carrierSetup, m.cdrFailed, m.cdrDropped, m.qLoss, m.qJitter, m.qMOS,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_cdr_queue_rows", Help: "CDRs and live call rows waiting to be written to the store."},
			func() float64 { return float64(s.cdrs.backlog()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_relay_up", Help: "1 if the relay answered an NG ping within the last 5 s (pinged every 2 s)."},
			func() float64 {
				if s.relayUp() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_guard_banned", Help: "Sources and prefixes (/24, /64) under a ban now.",
			ConstLabels: prometheus.Labels{"kind": "source"}}, func() float64 { return float64(s.abuse.Stats().BannedSources) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_guard_banned", Help: "Sources and prefixes (/24, /64) under a ban now.",
			ConstLabels: prometheus.Labels{"kind": "prefix"}}, func() float64 { return float64(s.abuse.Stats().BannedPrefixes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_guard_banned_sources", Help: "Sources under a ban now (xtrunk_sip_guard_banned{kind=\"source\"})."},
			func() float64 { return float64(s.abuse.BannedCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_guard_sources", Help: "Sources whose request rates the abuse guard tracks now."},
			func() float64 { return float64(s.abuse.Stats().Sources) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "xtrunk_sip_guard_evictions_total", Help: "Entries pushed out of the abuse guard's full tables, least recently seen first."},
			func() float64 { return float64(s.abuse.Stats().Evictions) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if certs != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrunk_sip_tls_certificate_expiry_timestamp_seconds",
			Help: "When the TLS listener's certificate expires (Unix time)."}, func() float64 { return float64(certs.notAfter().Unix()) }))
	}
	for _, r := range limit.Reasons {
		m.ignoredC.WithLabelValues(r)
	}
	for _, r := range []string{limit.ReasonFlood, limit.ReasonAuth, limit.ReasonPrefix} {
		m.bans.WithLabelValues(r)
	}
	for _, meth := range knownMethods {
		m.requests.WithLabelValues(meth)
	}
	return m
}

// Metrics is the /metrics handler.
func (s *Server) Metrics() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg})
}

// Registry is the signalling's private registry, for a process serving it
// together with other collectors (xtrunk_build_info).
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// callLabels are a call's direction and trunk labels.
func callLabels(c *call) (dir, trunk string) {
	return c.p.dir, c.p.trunk.Sid
}

// direction maps a store direction to the label.
func direction(d string) string {
	switch d {
	case store.DirectionOriginating, dirOrigination:
		return dirOrigination
	}
	return dirTermination
}

// callStarted counts an admitted call.
func (m *metrics) callStarted(dir, trunk string) {
	dir = direction(dir)
	m.attempts.WithLabelValues(dir, trunk).Inc()
	m.active.WithLabelValues(dir, trunk).Inc()
	// The call's later series exist from its start, at zero, so that
	// PromQL's increase() sees the first answer and the first quality
	// observation of a trunk (a series born at 1 shows no increase).
	m.answered.WithLabelValues(dir, trunk)
	m.setup.WithLabelValues(dir, trunk)
	m.duration.WithLabelValues(dir, trunk)
	for _, leg := range []string{"customer", "carrier"} {
		m.qLoss.WithLabelValues(trunk, leg)
		m.qJitter.WithLabelValues(trunk, leg)
		m.qMOS.WithLabelValues(trunk, leg)
	}
}

// callAnswered counts an answered call and its setup time (admission to
// the 200 sent).
func (m *metrics) callAnswered(dir, trunk string, setup time.Duration) {
	dir = direction(dir)
	m.answered.WithLabelValues(dir, trunk).Inc()
	m.setup.WithLabelValues(dir, trunk).Observe(setup.Seconds())
}

// callEnded counts a call's end: status is the final status of the call
// (2xx: it was answered, and talk is its duration from the answer).
func (m *metrics) callEnded(dir, trunk string, status int, talk time.Duration) {
	dir = direction(dir)
	m.active.WithLabelValues(dir, trunk).Dec()
	if status >= 200 && status < 300 {
		m.duration.WithLabelValues(dir, trunk).Observe(talk.Seconds())
		return
	}
	m.failed.WithLabelValues(dir, trunk, strconv.Itoa(status)).Inc()
}

// talkTime is how long the call has been answered at end (0 if never).
func (c *call) talkTime(end time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answer.IsZero() {
		return 0
	}
	return end.Sub(c.answer)
}

// refused counts an INVITE refused before it became a call. reason must
// be a constant of the code (it is a label); trunk is the trunk's sid,
// "" when not known.
func (m *metrics) refused(trunk string, status int, reason string) {
	if trunk == "" {
		trunk = "unknown"
	}
	m.refusals.WithLabelValues(trunk, strconv.Itoa(status), reason).Inc()
}

func (m *metrics) ignored(reason string) { m.ignoredC.WithLabelValues(reason).Inc() }
func (m *metrics) banned(reason string)  { m.bans.WithLabelValues(reason).Inc() }
func (m *metrics) tlsFailed()            { m.tlsFail.Inc() }

func (m *metrics) setDraining(on bool) {
	if on {
		m.draining.Set(1)
	} else {
		m.draining.Set(0)
	}
}

var knownMethods = []string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "REFER", "NOTIFY", "SUBSCRIBE",
	"INFO", "UPDATE", "PRACK", "MESSAGE", "PUBLISH"}

// methodOrder sorts methods as RFC 3261 lists them (Allow headers).
func methodOrder(m string) int {
	for i, k := range knownMethods {
		if k == m {
			return i
		}
	}
	return len(knownMethods)
}

func (m *metrics) request(method sip.RequestMethod) {
	label := "other"
	if methodOrder(string(method)) < len(knownMethods) {
		label = string(method)
	}
	m.requests.WithLabelValues(label).Inc()
}

// ngClient is the relay's NG client, counting failures.
type ngClient struct {
	*ng.Client
	m *metrics
}

// ngCommands are the command labels; anything else is "other".
var ngCommands = map[string]bool{"offer": true, "answer": true, "delete": true, "query": true, "ping": true,
	"start recording": true, "stop recording": true, "block media": true, "unblock media": true, "list": true}

func (c *ngClient) Do(ctx context.Context, req ng.Dict) (ng.Dict, error) {
	res, err := c.Client.Do(ctx, req)
	c.count(ctx, req, err)
	return res, err
}

// Query is Do for "query" and "delete", decoding the reply into its type.
func (c *ngClient) Query(ctx context.Context, req ng.Dict) (ng.QueryReply, error) {
	q, err := c.Client.Query(ctx, req)
	c.count(ctx, req, err)
	return q, err
}

// count counts a failed command by its kind.
func (c *ngClient) count(ctx context.Context, req ng.Dict, err error) {
	if err == nil || ctx.Err() != nil { // a call that ends mid-command is not the relay's failure
		return
	}
	cmd := req.Str("command")
	if !ngCommands[cmd] {
		cmd = "other"
	}
	var re *ng.ReplyError
	kind := "other"
	switch {
	case errors.Is(err, ng.ErrTimeout):
		kind = "timeout"
	case errors.As(err, &re):
		kind = "refused"
	}
	c.m.ngErrors.WithLabelValues(cmd, kind).Inc()
}
