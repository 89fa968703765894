package bpf

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// An upgrade over pins of a relay from before a reason was appended: the
// smaller reason counter map is replaced (its counters restart), and the
// calls in the other pins are adopted as before. drop_spoofed is a drop.
func TestOpenReplacesSmallerReasonCounters(t *testing.T) {
	labtest.RequirePrivileged(t)
	dir := filepath.Join(labtest.MountBPFFS(t), "relay")
	first, err := Open(Options{PinDir: dir, PortMin: 30000, PortMax: 39999})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.SaveCall(1, []byte("record")); err != nil {
		t.Fatal(err)
	}
	first.Close()
	// the older relay's map: one reason fewer
	path := filepath.Join(dir, reasonsMap)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xtr_reasons", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(ReasonMax) - 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(path); err != nil {
		t.Fatal(err)
	}
	m.Close()
	dp, err := Open(Options{PinDir: dir, PortMin: 30000, PortMax: 39999})
	if err != nil {
		t.Fatalf("Open over a smaller reason map: %v", err)
	}
	defer dp.Remove()
	if calls, err := dp.Calls(); err != nil || len(calls) != 1 {
		t.Errorf("calls after the upgrade: %v, %v (want the one saved)", calls, err)
	}
	if got := dp.objs.XtrReasonsV3.MaxEntries(); got != uint32(ReasonMax) {
		t.Errorf("reason map has %d entries, want %d", got, ReasonMax)
	}
	if v := ReasonDropSpoofed.Verdict(); v != "drop" {
		t.Errorf("drop_spoofed verdict %q, want drop", v)
	}
}
