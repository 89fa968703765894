package relay

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xtrunk/xtrunk/bpf"
)

// Userspace drop reasons (xtrunk_relay_userspace_drops_total{reason}).
const (
	dropSession       = "session_drop"    // leg disabled or call gone
	dropForeignSource = "foreign_source"  // not the latched source (RTP Bleed/Inject)
	dropNotLearnable  = "not_learnable"   // unlatched, and not this call's media from an expected address
	dropNoDestination = "no_destination"  // the other party's address is not known yet
	dropSRTPAuth      = "srtp_auth"       // SRTP/SRTCP authentication or replay check failed
	dropSRTPEncrypt   = "srtp_encrypt"    // encryption toward an SRTP party failed (key lifetime)
	dropSRTPSSRCs     = "srtp_ssrc_limit" // a new SSRC beyond what one SRTP context keeps state for (maxSSRCs)
	dropSRTPIndex     = "srtp_index_used" // after a restart, an SRTP index the previous process may have used
	dropSpoofed       = "spoofed"         // a source on the relay's host that is forged (arrived on a device) or that the leg's SDP did not name
)

// metrics is the relay's private Prometheus registry.
type metrics struct {
	reg *prometheus.Registry

	// xtrunk_relay_calls: calls (NG call-ids) held.
	callsG prometheus.Gauge
	// xtrunk_relay_ng_commands_total{command,result}: NG commands handled.
	commands *prometheus.CounterVec
	// xtrunk_relay_ng_command_seconds{command}: NG handling latency.
	cmdLatency *prometheus.HistogramVec
	// xtrunk_relay_userspace_packets_total / _bytes_total: forwarded by
	// the userspace path (learning, SRTP, no-neighbour, userspace mode).
	userPkts, userBytes prometheus.Counter
	// xtrunk_relay_userspace_drops_total{reason}: dropped in userspace.
	drops *prometheus.CounterVec
	// xtrunk_relay_latched_total: endpoints latched to a source.
	latchedC prometheus.Counter
	// xtrunk_relay_media_timeouts_total: calls marked timed out.
	timeouts prometheus.Counter
	// xtrunk_relay_timeout_deletes_total{reason}: calls the relay deleted
	// by itself: media_timeout (timed out and still idle TimeoutLinger
	// later) or final_timeout (older than FinalTimeout, when set).
	timeoutDeletes *prometheus.CounterVec
	// xtrunk_relay_fastpath_errors_total: failed BPF map updates.
	fpErrors prometheus.Counter
	// xtrunk_relay_dataplane_info{device,mode}: 1 per device and the mode
	// in use (native, generic, userspace) — a generic fallback shows here.
	mode *prometheus.GaugeVec
	// xtrunk_relay_leg_jitter_seconds, xtrunk_relay_leg_loss_ratio: per
	// RTP leg at the end of each call (RFC 3550 interarrival jitter, on
	// the fast path from two arrivals in --jitter-sample; lost over
	// expected); xtrunk_relay_rtp_lost_packets_total sums the loss.
	legJitter, legLoss prometheus.Histogram
	lostTotal          prometheus.Counter
	// xtrunk_relay_recordings_active, xtrunk_relay_recording_copies_lost_total
	// (fast-path copies the perf buffer dropped before the recorder read them)
	recActive prometheus.Gauge
	recLost   prometheus.Counter
	// xtrunk_relay_recordings_failed_total: recordings whose files could
	// not be written (disk full, directory gone...).
	recFailed prometheus.Counter
	// xtrunk_relay_persist_errors_total{reason}: call records that could
	// not be written to the pinned map (too_large: over bpf.MaxCallRecord,
	// 64 KB, which the largest call allowed stays well under; map: the
	// map update failed, e.g. the map is full). Such a call is not
	// re-adopted after a restart.
	persistErrs *prometheus.CounterVec
	// xtrunk_relay_ng_refused_total: NG datagrams dropped unanswered
	// because their source is outside --ng-allow.
	ngRefused prometheus.Counter
	// xtrunk_relay_media_packets_total, _bytes_total{interface,direction,path}
	// (mediacount.go)
	mediaPkts, mediaBytes *prometheus.CounterVec
}

