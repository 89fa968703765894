package cpu

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// The test binary's own CPU time shows up read by PID and by its process
// group, and a PID that is not there reads as nothing.
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
	if got := g1.Pct(g0, pgrp); got < want*0.7-5 {
		t.Errorf("process group CPU %.1f %% while spinning, rusage says the test alone used %.1f %%", got, want)
	}
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
