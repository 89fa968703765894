// Package harness is what the benchmarks (bench/media, bench/sip) share
// around the processes they measure: the environment and output of those
// processes, waiting for an NG server to come up, the descriptor limit they
// inherit, and a description of the host. (The bpffs for their XDP pins is
// bench/testbed's MountBPFFS, shared with the demo and the tests.)
package harness

import (
	"context"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CleanEnv is the environment without XTRUNK_* settings, so the processes
// under test run with the benchmark's flags only.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "XTRUNK_") {
			env = append(env, kv)
		}
	}
	return env
}

// Tail is the last n bytes of s, marked as cut where they are not all of it.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Sleep waits for d or until ctx is done, and returns ctx's error then.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RaiseNoFile raises RLIMIT_NOFILE toward n, for this process and the
// processes it starts, and returns the soft limit in force. Beyond the
// hard limit it takes CAP_SYS_RESOURCE; without it the soft limit goes up
// to the hard one. syscall.Setrlimit (not x/sys/unix) so the runtime does
// not restore the old limit for children.
func RaiseNoFile(n uint64) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur >= n {
		return lim.Cur
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
			return lim.Cur
		}
	}
	return want.Cur
}

// Machine describes the host a run measures on.
type Machine struct {
	Kernel string // release, as uname -r
	CPUs   int
	Model  string // the first CPU's model name
}

// ReadMachine describes this host; what cannot be read is left empty.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
