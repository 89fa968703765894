package testbed

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// mounts are this process's bpffs mounts still mounted.
var mounts struct {
	sync.Mutex
	dirs map[string]bool
}

// MountBPFFS mounts a fresh bpffs for one relay's pins on a new directory
// under /run named from pattern (as os.MkdirTemp). `ip netns exec`
// remounts /sys, so /sys/fs/bpf would not be shared with the relay.
func MountBPFFS(pattern string) (string, error) {
	dir, err := os.MkdirTemp("/run", pattern)
	if err != nil {
		return "", err
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	mounts.Lock()
	if mounts.dirs == nil {
		mounts.dirs = map[string]bool{}
	}
	mounts.dirs[dir] = true
	mounts.Unlock()
	return dir, nil
}

// UnmountBPFFS lazily unmounts a bpffs from MountBPFFS (pins left in it
// go with it) and removes the directory.
func UnmountBPFFS(dir string) error {
	var errs []error
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
	} else {
		mounts.Lock()
		delete(mounts.dirs, dir)
		mounts.Unlock()
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ActiveMounts lists the bpffs mounts from MountBPFFS still up (tests
// check that a run leaves none).
func ActiveMounts() []string {
	mounts.Lock()
	defer mounts.Unlock()
	var out []string
	for d := range mounts.dirs {
		out = append(out, d)
	}
	return out
}
