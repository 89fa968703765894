package bpf

import "testing"

// The Go side's XSKMAP layout matches the C one's sizes.
func TestXSKMapSizes(t *testing.T) {
	spec, err := loadRelay()
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.Maps["xtr_xsks_v2"].MaxEntries; n != maxXSKs {
		t.Errorf("xtr_xsks_v2 holds %d, Go thinks %d", n, maxXSKs)
	}
	if n := spec.Maps["xtr_xsk_devs_v2"].MaxEntries; n != maxXSKs/maxQueues {
		t.Errorf("xtr_xsk_devs_v2 holds %d devices, Go thinks %d", n, maxXSKs/maxQueues)
	}
	if n := spec.Maps["xtr_xsk_stats_v2"].MaxEntries; n != uint32(relayXtrXskStatXTR_XSK_MAX) {
		t.Errorf("xtr_xsk_stats_v2 has %d entries, the enum %d", n, relayXtrXskStatXTR_XSK_MAX)
	}
}
