package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Restart backoff of a crashed child: the first restart after
// backoffMin, doubling up to backoffMax; a child that stayed up for
// backoffReset starts over at backoffMin.
const (
	backoffMin   = 500 * time.Millisecond
	backoffMax   = 30 * time.Second
	backoffReset = 60 * time.Second
	// readyPoll is how often a child's /readyz is asked.
	readyPoll = 250 * time.Millisecond
)

// child is one supervised process: `xtrunk <name> --config FILE ...`.
type child struct {
	name    string
	path    string   // this binary
	args    []string // after the subcommand
	readyz  string   // its /readyz URL
	log     zerolog.Logger
	metrics *upMetrics

	mu      sync.Mutex
	proc    *os.Process // nil while not running
	started time.Time
	ready   atomic.Bool   // the last /readyz said 200
	ended   chan struct{} // closed when the current run has exited
	runErr  error         // the last run's exit, once ended is closed
	signals []os.Signal   // sent during a stop, for the exit log line
	stop    atomic.Bool   // no more restarts
	done    chan struct{} // closed when supervise returns
}

// upMetrics are up's own series.
type upMetrics struct {
	reg      *prometheus.Registry
	restarts *prometheus.CounterVec
	up       *prometheus.GaugeVec
}

func newUpMetrics() *upMetrics {
	m := &upMetrics{reg: prometheus.NewRegistry(),
		// xtrunk_up_child_restarts_total{child}: restarts of a child that
		// exited while up was not stopping it (crash, kill).
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xtrunk_up_child_restarts_total",
			Help: "Restarts of a child process (relay, api, sip) after it exited unexpectedly."}, []string{"child"}),
		// xtrunk_up_child_up{child}: 1 while the child runs and its
		// /readyz answers 200.
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xtrunk_up_child_up",
			Help: "1 while the child process runs and its /readyz answers 200, else 0."}, []string{"child"}),
	}
	m.reg.MustRegister(m.restarts, m.up)
	for _, c := range []string{"relay", "api", "sip"} {
		m.restarts.WithLabelValues(c)
		m.up.WithLabelValues(c).Set(0)
	}
	return m
}

// readyzURL is the /readyz URL of an HTTP listener address; a wildcard
// host is asked on loopback.
func readyzURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/readyz"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}

// readyClient asks children's /readyz: directly, whatever HTTP_PROXY
// says (they are on this host).
var readyClient = &http.Client{Timeout: checkTimeout + time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// isReady asks the child's /readyz once.
func (c *child) isReady(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.readyz, nil)
	if err != nil {
		return false
	}
	res, err := readyClient.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// start runs the child once. Its stdout and stderr are up's (their JSON
// lines carry proc); it does not get NOTIFY_SOCKET (up speaks to
// systemd), and it is sent SIGTERM should up die without stopping it.
func (c *child) start() error {
	cmd := exec.Command(c.path, append([]string{c.name}, c.args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "NOTIFY_SOCKET=") })
	// Its own process group: a terminal's Ctrl-C reaches up alone, which
	// stops the children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrChildFailed, c.name, err)
	}
	ended := make(chan struct{})
	c.mu.Lock()
	c.proc, c.started, c.ended, c.signals = cmd.Process, time.Now(), ended, nil
	c.mu.Unlock()
	c.log.Info().Str("child", c.name).Int("pid", cmd.Process.Pid).Strs("args", cmd.Args[1:]).Msg("child started")
	if c.stop.Load() { // up began stopping while this run started
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.proc, c.runErr = nil, err
		c.mu.Unlock()
		c.ready.Store(false)
		c.metrics.up.WithLabelValues(c.name).Set(0)
		close(ended)
	}()
	return nil
}

// waitReady waits until the current run's /readyz answers 200, the run
// ends (ErrChildFailed) or timeout passes.
func (c *child) waitReady(timeout time.Duration) error {
	c.mu.Lock()
	ended := c.ended
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		if c.isReady(ctx) {
			c.markReady()
			return nil
		}
		select {
		case <-ended:
			c.mu.Lock()
			err := c.runErr
			c.mu.Unlock()
			return fmt.Errorf("%w: %s exited while starting: %v", ErrChildFailed, c.name, exitStatus(err))
		case <-ctx.Done():
			return fmt.Errorf("%w: %s not ready within %v (%s)", ErrChildFailed, c.name, timeout, c.readyz)
		case <-t.C:
		}
	}
}

