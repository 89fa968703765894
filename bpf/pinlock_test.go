package bpf

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// A second Open of a pin directory in use is refused, naming the holder;
// once the holder closes, the next Open takes the lock and adopts the maps
// with what the first one wrote.
func TestOpenLocksPinDir(t *testing.T) {
	labtest.RequirePrivileged(t)
	dir := filepath.Join(labtest.MountBPFFS(t), "relay")
	first, err := Open(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if first.Adopted() {
		t.Error("a fresh pin directory reported as adopted")
	}
	if err := first.SaveCall(7, []byte(`{"id":"kept"}`)); err != nil {
		t.Fatal(err)
	}

	_, err = Open(Options{PinDir: dir, LockWait: -1})
	if !errors.Is(err, ErrPinDirBusy) {
		t.Fatalf("second Open of a pin directory in use: %v, want ErrPinDirBusy", err)
	}
	want := "pin directory " + dir + " is in use by another relay (pid " + strconv.Itoa(os.Getpid()) + ")"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := Open(Options{PinDir: dir, LockWait: -1})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	defer second.Remove()
	if !second.Adopted() {
		t.Error("the successor did not adopt the pinned maps")
	}
	if calls, err := second.Calls(); err != nil || string(calls[7]) != `{"id":"kept"}` {
		t.Errorf("call record across the handover: %q, %v", calls[7], err)
	}
}

// New pins go in through an install directory renamed onto the pin
// directory: none is left behind, and one a crashed Open left (unlocked,
// half pinned) is removed by the next Open.
func TestOpenInstallsThroughRename(t *testing.T) {
	labtest.RequirePrivileged(t)
	root := labtest.MountBPFFS(t)
	dir := filepath.Join(root, "relay")
	abandoned := filepath.Join(root, tempPrefix(dir)+"crashed")
	if err := os.Mkdir(abandoned, 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "half", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(filepath.Join(abandoned, "xtr_sessions"+layout)); err != nil {
		t.Fatal(err)
	}
	m.Close()

	dp, err := Open(Options{PinDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Remove()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix(dir)) {
			t.Errorf("install directory %s left beside the pin directory", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "xtr_sessions"+layout)); err != nil {
		t.Errorf("maps not pinned in the pin directory: %v", err)
	}
	// the lock moved with the rename
	if _, err := Open(Options{PinDir: dir, LockWait: -1}); !errors.Is(err, ErrPinDirBusy) {
		t.Errorf("Open of an installed pin directory in use: %v, want ErrPinDirBusy", err)
	}
}

// A successor adopting a pinned link learns the XDP mode it was attached
// in (a second pin of the link marks it), and both pins stay.
func TestAdoptRemembersMode(t *testing.T) {
	l := newLab(t)
	dir, dev := l.dp.pinDir, l.inIf.Name
	for _, p := range []string{linkPin(dir, dev), modePin(linkPin(dir, dev), ModeNative)} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("pin after attach: %v", err)
		}
	}
	if err := l.dp.Close(); err != nil {
		t.Fatal(err)
	}
	next, err := Open(Options{PinDir: dir, PortMin: 30000, PortMax: 39999})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = next.Remove() })
	var a Attachment
	if err := l.tri.Relay.Do(func() (err error) { a, err = next.Attach(dev, ModeAuto); return err }); err != nil {
		t.Fatal(err)
	}
	if !a.Adopted || a.Mode != ModeNative {
		t.Errorf("adopted attachment %+v, want adopted in mode %s", a, ModeNative)
	}
	if _, err := os.Stat(linkPin(dir, dev)); err != nil {
		t.Errorf("the link's pin after adoption: %v", err)
	}
}

// Device names may hold a dot (VLANs), which bpffs refuses in pin names.
func TestLinkPinHasNoDot(t *testing.T) {
	if p := filepath.Base(linkPin("/sys/fs/bpf/x", "eth0.100")); strings.Contains(p, ".") {
		t.Errorf("pin name %q has a dot", p)
	}
	if p := filepath.Base(modePin(linkPin("/sys/fs/bpf/x", "eth0"), ModeGeneric)); strings.Contains(p, ".") {
		t.Errorf("mode pin name %q has a dot", p)
	}
}
