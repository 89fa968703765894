package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
)

// RtpenginePortMin and RtpenginePortMax are the media ports StartRtpengine
// gives rtpengine: disjoint from xtrunk's, so a port in an SDP says which
// relay chose it.
const (
	RtpenginePortMin = 40000
	RtpenginePortMax = 40999
)

// rtpengineStartTimeout bounds the wait for rtpengine's first pong.
const rtpengineStartTimeout = 15 * time.Second

// StartRtpengine runs Debian's rtpengine in the triangle's relay namespace
// for a test, userspace only (no kernel table, so no iptables either),
// with the logical interfaces customer (RelayCallerIP) and carrier
// (RelayCalleeIP), and waits until it answers ping. It returns the NG
// address. Without rtpengine the test is skipped (see RequireCommand); at
// its end rtpengine is stopped, and its output logged if the test failed.
func StartRtpengine(t testing.TB, tri *Triangle) string {
	t.Helper()
	addr, _ := StartRtpengineProcess(t, tri)
	return addr
}

// StartRtpengineProcess is StartRtpengine that also returns rtpengine's
// process, for benchmarks that read its CPU time.
func StartRtpengineProcess(t testing.TB, tri *Triangle) (string, *Process) {
	t.Helper()
	bin := RequireCommand(t, "rtpengine")
	addr := netip.AddrPortFrom(tri.RelayCallerIP, 2224).String()
	p, err := tri.Relay.Start(context.Background(), bin,
		"--config-file=none", // no /etc/rtpengine/rtpengine.conf
		"--foreground", "--log-stderr", "--no-log-timestamps", "--log-level=6",
		"--table=-1", // userspace forwarding, no kernel module
		"--interface=customer/"+tri.RelayCallerIP.String(),
		"--interface=carrier/"+tri.RelayCalleeIP.String(),
		"--listen-ng="+addr,
		fmt.Sprintf("--port-min=%d", RtpenginePortMin),
		fmt.Sprintf("--port-max=%d", RtpenginePortMax),
		"--delete-delay=0", // delete means gone, as in xtrunk
		"--num-threads=2",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping rtpengine: %v", err)
		}
		if t.Failed() {
			t.Logf("rtpengine output:\n%s", p.Output())
		}
	})
	if err := WaitNG(tri.Caller, addr, p.Done(), rtpengineStartTimeout); err != nil {
		t.Fatalf("rtpengine: %v\n%s", err, p.Output())
	}
	return addr, p
}

// WaitNG sends NG pings to addr from ns until one is answered with pong,
// exited is closed (the server's process ended) or within passes.
func WaitNG(ns *NS, addr string, exited <-chan struct{}, within time.Duration) error {
	var c *ng.Client
	if err := ns.Do(func() error {
		var err error
		c, err = ng.Dial(addr, ng.WithTimeout(300*time.Millisecond))
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before answering ping")
		default:
		}
		r, err := c.Do(context.Background(), ng.Dict{"command": "ping"})
		if err == nil && r.Str("result") == "pong" {
			return nil
		}
		last = fmt.Errorf("reply %v, error %w", r, err)
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no pong within %v: %w", within, last)
}
