package bpf

import "testing"

// The Go side's XSKMAP layout matches the C one's sizes.
func TestXSKMapSizes(t *testing.T) {
	spec, err := loadRelay()
	if err != nil {
		t.Fatal(err)
	}
	if n := spec.Maps["xtr_xsks_v3"].MaxEntries; n != maxXSKs {
		t.Errorf("xtr_xsks_v3 holds %d, Go thinks %d", n, maxXSKs)
	}
	if n := spec.Maps["xtr_xsk_devs_v3"].MaxEntries; n != maxXSKs/maxQueues {
		t.Errorf("xtr_xsk_devs_v3 holds %d devices, Go thinks %d", n, maxXSKs/maxQueues)
	}
	if n := spec.Maps["xtr_xsk_stats_v3"].MaxEntries; n != uint32(relayXtrXskStatXTR_XSK_MAX) {
		t.Errorf("xtr_xsk_stats_v3 has %d entries, the enum %d", n, relayXtrXskStatXTR_XSK_MAX)
	}
}

// The Go side's session index matches the C one's table sizes, and the
// adoption scan's entry size the struct's.
func TestPortMapSizes(t *testing.T) {
	spec, err := loadRelay()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"xtr_sessions" + layout, "xtr_legs" + layout} {
		if n := spec.Maps[name].MaxEntries; n != maxAddrs*portsEach {
			t.Errorf("%s holds %d, Go thinks %d", name, n, maxAddrs*portsEach)
		}
	}
	if n := spec.Maps["xtr_sessions"+layout].ValueSize; n != sessSize {
		t.Errorf("struct xtr_sess is %d bytes, Go thinks %d", n, sessSize)
	}
	if n := spec.Maps["xtr_legs"+layout].ValueSize; n != 128 {
		t.Errorf("struct xtr_leg is %d bytes, want 128 (two cache lines)", n)
	}
	if n := len(relayXtrAddrs{}.Addr); n != maxAddrs {
		t.Errorf("struct xtr_addrs holds %d addresses, Go thinks %d", n, maxAddrs)
	}
}
