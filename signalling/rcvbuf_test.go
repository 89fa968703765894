package signalling

import (
	"net"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/xtrunk/xtrunk/control/sockbuf"
)

// The SIP UDP listener and the NG client socket get the receive buffer
// asked for (read back with getsockopt; the kernel reports twice the
// request), and /metrics carries both sockets' buffers and drops; a
// flood of the listener through a minimal buffer shows in the drops.
func TestUDPReceiveBuffer(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.UDPReceiveBuffer = 1 << 20
	cfg.NGReceiveBuffer = 1 << 20
	s := serve(t, cfg, p.st)
	sipConn := s.lis.udp.(*net.UDPConn)
	got, err := sockbuf.Receive(sipConn)
	if err != nil {
		t.Fatal(err)
	}
	ngGot, err := sockbuf.Receive(s.ng.Client)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2<<20 || ngGot != 2<<20 {
		t.Fatalf("receive buffers: SIP %d, NG %d; want %d each", got, ngGot, 2<<20)
	}
	if b := receiveMetrics(t, s); b["buffer sip-udp"] != float64(got) || b["buffer ng"] != float64(ngGot) ||
		b["drops sip-udp"] != 0 || b["drops ng"] != 0 {
		t.Fatalf("metrics %v", b)
	}

	// Shrink the listener's buffer to the kernel's minimum and flood it
	// from loopback until the kernel drops some (sipgo reads meanwhile:
	// how many bursts that takes varies, that it happens does not).
	if _, err := sockbuf.SetReceive(sipConn, 1); err != nil {
		t.Fatal(err)
	}
	tx, err := net.DialUDP("udp", nil, sipConn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	junk := make([]byte, 1000) // NULs: read and skipped by sipgo's reader
	var drops uint32
	for burst := 0; drops == 0 && burst < 1000; burst++ {
		for range 1000 {
			if _, err := tx.Write(junk); err != nil {
				t.Fatal(err)
			}
		}
		if drops, err = sockbuf.Drops(sipConn); err != nil {
			t.Fatal(err)
		}
	}
	if drops == 0 {
		t.Fatal("a million datagrams into a minimal buffer and no drop counted")
	}
	if b := receiveMetrics(t, s); b["drops sip-udp"] < float64(drops) {
		t.Fatalf("xtrunk_sip_udp_receive_drops_total{socket=sip-udp} = %v after %d drops", b["drops sip-udp"], drops)
	}
}

// receiveMetrics are the xtrunk_sip_udp_receive_* series by "buffer
// SOCKET" and "drops SOCKET".
func receiveMetrics(t *testing.T, s *Server) map[string]float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		var kind string
		switch mf.GetName() {
		case "xtrunk_sip_udp_receive_buffer_bytes":
			kind = "buffer"
		case "xtrunk_sip_udp_receive_drops_total":
			kind = "drops"
		default:
			continue
		}
		for _, m := range mf.Metric {
			out[kind+" "+socketLabel(m)] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

func socketLabel(m *dto.Metric) string {
	for _, l := range m.Label {
		if l.GetName() == "socket" {
			return l.GetValue()
		}
	}
	return ""
}
