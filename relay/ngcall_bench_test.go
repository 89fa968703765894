package relay

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// Call setup cost: one call's NG offer, answer and delete, sent one call
// at a time by xtrunk's ng.Client from the caller namespace of a Triangle
// to xtrunk's relay (in this process, each dataplane) and to Debian's
// rtpengine (its own process, userspace). Besides ns/op and allocs/op
// (this process: the relay and the client for xtrunk, the client alone
// for rtpengine) each reports CPU time per call:
//
//   - proc-cpu-µs/call: this process's user+system time (getrusage);
//   - relay-cpu-µs/call (rtpengine only): rtpengine's threads' CPU time
//     (schedstat), the figure to compare with xtrunk's proc-cpu minus
//     rtpengine's client-only proc-cpu from the same run.
//
// Calls go one at a time, or -ngcall.inflight at once (as a busy SIP
// proxy sends them), which is where CPU per call matters.
//
// Run: XTRUNK_REQUIRE_PRIVILEGED=1 go test -run '^$' -bench NGCall -benchtime 2000x ./relay/
func BenchmarkNGCall(b *testing.B) {
	for _, dp := range []string{DataplaneUserspace, DataplaneXDP} {
		b.Run("xtrunk-"+dp, func(b *testing.B) {
			tri := labtest.NewTriangle(b)
			addr := startBenchRelay(b, tri, dp)
			runNGCalls(b, tri, addr, 0)
		})
	}
	// the same relay as its own process, measured as rtpengine is
	for _, dp := range []string{DataplaneUserspace, DataplaneXDP, dataplaneXDPSocketless} {
		b.Run("xtrunk-process-"+dp, func(b *testing.B) {
			tri := labtest.NewTriangle(b)
			addr, pid := startRelayProcess(b, tri, dp)
			runNGCalls(b, tri, addr, pid)
		})
	}
	b.Run("rtpengine", func(b *testing.B) {
		tri := labtest.NewTriangle(b)
		addr, p := labtest.StartRtpengineProcess(b, tri)
		runNGCalls(b, tri, addr, p.PID())
	})
}

var ngInFlight = flag.Int("ngcall.inflight", 1, "BenchmarkNGCall: calls set up at once")

// startBenchRelay runs a relay with an NG server in tri's relay namespace
// and returns the NG address.
func startBenchRelay(b *testing.B, tri *testbed.Triangle, dataplane string) string {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Dataplane = dataplane
	cfg.Interfaces = []Interface{
		{Name: "customer", Addr: tri.RelayCallerIP, Advertised: tri.RelayCallerIP},
		{Name: "carrier", Addr: tri.RelayCalleeIP, Advertised: tri.RelayCalleeIP},
	}
	if dataplane == DataplaneXDP {
		cfg.PinPath = filepath.Join(labtest.MountBPFFS(b), "relay")
		cfg.RemoveOnExit = true
	}
	var r *Relay
	var pc net.PacketConn
	err := tri.Relay.Do(func() error {
		var err error
		if r, err = New(cfg); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(tri.RelayCallerIP, 2223).String())
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ng.NewServer(r, ng.WithInline(InlineNG)).Serve(ctx, pc)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		pc.Close()
		r.Close()
	})
	return pc.LocalAddr().String()
}

// startRelayProcess runs `xtrunk relay` in tri's relay namespace and
// returns its NG address and process id.
func startRelayProcess(b *testing.B, tri *testbed.Triangle, dataplane string) (string, int) {
	b.Helper()
	bin := labtest.BuildXtrunk(b)
	addr := netip.AddrPortFrom(tri.RelayCallerIP, 2223).String()
	socketless := dataplane == dataplaneXDPSocketless
	if socketless {
		dataplane = DataplaneXDP
	}
	args := []string{"relay", "--dataplane", dataplane,
		"--interface", "customer/" + tri.RelayCallerIP.String(),
		"--interface", "carrier/" + tri.RelayCalleeIP.String(),
		"--listen-ng", addr, "--ng-allow", "198.18.0.0/15", "--metrics", "",
	}
	if dataplane == DataplaneXDP {
		pin := filepath.Join(labtest.MountBPFFS(b), "relay")
		args = append(args, "--pin-path", pin)
		args = append(args, fmt.Sprintf("--socketless=%t", socketless)) // false: bound sockets per call
		b.Cleanup(func() { _ = bpf.RemovePins(pin) })
	}
	p, err := tri.Relay.Start(context.Background(), bin, args...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Stop() })
	if err := testbed.WaitNG(tri.Caller, addr, p.Done(), 10*time.Second); err != nil {
		b.Fatalf("relay: %v\n%s", err, p.Output())
	}
	return addr, p.PID()
}

// runNGCalls makes b.N calls (offer, answer, delete) against the NG
// server at addr; pid, when not 0, is the server's process to measure.
func runNGCalls(b *testing.B, tri *testbed.Triangle, addr string, pid int) {
	var c *ng.Client
	if err := tri.Caller.Do(func() error {
		var err error
		c, err = ng.Dial(addr, ng.WithTimeout(5*time.Second))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	offerSDP := g711SDP(tri.CallerIP, 20000)
	answerSDP := g711SDP(tri.CalleeIP, 30000)
	call := func(i int) {
		id := "bench-" + strconv.Itoa(i)
		for _, req := range []ng.Dict{
			{"command": "offer", "call-id": id, "from-tag": "caller", "sdp": offerSDP,
				"direction": []any{"customer", "carrier"}, "replace": []any{"origin"}, "flags": []any{"trust-address"}},
			{"command": "answer", "call-id": id, "from-tag": "caller", "to-tag": "callee", "sdp": answerSDP},
			{"command": "delete", "call-id": id, "from-tag": "caller"},
		} {
			reply, err := c.Do(context.Background(), req)
			if err != nil {
				b.Fatalf("%s: %v (%v)", req.Str("command"), err, reply)
			}
		}
	}
	call(-1) // warm up: the first call pays for lazy initialisation

	self0 := selfCPU()
	var srv0 time.Duration
	if pid != 0 {
		srv0 = procCPU(b, pid)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if *ngInFlight <= 1 {
		for i := range b.N {
			call(i)
		}
	} else {
		var next atomic.Int64
		b.SetParallelism((*ngInFlight + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				call(int(next.Add(1)))
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64((selfCPU()-self0).Microseconds())/float64(b.N), "proc-cpu-µs/call")
	if pid != 0 {
		b.ReportMetric(float64((procCPU(b, pid)-srv0).Nanoseconds())/1e3/float64(b.N), "relay-cpu-µs/call")
	}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time of all of pid's threads, from their schedstat
// (nanoseconds, unlike stat's clock ticks).
func procCPU(b testing.TB, pid int) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	for _, t := range tasks {
		s, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(s))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}
