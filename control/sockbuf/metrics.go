package sockbuf

import (
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports, for each socket added, labelled socket="NAME":
//
//	PREFIX_udp_receive_drops_total{socket}   counter: datagrams the kernel
//	    dropped on the socket, its receive buffer full mostly (Drops). Any
//	    increase costs calls a retransmission (500 ms and up): raise the
//	    buffer (the process's rcvbuf flag, net.core.rmem_max) or find what
//	    stalls the reader.
//	PREFIX_udp_receive_buffer_bytes{socket}  gauge: the receive buffer the
//	    kernel granted (Receive; twice the size asked for).
//
// Both are read from the socket at each scrape (two getsockopt calls); a
// closed socket is left out.
type Collector struct {
	drops, size *prometheus.Desc

	mu    sync.Mutex
	socks []socket
}

type socket struct {
	name string
	conn syscall.Conn
}

// NewCollector returns a collector whose metrics are named PREFIX_… (e.g.
// "xtrunk_sip"); register it, then Add the sockets.
func NewCollector(prefix string) *Collector {
	return &Collector{
		drops: prometheus.NewDesc(prefix+"_udp_receive_drops_total",
			"Datagrams the kernel dropped on the socket, its receive buffer full mostly (each costs a call a retransmission).",
			[]string{"socket"}, nil),
		size: prometheus.NewDesc(prefix+"_udp_receive_buffer_bytes",
			"The socket's receive buffer as the kernel granted it (getsockopt SO_RCVBUF: twice the size asked for).",
			[]string{"socket"}, nil),
	}
}

// Add exports conn's figures under socket=name.
func (c *Collector) Add(name string, conn syscall.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.socks = append(c.socks, socket{name, conn})
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.drops
	ch <- c.size
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	socks := append([]socket(nil), c.socks...)
	c.mu.Unlock()
	for _, s := range socks {
		d, err := Drops(s.conn)
		if err != nil {
			continue // closed
		}
		if m, err := prometheus.NewConstMetric(c.drops, prometheus.CounterValue, float64(d), s.name); err == nil {
			ch <- m
		}
		if n, err := Receive(s.conn); err == nil {
			if m, err := prometheus.NewConstMetric(c.size, prometheus.GaugeValue, float64(n), s.name); err == nil {
				ch <- m
			}
		}
	}
}
