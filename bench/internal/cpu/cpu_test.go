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
	p0, g0 := read()
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	p1, g1 := read()
	if got := p1.Pct(p0, pid); got < 20 {
		t.Errorf("process CPU %.1f %% while spinning, want most of one CPU", got)
	}
	if got := g1.Pct(g0, pgrp); got < 20 {
		t.Errorf("process group CPU %.1f %% while spinning, want most of one CPU", got)
	}
	if got := p1.Pct(p0, -1); got != 0 {
		t.Errorf("a missing process used %.1f %%", got)
	}
	if got := p1.BusyPct(p0); got < 20 {
		t.Errorf("machine busy %.1f %% while spinning", got)
	}
	if got := p0.BusyPct(p1); got != 0 {
		t.Errorf("readings the wrong way round give %.1f %%, want 0", got)
	}
}
