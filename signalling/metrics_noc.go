package signalling

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xtrunk/xtrunk/control/store"
)

// The NOC's metrics (issue 14): failovers, carrier gateways, CDR write
// failures and per-call quality. They are documented on the metrics
// struct's fields.

// newNOC makes the NOC's collectors (registered by newMetrics).
func (m *metrics) newNOC() {
	gw := []string{"gateway"}
	m.failovers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_failovers_total",
		Help: "B-leg targets that failed with another target left to try, by direction and target gateway."}, []string{"direction", "target"})
	m.carrierUpG = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xtrunk_sip_carrier_up",
		Help: "1 if the carrier gateway answers the OPTIONS probe (down after 3 misses, up after 2 answers)."}, gw)
	m.carrierAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_carrier_attempts_total",
		Help: "INVITEs sent to the carrier gateway."}, gw)
	m.carrierAnswers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_carrier_answers_total",
		Help: "INVITEs the carrier gateway answered with 200."}, gw)
	m.carrierF = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_sip_carrier_failures_total",
		Help: "INVITEs the carrier gateway did not answer with 200, by status class (3xx..6xx, timeout)."}, []string{"gateway", "class"})
	m.carrierSetup = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_sip_carrier_setup_seconds",
		Help: "From the INVITE sent to the carrier gateway to its 200.", Buckets: []float64{.1, .25, .5, 1, 2, 3, 5, 8, 13, 20, 30, 60}}, gw)
	m.cdrFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_sip_cdr_write_failures_total",
		Help: "CDRs that could not be written to the store."})
	m.cdrDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_sip_cdr_live_rows_dropped_total",
		Help: "Live call rows (ringing, in-progress) not written because the store's backlog was full; the call's CDR still is."})
	tl := []string{"trunk", "leg"}
	m.qLoss = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_sip_call_loss_ratio",
		Help: "Per call and leg at call end: RTP packets lost over expected.", Buckets: []float64{0, .001, .005, .01, .02, .03, .05, .1, .2}}, tl)
	m.qJitter = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_sip_call_jitter_seconds",
		Help: "Per call and leg at call end: RTP interarrival jitter.", Buckets: []float64{.001, .005, .01, .02, .03, .05, .1, .2}}, tl)
	m.qMOS = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_sip_call_mos",
		Help: "Per call and leg at call end: MOS by the ITU-T G.107 E-model.", Buckets: []float64{1, 2, 2.5, 3, 3.5, 3.8, 4, 4.2, 4.3, 4.4, 4.5}}, tl)
}

// statusClass is a final status's class label.
func statusClass(status int) string {
	if status < 300 || status > 699 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// carrierUp records a gateway's probe state.
func (m *metrics) carrierUp(gateway string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.carrierUpG.WithLabelValues(gateway).Set(v)
}

// carrierGone drops a gateway no longer configured.
func (m *metrics) carrierGone(gateway string) {
	l := prometheus.Labels{"gateway": gateway}
	m.carrierUpG.DeletePartialMatch(l)
	m.carrierAttempts.DeletePartialMatch(l)
	m.carrierAnswers.DeletePartialMatch(l)
	m.carrierF.DeletePartialMatch(l)
	m.carrierSetup.DeletePartialMatch(l)
}

// targetTried counts one B-leg INVITE toward gateway and its outcome:
// status its final status (0: none, a timeout); toCarrier says the
// target is a carrier gateway (termination).
func (m *metrics) targetTried(toCarrier bool, gateway string, status int, setup time.Duration) {
	if !toCarrier {
		return
	}
	m.carrierAttempts.WithLabelValues(gateway).Inc()
	switch {
	case status == 200:
		m.carrierAnswers.WithLabelValues(gateway).Inc()
		m.carrierSetup.WithLabelValues(gateway).Observe(setup.Seconds())
	case status == 0:
		m.carrierF.WithLabelValues(gateway, "timeout").Inc()
	default:
		m.carrierF.WithLabelValues(gateway, statusClass(status)).Inc()
	}
}

// failedOver counts a failed target with another left to try.
func (m *metrics) failedOver(dir, target string) {
	m.failovers.WithLabelValues(direction(dir), target).Inc()
}

// quality records a finished call's per-leg quality; codec is the
// negotiated encoding name.
func (m *metrics) quality(trunk string, legs []store.LegQuality, codec string) {
	for _, q := range legs {
		if q.Leg != "customer" && q.Leg != "carrier" {
			continue
		}
		if q.PacketsReceived == 0 && q.PacketsLost <= 0 {
			continue // no media from that party: nothing to score
		}
		loss := lossRatio(q)
		m.qLoss.WithLabelValues(trunk, q.Leg).Observe(loss)
		m.qJitter.WithLabelValues(trunk, q.Leg).Observe(q.JitterMs / 1000)
		m.qMOS.WithLabelValues(trunk, q.Leg).Observe(mos(loss, q.JitterMs, codec))
	}
}

// trunkGone drops every series of a deleted trunk.
func (m *metrics) trunkGone(trunk string) {
	l := prometheus.Labels{"trunk": trunk}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.attempts, m.answered, m.failed, m.active, m.setup, m.duration, m.refusals, m.sessionExpired,
		m.qLoss, m.qJitter, m.qMOS,
	} {
		v.DeletePartialMatch(l)
	}
}

// watchTrunkDeletes follows the store's change feed until ctx ends and
// drops the series of each trunk deleted, so a deleted trunk's label
// leaves the scrape (a trunk made again gets a new sid).
func (s *Server) watchTrunkDeletes(ctx context.Context) {
	seen := s.startRev // what came before New is not ours to replay
	for rev := range s.st.Watch(ctx) {
		for seen < rev {
			chs, err := s.st.ChangesSince(ctx, seen, 0)
			if err != nil || len(chs) == 0 {
				if err != nil && ctx.Err() == nil {
					s.log.Debug().Err(err).Msg("change feed for trunk metrics")
				}
				seen = rev
				break
			}
			for _, ch := range chs {
				if ch.Kind == "trunk" && ch.Op == "delete" {
					s.metrics.trunkGone(ch.Sid)
				}
				seen = ch.Rev
			}
		}
	}
}
