package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// stalePins lists the pins in dir of another map layout: xtr_* maps whose
// version suffix is not layout.
func stalePins(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndex(name, "_v")
		if !strings.HasPrefix(name, "xtr_") || i < 0 || name[i:] == layout {
			continue
		}
		if _, err := strconv.Atoi(name[i+2:]); err == nil {
			out = append(out, name)
		}
	}
	return out, nil
}

// Remove detaches the program from every device and deletes all pins: a
// clean shutdown that ends fast-path forwarding.
func (d *Dataplane) Remove() error {
	var errs []error
	for _, l := range d.links {
		if err := l.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	entries, _ := os.ReadDir(d.pinDir)
	for _, e := range entries {
		if err := os.Remove(filepath.Join(d.pinDir, e.Name())); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	// the directory goes while still locked: a relay waiting for the lock
	// then finds it gone and installs a new one
	_ = os.Remove(d.pinDir)
	errs = append(errs, d.Close())
	return errors.Join(errs...)
}

// RemovePins deletes the pins under dir without loading anything: links
// are detached once their last pin and handle are gone.
func RemovePins(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ensureBPFFS makes sure dir will live on a bpffs: if its nearest existing
// ancestor is not one, a bpffs is mounted on dir's parent.
func ensureBPFFS(dir string) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	probe := parent
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		next := filepath.Dir(probe)
		if next == probe {
			break
		}
		probe = next
	}
	if isBPFFS(probe) {
		return nil
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrNotBPFFS, err)
	}
	if err := unix.Mount("bpf", parent, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("%w: mount bpffs on %s: %w", ErrNotBPFFS, parent, err)
	}
	return nil
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC
}
