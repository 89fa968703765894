package testbed

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequirePrivilegedEnv names the variable that turns privileged-test skips
// into failures (set by `make test` and CI).
const RequirePrivilegedEnv = "XTRUNK_REQUIRE_PRIVILEGED"

// RequirePrivileged skips the test unless the process can build labs: root
// with CAP_SYS_ADMIN (namespaces), CAP_NET_ADMIN (links) and CAP_BPF (XDP).
// With XTRUNK_REQUIRE_PRIVILEGED=1 it fails the test instead, so CI cannot
// pass by skipping.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	err := privileged()
	if err == nil {
		return
	}
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		t.Fatalf("privileged test skipped but %s=1: %v", RequirePrivilegedEnv, err)
	}
	t.Skipf("privileged test: %v", err)
}

// RequireCommand looks name up in PATH for a lab test and returns its
// path. Without it the test is skipped, or fails with
// XTRUNK_REQUIRE_PRIVILEGED=1 (make deps installs the lab's peers).
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(RequirePrivilegedEnv) == "1" {
		t.Fatalf("%s not installed (make deps): %v", name, err)
	}
	t.Skipf("%s not installed: %v", name, err)
	return ""
}

// privileged is Privileged, replaceable in tests.
var privileged = Privileged

// Privileged returns nil if the process can build labs, or an error wrapping
// ErrNotPrivileged that says what is missing.
func Privileged() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrNotPrivileged)
	}
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotPrivileged, err)
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{
		{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
		{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"},
		{unix.CAP_BPF, "CAP_BPF"},
	} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrNotPrivileged, strings.Join(missing, ", "))
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}
