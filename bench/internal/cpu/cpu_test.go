package cpu

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The test binary's own CPU time shows up read by PID, and a PID that is
// not there reads as nothing.
func TestReadsOwnProcess(t *testing.T) {
	pid, pgrp := os.Getpid(), syscall.Getpgrp()
	read := func() (procs, groups Snap) {
		t.Helper()
		procs, err := ReadProcs([]int{pid, -1})
		if err != nil {
			t.Fatal(err)
		}
		if groups, err = ReadGroups([]int{pgrp}); err != nil {
			t.Fatal(err)
		}
		return procs, groups
	}
	// Spin until the kernel says this process used 300 ms of CPU (on a
	// busy machine that takes longer than 300 ms): the readings must
	// show that time, whatever share of a CPU the machine gave us.
	cpuTime := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	p0, g0 := read()
	c0, w0 := cpuTime(), time.Now()
	for deadline := w0.Add(20 * time.Second); cpuTime()-c0 < 300*time.Millisecond && time.Now().Before(deadline); {
	}
	p1, g1 := read()
	used, wall := (cpuTime() - c0).Seconds(), time.Since(w0).Seconds()
	want := used / wall * 100 // percent of one CPU, as rusage saw it
	near := func(got float64) bool { return got >= want*0.7-5 && got <= want*1.3+5 }
	if got := p1.Pct(p0, pid); !near(got) {
		t.Errorf("process CPU %.1f %% while spinning, rusage says %.1f %%", got, want)
	}
	_, _ = g0, g1 // the test's own group holds go test's other packages: see TestReadsGroup
	if got := p1.Pct(p0, -1); got != 0 {
		t.Errorf("a missing process used %.1f %%", got)
	}
	if got := p1.BusyPct(p0); got < want*0.7-5 {
		t.Errorf("machine busy %.1f %% while spinning, this process alone %.1f %%", got, want)
	}
	if got := p0.BusyPct(p1); got != 0 {
		t.Errorf("readings the wrong way round give %.1f %%, want 0", got)
	}
}

// A process group reads as the sum of its processes: a busy shell in a
// group of its own reads the same by group as by PID. (The test binary's
// own group is go test's, shared with other packages' test binaries
// that come and go, so it cannot serve.)
func TestReadsGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	read := func() (Snap, Snap) {
		p, err := ReadProcs([]int{pid})
		if err != nil {
			t.Fatal(err)
		}
		g, err := ReadGroups([]int{pid})
		if err != nil {
			t.Fatal(err)
		}
		return p, g
	}
	p0, g0 := read()
	// until the shell has used 20 ticks (at most 20 s on a busy machine)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p, _ := ReadProcs([]int{pid}); p.ticks[pid]-p0.ticks[pid] >= 20 {
			break
		}
	}
	p1, g1 := read()
	byPID, byGroup := p1.ticks[pid]-p0.ticks[pid], g1.ticks[pid]-g0.ticks[pid]
	if byPID < 20 {
		t.Fatalf("the busy shell used %d ticks in 20 s", byPID)
	}
	// the two readings of a snapshot are a few microseconds apart: a
	// tick or two either way
	if byGroup+2 < byPID || byGroup > byPID+2 {
		t.Errorf("group read %d ticks, the process %d", byGroup, byPID)
	}
}
