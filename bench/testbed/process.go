package testbed

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL: long
// enough for a process on a loaded 2-CPU CI machine to finish its
// shutdown (the api drains its requests, sip its transactions).
const stopGrace = 10 * time.Second

// outputLimit bounds the output a Process keeps (the most recent bytes).
const outputLimit = 1 << 20

// Process is a command started in a namespace through the lab. It runs in its
// own process group, which Stop, Kill and Lab.Close signal as a whole, and it
// gets SIGKILL if the test binary dies.
type Process struct {
	// Cmd is the started command. Do not call its Wait: the lab reaps the
	// process; use Process.Wait.
	Cmd *exec.Cmd

	out  *tailBuffer // nil when the caller supplied Stdout and Stderr
	done chan struct{}

	mu       sync.Mutex
	exited   bool // the group leader has exited; its group may no longer be signalled
	stopping bool // we asked it to end; sweep its group when the leader exits
	signaled syscall.Signal
	err      error
}

// Start starts name with args in the namespace. Its stdout and stderr are
// captured together (see Output); the lab kills it at Close. Cancelling ctx
// kills its process group.
func (n *NS) Start(ctx context.Context, name string, args ...string) (*Process, error) {
	return n.StartCmd(n.Command(ctx, name, args...))
}

// StartCmd starts a command built with Command (it must not have been
// started) and tracks it like Start. Stdout and Stderr left nil are captured
// for Output.
func (n *NS) StartCmd(cmd *exec.Cmd) (*Process, error) {
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil || cmd.Stderr == nil {
		p.out = &tailBuffer{limit: outputLimit}
		if cmd.Stdout == nil {
			cmd.Stdout = p.out
		}
		if cmd.Stderr == nil {
			cmd.Stderr = p.out
		}
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// Pdeathsig fires when the thread that forked exits, not the process;
	// Go keeps the threads it forks from, unless they are locked and exit.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Cancel = func() error { return p.signal(unix.SIGKILL) }
	// Descendants that keep the output pipe open must not block Wait forever.
	cmd.WaitDelay = 2 * time.Second

	n.mu.Lock()
	closed := n.fd <= 0
	n.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: namespace %s", ErrClosed, n.NetnsName)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: %s: start %s: %w", n.NetnsName, strings.Join(cmd.Args, " "), err)
	}
	go p.wait()
	if err := n.lab.track(p); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

func (p *Process) wait() {
	pid := p.Cmd.Process.Pid
	// Wait for the exit without reaping: until Cmd.Wait reaps the leader, its
	// PID, and so the process group ID, cannot be reused, so signalling the
	// group can only hit processes we started.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	p.mu.Lock()
	if p.stopping {
		// The leader is gone; take down what is left of its group.
		unix.Kill(-pid, unix.SIGKILL)
	}
	p.exited = true
	p.mu.Unlock()
	err := p.Cmd.Wait()
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.done)
}

func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	p.stopping = true
	p.signaled = sig
	if err := unix.Kill(-p.Cmd.Process.Pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("testbed: signal %s: %w", p, err)
	}
	return nil
}

func (p *Process) String() string {
	return fmt.Sprintf("pid %d (%s)", p.Cmd.Process.Pid, strings.Join(p.Cmd.Args, " "))
}

// PID returns the process ID (also its process group ID).
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns what exec.Cmd.Wait returned.
func (p *Process) Wait() error {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop sends SIGTERM to the process group and SIGKILL after 3s. It returns nil
// when the process exited cleanly or by the SIGTERM, ErrStopTimeout when it
// had to be killed, and its exit error when it failed (also if it had already
// exited before Stop).
func (p *Process) Stop() error {
	if err := p.signal(unix.SIGTERM); err != nil {
		return err
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.result()
	case <-t.C:
	}
	if err := p.signal(unix.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return fmt.Errorf("%w: %s", ErrStopTimeout, p)
}

// Kill sends SIGKILL to the process group and waits for the process to be
// reaped. It returns nil unless signalling failed; Wait has the exit status.
func (p *Process) Kill() error {
	err := p.signal(unix.SIGKILL)
	<-p.done
	return err
}

// result is the exit error, except that dying of a signal we sent is success.
func (p *Process) result() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && p.signaled != 0 && ws.Signal() == p.signaled {
			return nil
		}
	}
	return p.err
}

// Output returns what the process wrote to stdout and stderr so far (the
// last MiB of it), for diagnostics.
func (p *Process) Output() string {
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	limit   int
	b       []byte
	dropped bool
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, b...)
	if len(t.b) > 2*t.limit {
		t.b = append(t.b[:0], t.b[len(t.b)-t.limit:]...)
		t.dropped = true
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > t.limit {
		b = b[len(b)-t.limit:]
	}
	if t.dropped || len(t.b) > t.limit {
		return "[output truncated]\n" + string(b)
	}
	return string(b)
}
