package testbed

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// MountBPFFS mounts a bpffs of the test's own, in the host's mount
// namespace, and unmounts it when the test ends. Pins under it are shared
// by every process of the test (`ip netns exec` gives each process a
// fresh /sys, so /sys/fs/bpf would not be).
func MountBPFFS(t testing.TB) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "bpffs")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	return root
}
