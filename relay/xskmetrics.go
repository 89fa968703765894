package relay

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons of the AF_XDP path (xtrunk_relay_xsk_drops_total{reason}).
const (
	dropFrame   = "frame"    // not an Ethernet/IP/UDP frame the relay can read (or a bad IPv4 header checksum)
	dropNoPort  = "no_port"  // addressed to no relay port in use (the call just ended)
	dropTxError = "tx_error" // neither the TX ring nor the kernel took it
)

// xskMetrics are the socketless path's own counters.
type xskMetrics struct {
	// xtrunk_relay_xsk_rx_packets_total: frames read from AF_XDP RX rings.
	rx prometheus.Counter
	// xtrunk_relay_xsk_tx_packets_total: frames written to AF_XDP TX rings.
	tx prometheus.Counter
	// xtrunk_relay_xsk_tx_fallback_total{reason}: datagrams sent through
	// the kernel (a raw socket) instead: no_neigh (the next hop's MAC is
	// not known yet; the kernel resolves it), no_route, no_socket (an
	// egress device without an AF_XDP socket, e.g. loopback), mtu,
	// tx_full (no free TX frame).
	fallbacks *prometheus.CounterVec
	// xtrunk_relay_xsk_drops_total{reason}: frames the path dropped
	// before or after the packet logic (which counts its own drops in
	// xtrunk_relay_userspace_drops_total).
	drops *prometheus.CounterVec
	// xtrunk_relay_local_legs: legs whose party is on the relay's own
	// host, each holding its two ports as bound kernel sockets
	// (localparty.go); xtrunk_relay_local_leg_errors_total: such legs
	// whose ports could not be bound or polled.
	localLegs   prometheus.Gauge
	localErrors prometheus.Counter
}

func newXSKMetrics(reg *prometheus.Registry) *xskMetrics {
	m := &xskMetrics{
		rx:        prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_xsk_rx_packets_total", Help: "Frames read from the relay's AF_XDP RX rings (socketless mode)."}),
		tx:        prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_xsk_tx_packets_total", Help: "Frames written to the relay's AF_XDP TX rings (socketless mode)."}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_xsk_tx_fallback_total", Help: "Datagrams of the AF_XDP path sent through the kernel instead, by reason."}, []string{"reason"}),
		drops:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_relay_xsk_drops_total", Help: "Frames the AF_XDP path dropped, by reason."}, []string{"reason"}),
		localLegs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "xtrunk_relay_local_legs",
			Help: "Legs whose party is on the relay's own host, each holding its two ports as bound kernel sockets (socketless mode)."}),
		localErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "xtrunk_relay_local_leg_errors_total",
			Help: "Legs of parties on the relay's host whose ports could not be bound or polled (socketless mode)."}),
	}
	for _, r := range []string{fallbackNoNeigh, fallbackNoRoute, fallbackNoXSK, fallbackMTU, fallbackTxFull} {
		m.fallbacks.WithLabelValues(r)
	}
	for _, r := range []string{dropFrame, dropNoPort, dropTxError} {
		m.drops.WithLabelValues(r)
	}
	reg.MustRegister(m.rx, m.tx, m.fallbacks, m.drops, m.localLegs, m.localErrors)
	return m
}

func (m *xskMetrics) drop(reason string)     { m.drops.WithLabelValues(reason).Inc() }
func (m *xskMetrics) fallback(reason string) { m.fallbacks.WithLabelValues(reason).Inc() }

// xskKernelDrops is xtrunk_relay_xsk_kernel_drops_total{device,queue,
// reason}: frames the kernel dropped on their way into an AF_XDP socket,
// from its XDP_STATISTICS — a loop that fell behind (rx_ring_full), a
// fill ring left empty (fill_ring_empty: times, not frames), other
// reasons (rx_dropped), invalid descriptors (rx_invalid, tx_invalid).
// Without it a burst of learning packets (thousands of calls starting at
// once) lost between the program's redirect and the loop shows nowhere.
var xskKernelDrops = prometheus.NewDesc("xtrunk_relay_xsk_kernel_drops_total",
	"Frames the kernel dropped on the way into the relay's AF_XDP sockets (XDP_STATISTICS), by device, RX queue and reason; fill_ring_empty counts times.",
	[]string{"device", "queue", "reason"}, nil)

// xskCollector reads every socket's kernel statistics at scrape time.
type xskCollector struct{ x *xdpPath }

func (c xskCollector) Describe(ch chan<- *prometheus.Desc) { ch <- xskKernelDrops }

func (c xskCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.x.ports {
		p.mu.Lock() // Stats must not run beside Close, which holds mu
		st, err := p.s.Stats()
		p.mu.Unlock()
		if err != nil {
			continue // closed: the relay is stopping
		}
		q := strconv.Itoa(p.queue)
		for _, v := range []struct {
			reason string
			n      uint64
		}{
			{"rx_dropped", st.RxDropped},
			{"rx_ring_full", st.RxRingFull},
			{"fill_ring_empty", st.RxFillRingEmptyDescs},
			{"rx_invalid", st.RxInvalidDescs},
			{"tx_invalid", st.TxInvalidDescs},
		} {
			ch <- prometheus.MustNewConstMetric(xskKernelDrops, prometheus.CounterValue, float64(v.n), p.dev, q, v.reason)
		}
	}
}
