package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/xtrunk/xtrunk/signalling"
)

// TestAutoMemoryLimit: a quarter of the machine, or 90 % of a lower
// cgroup limit, never under the minimum; nothing known, no limit.
func TestAutoMemoryLimit(t *testing.T) {
	const gib = int64(1) << 30
	for _, tc := range []struct {
		total, cgroup, want int64
	}{
		{24 * gib, 0, 6 * gib},                    // no cgroup limit
		{24 * gib, 2 * gib, 2 * gib / 10 * 9},     // systemd MemoryMax=2G
		{24 * gib, 32 * gib, 6 * gib},             // a cgroup limit above a quarter
		{128 << 20, 0, signalling.MinMemoryLimit}, // a tiny machine: the floor
		{0, 0, math.MaxInt64},                     // nothing known: no limit
		{0, 1 * gib, 1 * gib / 10 * 9},            // no meminfo, a cgroup limit
	} {
		if got, from := autoMemoryLimit(tc.total, tc.cgroup); got != tc.want || from == "" {
			t.Errorf("auto(total %d, cgroup %d) = %d (%s), want %d", tc.total, tc.cgroup, got, from, tc.want)
		}
	}
}

// TestMemTotal: the machine's memory, as sysinfo(2) gives it, agrees with
// /proc/meminfo's MemTotal.
func TestMemTotal(t *testing.T) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skip(err)
	}
	var kb int64
	fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
	if got := memTotal(); got != kb<<10 {
		t.Errorf("memTotal %d, /proc/meminfo MemTotal %d", got, kb<<10)
	}
}

// TestLowestMemoryMax: the lowest memory.max from the process's own group
// up, on a cgroup tree written to a temporary directory; "max" is no
// limit; cgroup v1 (no "0::" line) and a missing file are no limit.
func TestLowestMemoryMax(t *testing.T) {
	root := t.TempDir()
	write := func(p, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p, "memory.max"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("system.slice", "3221225472\n")
	write("system.slice/xtrunk-sip.service", "max\n")
	self := []byte("0::/system.slice/xtrunk-sip.service\n")
	if got := lowestMemoryMax(root, self, os.ReadFile); got != 3<<30 {
		t.Errorf("a limit on the parent slice: %d, want 3 GiB", got)
	}
	write("system.slice/xtrunk-sip.service", "1073741824\n")
	if got := lowestMemoryMax(root, self, os.ReadFile); got != 1<<30 {
		t.Errorf("a lower limit on the service: %d, want 1 GiB", got)
	}
	if got := lowestMemoryMax(root, []byte("0::/user.slice/none\n"), os.ReadFile); got != 0 {
		t.Errorf("no memory.max on the path: %d, want 0", got)
	}
	if got := lowestMemoryMax(root, []byte("12:memory:/system.slice\n"), os.ReadFile); got != 0 {
		t.Errorf("cgroup v1: %d, want 0", got)
	}
}
