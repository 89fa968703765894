package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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

// RtpengineArgs returns the command line StartRtpengine (in
// bench/testbed/labtest) runs rtpengine with in the triangle's relay
// namespace: userspace only (no kernel table, so no iptables either), with
// the logical interfaces customer (RelayCallerIP) and carrier
// (RelayCalleeIP), NG on ngAddr.
func RtpengineArgs(tri *Triangle, ngAddr string) []string {
	return []string{
		"--config-file=none", // no /etc/rtpengine/rtpengine.conf
		"--foreground", "--log-stderr", "--no-log-timestamps", "--log-level=6",
		"--table=-1", // userspace forwarding, no kernel module
		"--interface=customer/" + tri.RelayCallerIP.String(),
		"--interface=carrier/" + tri.RelayCalleeIP.String(),
		"--listen-ng=" + ngAddr,
		fmt.Sprintf("--port-min=%d", RtpenginePortMin),
		fmt.Sprintf("--port-max=%d", RtpenginePortMax),
		"--delete-delay=0", // delete means gone, as in xtrunk
		"--num-threads=2",
	}
}

// RtpengineNGAddr is the NG address rtpengine listens on in a triangle.
func RtpengineNGAddr(tri *Triangle) string {
	return netip.AddrPortFrom(tri.RelayCallerIP, 2224).String()
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