func newMetrics(r *Relay) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.callsG = prometheus.NewGauge(prometheus.GaugeOpts{Name: "xtrunk_relay_calls", Help: "Calls (NG call-ids) held by the relay."})
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_ng_commands_total", Help: "NG commands handled, by command and result."}, []string{"command", "result"})
	m.cmdLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xtrunk_relay_ng_command_seconds", Help: "NG command handling time.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}}, []string{"command"})
	m.userPkts = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_userspace_packets_total", Help: "Packets forwarded by the userspace path."})
	m.userBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_userspace_bytes_total", Help: "UDP payload bytes forwarded by the userspace path."})
	m.drops = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_userspace_drops_total", Help: "Packets dropped by the userspace path, by reason."}, []string{"reason"})
	m.latchedC = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_latched_total", Help: "Endpoints latched to a media source."})
	m.timeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_media_timeouts_total", Help: "Calls marked timed out for lack of media."})
	m.timeoutDeletes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_timeout_deletes_total", Help: "Calls deleted by the relay's own timeouts, by reason."}, []string{"reason"})
	m.timeoutDeletes.WithLabelValues("media_timeout")
	m.timeoutDeletes.WithLabelValues("final_timeout")
	m.fpErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_fastpath_errors_total", Help: "Failed fast-path (BPF map) updates."})
	m.mode = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xtrunk_relay_dataplane_info", Help: "Dataplane in use per device: native or generic XDP, or userspace."}, []string{"device", "mode"})
	m.legJitter = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "xtrunk_relay_leg_jitter_seconds", Help: "RFC 3550 interarrival jitter per RTP leg at call end (fast path: sampled, --jitter-sample).",
		Buckets: []float64{.001, .002, .005, .01, .02, .03, .05, .1, .2}})
	m.legLoss = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "xtrunk_relay_leg_loss_ratio", Help: "Lost over expected RTP packets per leg at call end.",
		Buckets: []float64{0, .001, .005, .01, .02, .05, .1, .2, .5}})
	m.lostTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_rtp_lost_packets_total", Help: "RTP packets lost on arrival at the relay (RFC 3550), summed at call end."})
	for _, reason := range []string{dropSession, dropForeignSource, dropNotLearnable, dropNoDestination, dropSRTPAuth, dropSRTPEncrypt, dropSRTPSSRCs, dropSRTPIndex} {
		m.drops.WithLabelValues(reason)
	}
	m.recActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: "xtrunk_relay_recordings_active", Help: "Calls being recorded."})
	m.recLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_recording_copies_lost_total", Help: "Fast-path recording copies dropped before the recorder read them."})
	m.recFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_recordings_failed_total", Help: "Recordings whose files could not be written."})
	m.persistErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_persist_errors_total", Help: "Call records that could not be persisted for restart, by reason."}, []string{"reason"})
	m.ngRefused = prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_ng_refused_total", Help: "NG datagrams dropped unanswered: source outside --ng-allow."})
	m.persistErrs.WithLabelValues("too_large")
	m.persistErrs.WithLabelValues("map")
	m.mediaPkts, m.mediaBytes = newMediaCounters()
	m.reg.MustRegister(m.mediaPkts, m.mediaBytes)
	m.reg.MustRegister(m.legJitter, m.legLoss, m.lostTotal, m.recActive, m.recLost, m.recFailed, m.persistErrs, m.ngRefused)
	m.reg.MustRegister(m.callsG, m.commands, m.cmdLatency, m.userPkts, m.userBytes, m.drops, m.latchedC, m.timeouts, m.timeoutDeletes, m.fpErrors, m.mode,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&xdpCollector{r: r},
		&portsCollector{r: r}, &sessionsCollector{r: r})
	return m
}

