package main

import (
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/sockbuf"
)

// The relay's NG socket gets --ng-rcvbuf (read back with getsockopt:
// twice the request) and its buffer and drops are on /metrics.
func TestRelayNGReceiveBuffer(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	reg := prometheus.NewRegistry()
	if err := watchNGBuffer(zerolog.New(zerolog.NewTestWriter(t)), reg, pc, 1<<20); err != nil {
		t.Fatal(err)
	}
	got, err := sockbuf.Receive(pc)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2<<20 {
		t.Fatalf("NG socket's receive buffer %d, want %d", got, 2<<20)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if len(m.Label) == 1 && m.Label[0].GetValue() == "ng" {
				seen[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	if v, ok := seen["xtrunk_relay_udp_receive_drops_total"]; !ok || v != 0 || seen["xtrunk_relay_udp_receive_buffer_bytes"] != float64(got) {
		t.Fatalf("metrics %v", seen)
	}
}
