package testbed

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RequirePrivilegedEnv names the variable that turns privileged-test skips
// into failures (set by `make test` and CI).
const RequirePrivilegedEnv = "XTRUNK_REQUIRE_PRIVILEGED"

// RequirePrivilegedSet reports whether XTRUNK_REQUIRE_PRIVILEGED=1 is set,
// in which case a privileged test that cannot run must fail, not skip
// (bench/testbed/labtest acts on it).
func RequirePrivilegedSet() bool { return os.Getenv(RequirePrivilegedEnv) == "1" }

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
