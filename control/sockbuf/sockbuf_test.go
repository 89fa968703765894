package sockbuf_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/sockbuf"
)

func loopbackUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func rmemMax(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// setAndRead asks for size on c and reads back what the socket has.
func setAndRead(t *testing.T, c *net.UDPConn, size int) (sockbuf.Result, int) {
	t.Helper()
	res, err := sockbuf.SetReceive(c, size)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sockbuf.Receive(c)
	if err != nil {
		t.Fatal(err)
	}
	return res, got
}

// The buffer asked for is the one the socket has: getsockopt reads back
// twice the request (the kernel's bookkeeping), within net.core.rmem_max.
func TestSetReceiveWithinRmemMax(t *testing.T) {
	c := loopbackUDP(t)
	size := min(rmemMax(t), 1<<20)
	res, got := setAndRead(t, c, size)
	if res.Requested != size || res.Granted != 2*size || got != res.Granted || res.Capped() || res.Forced {
		t.Fatalf("asked %d: %+v, getsockopt %d; want granted %d, not capped or forced", size, res, got, 2*size)
	}
}

// Past net.core.rmem_max, root gets the request through SO_RCVBUFFORCE.
func TestSetReceiveForcedPastRmemMax(t *testing.T) {
	labtest.RequirePrivileged(t)
	c := loopbackUDP(t)
	size := 2 * rmemMax(t)
	res, got := setAndRead(t, c, size)
	if !res.Forced || res.Capped() || res.Granted != 2*size || got != res.Granted {
		t.Fatalf("asked %d (rmem_max %d): %+v, getsockopt %d; want forced, granted %d", size, size/2, res, got, 2*size)
	}
}

// size 0 leaves the kernel's default and reports it.
func TestSetReceiveZeroKeepsDefault(t *testing.T) {
	c := loopbackUDP(t)
	before, err := sockbuf.Receive(c)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sockbuf.SetReceive(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Granted != before || res.Requested != 0 || res.Capped() || res.Forced {
		t.Fatalf("%+v, default %d", res, before)
	}
}

// flood sends n datagrams to c from another loopback socket without c
// reading any, then reads what was queued: loopback delivers in the
// sender's send call, so each datagram was either queued or dropped by
// the time the sends return.
func flood(t *testing.T, c *net.UDPConn, n int) (queued int) {
	t.Helper()
	tx := loopbackUDP(t)
	msg := bytes.Repeat([]byte("x"), 200)
	for i := 0; i < n; i++ {
		if _, err := tx.WriteToUDP(msg, c.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	for {
		// Queued datagrams are read at once; the deadline only ends the
		// loop once the queue is empty.
		if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return queued
			}
			t.Fatal(err)
		}
		queued++
	}
}

// The drop counter counts what an overflowing receive buffer lost: every
// datagram sent is either read or counted.
func TestDropsCountsOverflow(t *testing.T) {
	c := loopbackUDP(t)
	if _, err := sockbuf.SetReceive(c, 4096); err != nil { // the kernel's minimum, about a dozen datagrams
		t.Fatal(err)
	}
	d0, err := sockbuf.Drops(c)
	if err != nil {
		t.Fatal(err)
	}
	const sent = 500
	queued := flood(t, c, sent)
	d1, err := sockbuf.Drops(c)
	if err != nil {
		t.Fatal(err)
	}
	if d0 != 0 || d1 == 0 || queued+int(d1) != sent {
		t.Fatalf("sent %d: %d queued, drops %d then %d; want drops > 0 and queued + drops = sent", sent, queued, d0, d1)
	}
}

// The collector exports the socket's drops and buffer, and leaves out a
// closed socket.
func TestCollectorExportsDrops(t *testing.T) {
	c := loopbackUDP(t)
	if _, err := sockbuf.SetReceive(c, 4096); err != nil {
		t.Fatal(err)
	}
	col := sockbuf.NewCollector("xtrunk_test")
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	col.Add("sip-udp", c)
	closed := loopbackUDP(t)
	col.Add("gone", closed)
	_ = closed.Close()
	const sent = 300
	queued := flood(t, c, sent)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := sockbuf.Receive(c)
	want := map[string]float64{
		"xtrunk_test_udp_receive_drops_total":  float64(sent - queued),
		"xtrunk_test_udp_receive_buffer_bytes": float64(buf),
	}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			t.Errorf("unexpected metric %s", mf.GetName())
			continue
		}
		delete(want, mf.GetName())
		if len(mf.Metric) != 1 || label(mf.Metric[0], "socket") != "sip-udp" || value(mf.Metric[0]) != w || w <= 0 {
			t.Errorf("%s = %v, want one series socket=sip-udp = %v (> 0)", mf.GetName(), mf.Metric, w)
		}
	}
	if len(want) != 0 {
		t.Errorf("missing %v", want)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
