package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLockWait is how long Open waits for another process's lock on the
// pin directory before giving up (Options.LockWait zero). An upgrade that
// starts the new relay before the old one has exited gets this long for the
// old one to go; a relay still running with the same pin path is refused.
const DefaultLockWait = 10 * time.Second

// A bpffs holds no regular files, so the lock is a flock on the pin
// directory itself (as cloudflare/tubular does). flock goes with the open
// file description: the kernel drops it when the process exits, kill -9
// included, so a crashed relay never leaves the directory locked.

// pinLock is an exclusive flock held on a pin directory.
type pinLock struct{ f *os.File }

func (l *pinLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the last descriptor drops the flock
		l.f = nil
	}
}

// lockDir takes an exclusive flock on dir, waiting up to wait for a holder
// to go. It answers os.ErrNotExist when dir does not exist (or was removed
// while this process waited: the caller installs a new one). A holder
// still there after wait yields ErrPinDirBusy naming its pid.
func lockDir(dir string, wait time.Duration) (*pinLock, error) {
	deadline := time.Now().Add(wait)
	for {
		f, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// The directory locked may have been removed (a predecessor's
			// Remove) and replaced meanwhile: the lock must be on the one
			// at the path.
			if same(f, dir) {
				return &pinLock{f: f}, nil
			}
			f.Close()
			if _, err := os.Stat(dir); err != nil {
				return nil, err
			}
			continue
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock pin directory %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			pid := lockHolder(f)
			f.Close()
			return nil, fmt.Errorf("%w: pin directory %s is in use by another relay (pid %s)", ErrPinDirBusy, dir, pid)
		}
		f.Close()
		time.Sleep(100 * time.Millisecond)
	}
}

// same reports whether the open f is the directory now at path.
func same(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// lockHolder finds the pid holding a flock on f in /proc/locks ("?" when
// it cannot be told: another pid namespace, or the lock went meanwhile).
func lockHolder(f *os.File) string {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return "?"
	}
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	lf, err := os.Open("/proc/locks")
	if err != nil {
		return "?"
	}
	defer lf.Close()
	sc := bufio.NewScanner(lf)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 00:2c:7604825 0 EOF"
		fs := strings.Fields(sc.Text())
		if len(fs) >= 6 && fs[1] == "FLOCK" && fs[5] == id {
			if _, err := strconv.Atoi(fs[4]); err == nil {
				return fs[4]
			}
		}
	}
	return "?"
}

// tempPrefix names the directories new pins are installed through: a
// sibling of the pin directory, on the same bpffs, renamed onto it once
// every map is pinned. (bpffs refuses names with a dot in them.)
func tempPrefix(dir string) string { return filepath.Base(dir) + "-install-" }

// removeAbandonedInstalls removes install directories a crashed Open left
// beside dir. One still locked belongs to an Open under way and stays.
func removeAbandonedInstalls(dir string) {
	parent := filepath.Dir(dir)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), tempPrefix(dir)) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		l, err := lockDir(p, 0)
		if err != nil {
			continue
		}
		_ = RemovePins(p)
		l.release()
	}
}

// newInstallDir makes and locks an empty install directory beside dir.
func newInstallDir(dir string) (string, *pinLock, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), tempPrefix(dir))
	if err != nil {
		return "", nil, fmt.Errorf("create install dir: %w", err)
	}
	l, err := lockDir(tmp, 0)
	if err != nil {
		_ = os.Remove(tmp)
		return "", nil, err
	}
	return tmp, l, nil
}

// Open loads the program and its maps, pinning them under o.PinDir, which
// it locks for the life of the Dataplane: a second relay with the same pin
// directory is refused (ErrPinDirBusy) instead of adopting the first one's
// maps. Maps already pinned there are adopted with their contents, so
// sessions set by a previous relay process keep forwarding. A pin
// directory that does not exist is installed whole: the maps are pinned in
// a locked directory beside it, renamed onto it at the end, so a crash
// mid-install leaves no half set of pins at the path.
func Open(o Options) (*Dataplane, error) {
	if o.PinDir == "" {
		return nil, fmt.Errorf("%w: empty pin path", ErrNotBPFFS)
	}
	if _, err := jitterMask(o.JitterSample); err != nil {
		return nil, err
	}
	o.PinDir = filepath.Clean(o.PinDir)
	if err := ensureBPFFS(o.PinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(o.PinDir), 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	removeAbandonedInstalls(o.PinDir)
	wait := o.LockWait
	if wait == 0 {
		wait = DefaultLockWait
	}
	for range 5 {
		l, err := lockDir(o.PinDir, max(wait, 0))
		if errors.Is(err, os.ErrNotExist) {
			d, err := install(o)
			if errors.Is(err, errRaced) {
				continue
			}
			return d, err
		}
		if err != nil {
			return nil, err
		}
		// An empty directory (made by hand, or by an older relay) is
		// replaced by an installed one.
		if entries, err := os.ReadDir(o.PinDir); err == nil && len(entries) == 0 && os.Remove(o.PinDir) == nil {
			l.release()
			continue
		}
		d, err := load(o, o.PinDir)
		if err != nil {
			l.release()
			return nil, err
		}
		d.lock = l
		return d, nil
	}
	return nil, fmt.Errorf("%w: pin directory %s keeps changing under this relay", ErrPinDirBusy, o.PinDir)
}

// install pins a new set of maps in an install directory and renames it
// onto o.PinDir; the lock taken on the install directory moves with it.
func install(o Options) (*Dataplane, error) {
	tmp, l, err := newInstallDir(o.PinDir)
	if err != nil {
		return nil, err
	}
	d, err := load(o, tmp)
	if err != nil {
		_ = RemovePins(tmp)
		l.release()
		return nil, err
	}
	if err := os.Rename(tmp, o.PinDir); err != nil {
		d.Close()
		_ = RemovePins(tmp)
		l.release()
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return nil, errRaced
		}
		return nil, fmt.Errorf("install pin dir: %w", err)
	}
	d.pinDir, d.lock = o.PinDir, l
	return d, nil
}
