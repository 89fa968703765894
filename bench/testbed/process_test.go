package testbed

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie is not alive.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func TestProcessRunsInNamespace(t *testing.T) {
	l := NewT(t)
	a, _, _ := pair(t, l)
	p, err := a.Start(t.Context(), "ip", "-o", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("%v: %s", err, p.Output())
	}
	out := p.Output()
	if !strings.Contains(out, "to-b") || !strings.Contains(out, "198.18.0.1/30") {
		t.Errorf("output in namespace a:\n%s", out)
	}
	p, err = a.Start(t.Context(), "sh", "-c", "echo to stderr >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || !strings.Contains(p.Output(), "to stderr") {
		t.Errorf("Wait = %v, output %q; want exit status 3 and stderr", err, p.Output())
	}
}

func TestProcessStop(t *testing.T) {
	l := NewT(t)
	a, _, _ := pair(t, l)

	t.Run("exits on SIGTERM", func(t *testing.T) {
		p, err := a.Start(context.Background(), "sleep", "100")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("Stop = %v, want nil", err)
		}
		if alive(p.PID()) {
			t.Error("still alive after Stop")
		}
	})
	t.Run("ignores SIGTERM", func(t *testing.T) {
		p, err := a.Start(context.Background(), "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
		if err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(p.Output(), "ready") {
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		if err := p.Stop(); !errors.Is(err, ErrStopTimeout) {
			t.Errorf("Stop = %v, want ErrStopTimeout", err)
		}
		if d := time.Since(start); d < stopGrace {
			t.Errorf("killed after %v, before the %v grace period", d, stopGrace)
		}
	})
	t.Run("kill takes the group", func(t *testing.T) {
		p, err := a.Start(context.Background(), "sh", "-c", "sleep 100 & echo $!; wait")
		if err != nil {
			t.Fatal(err)
		}
		var child int
		for child == 0 {
			child, _ = strconv.Atoi(strings.TrimSpace(p.Output()))
			time.Sleep(10 * time.Millisecond)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		// The child is reparented and reaped by init; give it a moment
		// (a wait for that, not a timing: generous for a loaded machine).
		deadline := time.Now().Add(10 * time.Second)
		for alive(child) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(child) {
			t.Errorf("child %d of a killed process still alive", child)
		}
	})
	t.Run("context cancel kills", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p, err := a.Start(ctx, "sleep", "100")
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case <-p.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("process survived its context")
		}
	})
}

func TestCloseKillsProcesses(t *testing.T) {
	RequirePrivileged(t)
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a, b, _ := pair(t, l)
	var pids []int
	for _, ns := range []*NS{a, b} {
		p, err := ns.Start(context.Background(), "sh", "-c", "trap '' TERM; sleep 100")
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p.PID())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d alive after Close", pid)
		}
	}
	if _, err := a.Start(context.Background(), "true"); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}