// Handler serves the registry.
func (m *metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the relay's registry (tests gather from it).
func (m *metrics) Registry() *prometheus.Registry { return m.reg }

func (m *metrics) calls(n int)        { m.callsG.Set(float64(n)) }
func (m *metrics) drop(reason string) { m.drops.WithLabelValues(reason).Inc() }
func (m *metrics) latched()           { m.latchedC.Inc() }
func (m *metrics) legQuality(lost int64, expected uint64, jitterSec float64) {
	if expected == 0 {
		return
	}
	m.legJitter.Observe(jitterSec)
	m.legLoss.Observe(float64(max(lost, 0)) / float64(expected))
	if lost > 0 {
		m.lostTotal.Add(float64(lost))
	}
}
func (m *metrics) recordings(d int)       { m.recActive.Add(float64(d)) }
func (m *metrics) recCopiesLost(n uint64) { m.recLost.Add(float64(n)) }
func (m *metrics) recordingFailed()       { m.recFailed.Inc() }
func (m *metrics) persistFailed(tooLarge bool) {
	if tooLarge {
		m.persistErrs.WithLabelValues("too_large").Inc()
	} else {
		m.persistErrs.WithLabelValues("map").Inc()
	}
}
func (m *metrics) timeoutDelete(reason string) { m.timeoutDeletes.WithLabelValues(reason).Inc() }

// NGRefused counts an NG datagram dropped for its source (see
// ng.WithAllow).
func (m *metrics) NGRefused(netip.AddrPort) { m.ngRefused.Inc() }

func (m *metrics) timedOut()                { m.timeouts.Inc() }
func (m *metrics) fastPathError()           { m.fpErrors.Inc() }
func (m *metrics) setMode(dev, mode string) { m.mode.WithLabelValues(dev, mode).Set(1) }
func (m *metrics) userspace(pkts, bytes uint64) {
	if pkts > 0 {
		m.userPkts.Add(float64(pkts))
		m.userBytes.Add(float64(bytes))
	}
}
func (m *metrics) command(cmd, result string, d time.Duration) {
	if cmd == "" || len(cmd) > 32 {
		cmd = "invalid"
	}
	switch cmd {
	case "ping", "offer", "answer", "delete", "query", "list", "start recording", "stop recording":
	default:
		cmd = "other"
	}
	m.commands.WithLabelValues(cmd, result).Inc()
	m.cmdLatency.WithLabelValues(cmd).Observe(d.Seconds())
}

// xdpCollector reads the XDP exit counters at scrape time:
// xtrunk_relay_xdp_packets_total{reason,verdict}.
type xdpCollector struct{ r *Relay }

var xdpDesc = prometheus.NewDesc("xtrunk_relay_xdp_packets_total",
	"Packets seen by the XDP program, by exit reason and verdict (forward, pass, drop).", []string{"reason", "verdict"}, nil)

func (c *xdpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- xdpDesc }

func (c *xdpCollector) Collect(ch chan<- prometheus.Metric) {
	if c.r.fp == nil {
		return
	}
	rs, err := c.r.fp.Reasons()
	if err != nil {
		return
	}
	for i, v := range rs {
		reason := bpf.Reason(i)
		ch <- prometheus.MustNewConstMetric(xdpDesc, prometheus.CounterValue, float64(v), reason.String(), reason.Verdict())
	}
}

// portsCollector: xtrunk_relay_ports_in_use and xtrunk_relay_ports_total
// (RTP/RTCP pairs), for capacity dashboards.
type portsCollector struct{ r *Relay }

var (
	portsUsedDesc  = prometheus.NewDesc("xtrunk_relay_port_pairs_in_use", "RTP/RTCP port pairs allocated.", nil, nil)
	portsTotalDesc = prometheus.NewDesc("xtrunk_relay_port_pairs", "RTP/RTCP port pairs in the range, per address.", nil, nil)
)

func (c *portsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- portsUsedDesc
	ch <- portsTotalDesc
}

func (c *portsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(portsUsedDesc, prometheus.GaugeValue, float64(c.r.ports.inUse()))
	ch <- prometheus.MustNewConstMetric(portsTotalDesc, prometheus.GaugeValue, float64(c.r.ports.pairs()))
}

// sessionsCollector: xtrunk_relay_sessions{state}, the calls held by
// state, counted at scrape time: offered (no answer yet), answered (both
// parties known), timed_out (no media for the media timeout; deleted
// TimeoutLinger later unless media comes back).
type sessionsCollector struct{ r *Relay }

var sessionsDesc = prometheus.NewDesc("xtrunk_relay_sessions", "Calls held by the relay, by state (offered, answered, timed_out).", []string{"state"}, nil)

func (c *sessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sessionsDesc }

func (c *sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.mu.Lock()
	calls := make([]*call, 0, len(c.r.calls))
	for _, cl := range c.r.calls {
		calls = append(calls, cl)
	}
	c.r.mu.Unlock()
	n := map[string]int{"offered": 0, "answered": 0, "timed_out": 0}
	for _, cl := range calls {
		cl.mu.Lock()
		switch {
		case cl.deleted:
		case cl.timedOut:
			n["timed_out"]++
		case cl.sides[1] != nil && cl.sides[1].Tag != "":
			n["answered"]++
		default:
			n["offered"]++
		}
		cl.mu.Unlock()
	}
	for state, v := range n {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(v), state)
	}
}