func (c *child) markReady() {
	if !c.ready.Swap(true) {
		c.mu.Lock()
		took, pid := timeSince(c.started), 0
		if c.proc != nil {
			pid = c.proc.Pid
		}
		c.mu.Unlock()
		c.log.Info().Str("child", c.name).Int("pid", pid).Dur("took", took).Msg("child ready")
	}
	c.metrics.up.WithLabelValues(c.name).Set(1)
}

// watchReady keeps ready and xtrunk_up_child_up current while the run
// lasts.
func (c *child) watchReady(ended <-chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	fast := time.NewTicker(readyPoll) // until the first 200 of a run
	defer fast.Stop()
	for {
		select {
		case <-ended:
			return
		case <-fast.C:
			if c.ready.Load() {
				continue
			}
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		ok := c.isReady(ctx)
		cancel()
		if ok {
			c.markReady()
		} else if c.ready.Swap(false) {
			c.log.Warn().Str("child", c.name).Str("readyz", c.readyz).Msg("child not ready")
			c.metrics.up.WithLabelValues(c.name).Set(0)
		}
	}
}

// supervise waits for each run of the child to end and, unless up is
// stopping it, starts it again after a backoff. The first run is already
// started.
func (c *child) supervise() {
	defer close(c.done)
	delay := backoffMin
	for {
		c.mu.Lock()
		ended, started := c.ended, c.started
		c.mu.Unlock()
		go c.watchReady(ended)
		<-ended
		c.mu.Lock()
		err, sent := c.runErr, c.signals
		c.mu.Unlock()
		if c.stop.Load() {
			ev := c.log.Info().Str("child", c.name).Str("status", exitStatus(err))
			if len(sent) > 0 {
				ev = ev.Str("after", fmt.Sprint(sent))
			}
			ev.Msg("child stopped")
			return
		}
		if time.Since(started) >= backoffReset {
			delay = backoffMin
		}
		c.log.Error().Str("child", c.name).Str("status", exitStatus(err)).Dur("ran", timeSince(started)).Dur("restart_in", delay).
			Msg("child exited unexpectedly; restarting")
		c.metrics.restarts.WithLabelValues(c.name).Inc()
		for !c.sleep(delay) || c.start() != nil {
			if c.stop.Load() {
				return
			}
			c.log.Error().Str("child", c.name).Dur("restart_in", delay).Msg("child could not be started")
			delay = min(delay*2, backoffMax)
		}
		delay = min(delay*2, backoffMax)
	}
}

// sleep waits d; false if up began stopping meanwhile.
func (c *child) sleep(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c.stop.Load() {
			return false
		}
		time.Sleep(min(50*time.Millisecond, time.Until(deadline)))
	}
	return !c.stop.Load()
}

// signal sends sig to the child's current run, if any.
func (c *child) signal(sig os.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return
	}
	if c.stop.Load() {
		c.signals = append(c.signals, sig)
	}
	if err := c.proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.log.Warn().Err(err).Str("child", c.name).Str("signal", sig.String()).Msg("signal")
	}
}

// halt stops the child for good: sig now, SIGKILL if it has not exited
// within timeout; once hurry is closed, within short (from then) if
// that is sooner. It returns once the child is gone.
func (c *child) halt(sig os.Signal, timeout, short time.Duration, hurry <-chan struct{}) {
	c.stop.Store(true)
	c.signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-c.done:
			return
		case <-hurry:
			hurry = nil
			if time.Until(deadline) > short {
				deadline = time.Now().Add(short)
				t.Reset(short)
			}
			continue
		case <-t.C:
		}
		break
	}
	c.log.Warn().Str("child", c.name).Msg("child did not exit in time; killing it")
	c.signal(syscall.SIGKILL)
	<-c.done
}

// exitStatus is a run's end for a log line: "exit status 1", "signal:
// killed".
func exitStatus(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	}
	return err.Error()
}
