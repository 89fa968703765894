package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// A call through `xtrunk relay` survives kill -9 of the relay and a restart
// with the same pin path: the XDP program keeps forwarding while no relay
// process exists, so no packet is lost, and the new process re-adopts the
// call from its pinned record — it answers query and delete for it and
// holds its ports until the delete.
//
// Socketless, the new process re-creates its AF_XDP sockets in place of
// the dead one's (which the kernel took out of the program's map).
func TestRestartKeepsMedia(t *testing.T) {
	for _, mode := range xdpModes {
		t.Run(mode, func(t *testing.T) { testRestart(t, mode == dataplaneXDPSocketless) })
	}
}

func testRestart(t *testing.T, socketless bool) {
	tri := labtest.NewTriangle(t)
	bin := labtest.BuildXtrunk(t)

	// A bpffs of the test's own in the host mount namespace: `ip netns
	// exec` gives each process a fresh /sys, so /sys/fs/bpf would not be
	// shared between the two relay processes, but this mount is.
	pin := filepath.Join(labtest.MountBPFFS(t), "relay")
	t.Cleanup(func() {
		// runs before the unmount: detach XDP, whatever state the test left
		if err := bpf.RemovePins(pin); err != nil {
			t.Errorf("removing pins: %v", err)
		}
		if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin directory %s still there after cleanup (%v)", pin, err)
		}
	})

	ngAddr := netip.AddrPortFrom(tri.RelayCallerIP, 2223).String()
	// Two port pairs: the call takes both, so a second offer succeeds only
	// once the call's ports are released.
	args := []string{"relay",
		"--interface", "customer/" + tri.RelayCallerIP.String(),
		"--interface", "carrier/" + tri.RelayCalleeIP.String(),
		"--listen-ng", ngAddr, "--ng-allow", "198.18.0.0/15", // the lab's clients
		"--pin-path", pin,
		"--port-min", "30000", "--port-max", "30003",
		"--metrics", "",
	}
	args = append(args, fmt.Sprintf("--socketless=%t", socketless)) // false: bound sockets per call
	start := func(name string) *testbed.Process {
		t.Helper()
		p, err := tri.Relay.Start(context.Background(), bin, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = p.Kill()
			if t.Failed() {
				t.Logf("%s relay output:\n%s", name, p.Output())
			}
		})
		if err := testbed.WaitNG(tri.Caller, ngAddr, p.Done(), 10*time.Second); err != nil {
			t.Fatalf("%s relay: %v\n%s", name, err, p.Output())
		}
		return p
	}
	first := start("first")

	// A second relay with the same pin path is refused at start, naming
	// the first (after waiting bpf.DefaultLockWait for it to go), and
	// leaves the first one's maps alone.
	intruderArgs := append([]string(nil), args...)
	for i, a := range intruderArgs {
		if a == ngAddr {
			intruderArgs[i] = netip.AddrPortFrom(tri.RelayCallerIP, 2224).String()
		}
	}
	intruder, err := tri.Relay.Start(context.Background(), bin, intruderArgs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = intruder.Kill() })
	select {
	case <-intruder.Done():
	case <-time.After(bpf.DefaultLockWait + 30*time.Second):
		t.Fatalf("a second relay on the pin path of a running one did not exit:\n%s", intruder.Output())
	}
	want := fmt.Sprintf("pin directory %s is in use by another relay (pid %d)", pin, first.PID())
	if err := intruder.Wait(); err == nil || !strings.Contains(intruder.Output(), want) {
		t.Errorf("second relay on the same pin path: exit %v, output lacks %q:\n%s", err, want, intruder.Output())
	}

	var c *ng.Client
	if err := tri.Caller.Do(func() error {
		var err error
		c, err = ng.Dial(ngAddr, ng.WithTimeout(3*time.Second))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	callerConn, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 20000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer callerConn.Close()
	calleeConn, err := tri.Callee.ListenUDP(netip.AddrPortFrom(tri.CalleeIP, 40000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer calleeConn.Close()

	offer := do(t, c, ng.Dict{"command": "offer", "call-id": "restart-1", "from-tag": "caller",
		"sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"}, "replace": []any{"origin"}})
	toCallee := mediaOf(t, offer.Str("sdp"))
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": "restart-1", "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(tri.CalleeIP, 40000)})
	toCaller := mediaOf(t, answer.Str("sdp"))

	const n, pps = 400, 50 // 8 s each way
	atCallee := newSink(calleeConn, 0x1111)
	atCaller := newSink(callerConn, 0x2222)
	errs := make(chan error, 2)
	go func() { errs <- send(callerConn, toCaller, 0x1111, n, pps) }()
	go func() { errs <- send(calleeConn, toCallee, 0x2222, n, pps) }()

	time.Sleep(2 * time.Second)
	beforeKill, _ := atCallee.Counts()
	if err := first.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(time.Second)
	duringGap, _ := atCallee.Counts()
	gap := time.Since(killed)
	second := start("second")
	t.Logf("relay killed after %d packets to the callee; %d more arrived in the %v without a relay process; the new one answered %v after the kill",
		beforeKill, duringGap-beforeKill, gap.Round(10*time.Millisecond), time.Since(killed).Round(10*time.Millisecond))
	if duringGap <= beforeKill {
		t.Errorf("no media reached the callee while the relay was down (%d before, %d after)", beforeKill, duringGap)
	}

	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*sink{"callee": atCallee, "caller": atCaller} {
		good, bad := s.Drain(n, drainWait)
		if good != n || bad != 0 {
			t.Errorf("%s received %d/%d intact packets, %d bad, across kill -9 and restart", name, good, n, bad)
		}
	}

	out := second.Output()
	if !strings.Contains(out, "re-adopted calls from pinned maps") || !strings.Contains(out, `"calls":1`) {
		t.Errorf("restarted relay did not log re-adopting the call:\n%s", out)
	}
	if !strings.Contains(out, `"adopted":true`) {
		t.Errorf("restarted relay did not update the pinned XDP links in place:\n%s", out)
	}

	q := do(t, c, ng.Dict{"command": "query", "call-id": "restart-1"})
	for _, tag := range []string{"caller", "callee"} {
		st := streamStats(t, q, tag)
		// the packet that latched each direction went through the first
		// process's userspace, whose counters died with it
		p, fast := statInt(st, "packets"), statInt(st, "fast path")
		t.Logf("query after restart: %s sent %d packets, %d counted by the fast path", tag, p, fast)
		if p < n-2 || fast < n-2 {
			t.Errorf("%s: query after restart counts %d packets (%d fast path), want about %d", tag, p, fast, n)
		}
	}

	// the adopted call still holds both port pairs of the range
	r, err := c.Do(t.Context(), ng.Dict{"command": "offer", "call-id": "restart-2", "from-tag": "other",
		"sdp": g711SDP(tri.CallerIP, 22000)})
	var re *ng.ReplyError
	switch {
	case err == nil:
		t.Errorf("offer for a second call got ports the adopted call holds: %v", r)
	case !errors.As(err, &re) || !strings.Contains(re.Reason, ErrNoPorts.Error()):
		t.Errorf("offer for a second call: %v, want %q", err, ErrNoPorts)
	}

	del := do(t, c, ng.Dict{"command": "delete", "call-id": "restart-1"})
	if statInt(del.Dict("totals").Dict("RTP"), "packets") < 2*(n-2) {
		t.Errorf("delete reply totals: %v", del.Dict("totals"))
	}
	if l := do(t, c, ng.Dict{"command": "list"}); len(l.List("calls")) != 0 {
		t.Errorf("list after delete: %v", l)
	}
	// the ports are free again: a new call gets them
	do(t, c, ng.Dict{"command": "offer", "call-id": "restart-2", "from-tag": "other", "sdp": g711SDP(tri.CallerIP, 22000)})
	do(t, c, ng.Dict{"command": "delete", "call-id": "restart-2"})
	if l := do(t, c, ng.Dict{"command": "list"}); len(l.List("calls")) != 0 {
		t.Errorf("list after deleting both calls: %v", l)
	}

	if err := second.Stop(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, second.Output())
	}
}
