package relay

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// checkSocketless asserts that the packets XDP passed up in a socketless
// relay (passedUp) all reached it through AF_XDP, none through the kernel.
func checkSocketless(t *testing.T, r *Relay, passedUp int64) {
	t.Helper()
	if r.xp == nil {
		t.Fatal("socketless relay without an AF_XDP path")
	}
	st, err := r.dp.XSKStats()
	if err != nil {
		t.Fatal(err)
	}
	rx := int64(testutil.ToFloat64(r.xp.m.rx))
	t.Logf("socketless: XDP redirected %d packets to AF_XDP (%d passed to the kernel), the relay read %d, sent %d through TX rings",
		st.Redirected, st.Passed, rx, int64(testutil.ToFloat64(r.xp.m.tx)))
	if st.Passed != 0 {
		t.Errorf("%d packets for userspace went to the kernel, not to an AF_XDP socket", st.Passed)
	}
	if int64(st.Redirected) < passedUp || rx != int64(st.Redirected) {
		t.Errorf("XDP passed up %d, redirected %d to AF_XDP, the relay read %d", passedUp, st.Redirected, rx)
	}
	if testutil.ToFloat64(r.xp.m.tx) == 0 {
		t.Error("nothing left through an AF_XDP TX ring")
	}
}

// The relay process's descriptors do not grow with its calls in
// socketless mode: 200 calls up (offer and answer, 800 relay ports) hold
// not one more descriptor than none, where the socket relay holds 4 per
// call. A call with a party on the relay's host holds two (that leg's
// ports, localparty.go). Run against a real `xtrunk relay` process.
func TestSocketlessHoldsNoSocketPerCall(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		perCall   int
		localCall int // descriptors of a call with a party on the relay's host
	}{{dataplaneXDPSocketless, 0, 2}, {DataplaneXDP, 4, 4}} {
		t.Run(tc.mode, func(t *testing.T) {
			const calls = 200
			tri := labtest.NewTriangle(t)
			addr, pid := startRelayProc(t, tri, tc.mode == dataplaneXDPSocketless)
			c := dialNG(t, tri, addr)
			fds := func() int {
				t.Helper()
				ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
				if err != nil {
					t.Fatal(err)
				}
				return len(ents)
			}
			call := func(id string) {
				do(t, c, ng.Dict{"command": "offer", "call-id": id, "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
					"direction": []any{"customer", "carrier"}})
				do(t, c, ng.Dict{"command": "answer", "call-id": id, "from-tag": "caller", "to-tag": "callee", "sdp": g711SDP(tri.CalleeIP, 40000)})
			}
			t0 := time.Now()
			call("warm-up") // lazy initialisation is no per-call cost
			t.Logf("%s: first call in %v", tc.mode, time.Since(t0).Round(time.Millisecond))
			do(t, c, ng.Dict{"command": "delete", "call-id": "warm-up"})
			before := fds()
			cpu0 := procCPU(t, pid)
			t0 = time.Now()
			for i := range calls {
				call("fd-" + strconv.Itoa(i))
			}
			during := fds()
			t.Logf("%s: %d offers and answers in %v, relay CPU %v", tc.mode, calls, time.Since(t0).Round(time.Millisecond), (procCPU(t, pid) - cpu0).Round(time.Millisecond))
			t0 = time.Now()
			for i := range calls {
				do(t, c, ng.Dict{"command": "delete", "call-id": "fd-" + strconv.Itoa(i)})
			}
			after := fds()
			t.Logf("%s: %d deletes in %v", tc.mode, calls, time.Since(t0).Round(time.Millisecond))
			t.Logf("%s: %d descriptors with no call, %d with %d calls, %d after deleting them", tc.mode, before, during, calls, after)
			if during != before+tc.perCall*calls {
				t.Errorf("%d calls took %d descriptors, want %d", calls, during-before, tc.perCall*calls)
			}
			if after != before {
				t.Errorf("after deleting the calls %d descriptors, before %d", after, before)
			}
			// a party on the relay's host (the callee's SDP names the
			// relay's own address): socketless, its leg alone holds two
			// sockets, and only while the call lasts
			do(t, c, ng.Dict{"command": "offer", "call-id": "local", "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
				"direction": []any{"customer", "carrier"}})
			do(t, c, ng.Dict{"command": "answer", "call-id": "local", "from-tag": "caller", "to-tag": "callee", "sdp": g711SDP(tri.RelayCalleeIP, 40000)})
			local := fds()
			do(t, c, ng.Dict{"command": "delete", "call-id": "local"})
			t.Logf("%s: %d descriptors with a local party's call, %d after it", tc.mode, local, fds())
			if want := before + tc.localCall; local != want {
				t.Errorf("a call with a party on the relay's host: %d descriptors, want %d", local, want)
			}
			if got := fds(); got != before {
				t.Errorf("after deleting the local party's call %d descriptors, before %d", got, before)
			}
		})
	}
}

// startRelayProc runs `xtrunk relay` (xdp, optionally socketless) in tri's
// relay namespace and returns its NG address and pid.
func startRelayProc(t *testing.T, tri *testbed.Triangle, socketless bool) (string, int) {
	t.Helper()
	bin := labtest.BuildXtrunk(t)
	addr := netip.AddrPortFrom(tri.RelayCallerIP, 2223).String()
	pin := filepath.Join(labtest.MountBPFFS(t), "relay")
	t.Cleanup(func() { _ = bpf.RemovePins(pin) })
	args := []string{"relay", "--dataplane", DataplaneXDP, "--pin-path", pin, "--remove-on-exit",
		"--interface", "customer/" + tri.RelayCallerIP.String(),
		"--interface", "carrier/" + tri.RelayCalleeIP.String(),
		"--listen-ng", addr, "--ng-allow", "198.18.0.0/15", "--metrics", "",
	}
	args = append(args, fmt.Sprintf("--socketless=%t", socketless)) // false: bound sockets per call
	p, err := tri.Relay.Start(context.Background(), bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("relay exit: %v\n%s", err, p.Output())
		}
	})
	if err := testbed.WaitNG(tri.Caller, addr, p.Done(), 10*time.Second); err != nil {
		t.Fatalf("relay: %v\n%s", err, p.Output())
	}
	return addr, p.PID()
}

func dialNG(t *testing.T, tri *testbed.Triangle, addr string) *ng.Client {
	t.Helper()
	var c *ng.Client
	if err := tri.Caller.Do(func() error {
		var err error
		c, err = ng.Dial(addr, ng.WithTimeout(5*time.Second))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A host program's UDP socket bound inside the media port range before
// the socketless relay starts keeps its traffic: the relay never hands
// its port out, and the program passes what no session claims to it.
func TestSocketlessHostSocketInRange(t *testing.T) {
	tri := labtest.NewTriangle(t)
	hostPort := netip.AddrPortFrom(tri.RelayCallerIP, 30050)
	host, err := tri.Relay.ListenUDP(hostPort.String())
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	cfg := labConfig(t, tri, dataplaneXDPSocketless)
	cfg.PortMin, cfg.PortMax = 30000, 30099
	lr := startLabRelay(t, tri, cfg)
	c := lr.ngClient(t)
	for i := range 40 {
		o := do(t, c, ng.Dict{"command": "offer", "call-id": "c" + strconv.Itoa(i), "from-tag": "caller",
			"sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"}})
		a := do(t, c, ng.Dict{"command": "answer", "call-id": "c" + strconv.Itoa(i), "from-tag": "caller", "to-tag": "callee",
			"sdp": g711SDP(tri.CalleeIP, 40000)})
		for _, m := range []netip.AddrPort{mediaOf(t, o.Str("sdp")), mediaOf(t, a.Str("sdp"))} {
			if m.Port() == 30050 || m.Port() == 30051 {
				t.Fatalf("call %d got port %d, which a host socket holds", i, m.Port())
			}
		}
	}
	caller, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	if _, err := caller.WriteToUDPAddrPort([]byte("to the host program"), hostPort); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = host.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := host.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "to the host program" {
		t.Fatalf("host socket in the range: %q from %v, %v", buf[:n], from, err)
	}
	r, _ := lr.r.Reasons()
	if r[bpf.ReasonPassHostSocket] == 0 {
		t.Error("the datagram did not pass as a host socket's")
	}
}

// Media playback from a socketless relay: the frames leave through an
// AF_XDP TX ring (or the kernel, before the caller's MAC is known) from
// the relay's port facing the party, every one of them.
func TestSocketlessPlayMedia(t *testing.T) {
	tri := labtest.NewTriangle(t)
	lr := startLabRelay(t, tri, labConfig(t, tri, dataplaneXDPSocketless))
	c := lr.ngClient(t)
	caller, err := tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, 20000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	do(t, c, ng.Dict{"command": "offer", "call-id": "play", "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
		"direction": []any{"customer", "carrier"}})
	a := do(t, c, ng.Dict{"command": "answer", "call-id": "play", "from-tag": "caller", "to-tag": "callee", "sdp": g711SDP(tri.CalleeIP, 40000)})
	relayPort := mediaOf(t, a.Str("sdp"))
	rep := do(t, c, ng.Dict{"command": "play media", "call-id": "play", "from-tag": "caller",
		"blob": string(testWAV(7, make([]byte, 160*10))), "repeat-times": int64(1)})
	if ng.DecodePlayMediaReply(rep).Duration != 200 {
		t.Fatalf("play media: %v", rep)
	}
	buf := make([]byte, 2048)
	for i := range 10 {
		_ = caller.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, src, err := caller.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if src != relayPort || n != 12+160 {
			t.Fatalf("frame %d: %d bytes from %v, want 172 from %v", i, n, src, relayPort)
		}
	}
	tx, fb := testutil.ToFloat64(lr.r.xp.m.tx), 0.0
	for _, why := range []string{fallbackNoNeigh, fallbackNoRoute, fallbackNoXSK, fallbackMTU, fallbackTxFull} {
		fb += testutil.ToFloat64(lr.r.xp.m.fallbacks.WithLabelValues(why))
	}
	t.Logf("played 10 frames: %v through AF_XDP TX, %v through the kernel", tx, fb)
	if tx+fb < 10 {
		t.Errorf("the frames did not leave through the AF_XDP path (tx %v, fallback %v)", tx, fb)
	}
	// the kernel's drops on the way into each AF_XDP socket are exported
	// per device, queue and reason
	mfs, err := lr.r.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "xtrunk_relay_xsk_kernel_drops_total" {
			series = len(mf.GetMetric())
		}
	}
	if want := 5 * len(lr.r.xp.ports); series != want || want == 0 {
		t.Errorf("xtrunk_relay_xsk_kernel_drops_total: %d series, want 5 reasons × %d sockets", series, len(lr.r.xp.ports))
	}
}

// IPv6, and IPv4 to IPv6, through the socketless relay: an all-IPv6 call
// latches and then takes the fast path; a call translated between the
// families goes through AF_XDP for every packet (XDP cannot translate),
// and each side receives every packet intact from the relay port it was
// given.
func TestSocketlessFamilies(t *testing.T) {
	for _, tc := range []struct {
		name           string
		caller, callee func(*testbed.Triangle) netip.Addr
	}{
		{"ipv6", func(tr *testbed.Triangle) netip.Addr { return tr.CallerIP6 }, func(tr *testbed.Triangle) netip.Addr { return tr.CalleeIP6 }},
		{"ipv4-to-ipv6", func(tr *testbed.Triangle) netip.Addr { return tr.CallerIP }, func(tr *testbed.Triangle) netip.Addr { return tr.CalleeIP6 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tri := labtest.NewTriangle(t)
			cfg := labConfig(t, tri, dataplaneXDPSocketless)
			if tc.caller(tri).Is4() != tc.callee(tri).Is4() {
				// one family per side: the relay translates between them
				cfg.Interfaces = []Interface{
					{Name: "customer", Addr: tri.RelayCallerIP, Advertised: tri.RelayCallerIP},
					{Name: "carrier", Addr: tri.RelayCalleeIP6, Advertised: tri.RelayCalleeIP6},
				}
			}
			lr := startLabRelay(t, tri, cfg)
			c := lr.ngClient(t)
			callerAddr := netip.AddrPortFrom(tc.caller(tri), 20000)
			calleeAddr := netip.AddrPortFrom(tc.callee(tri), 40000)
			callerConn, err := tri.Caller.ListenUDP(callerAddr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer callerConn.Close()
			calleeConn, err := tri.Callee.ListenUDP(calleeAddr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer calleeConn.Close()
			offer := do(t, c, ng.Dict{"command": "offer", "call-id": tc.name, "from-tag": "caller",
				"sdp": g711SDP(callerAddr.Addr(), 20000), "direction": []any{"customer", "carrier"}})
			answer := do(t, c, ng.Dict{"command": "answer", "call-id": tc.name, "from-tag": "caller", "to-tag": "callee",
				"sdp": g711SDP(calleeAddr.Addr(), 40000)})
			toCallee, toCaller := mediaOf(t, offer.Str("sdp")), mediaOf(t, answer.Str("sdp"))
			if toCallee.Addr().Is4() != calleeAddr.Addr().Is4() || toCaller.Addr().Is4() != callerAddr.Addr().Is4() {
				t.Fatalf("relay addresses %v (callee side), %v (caller side) are not of the parties' families", toCallee, toCaller)
			}
			const n, pps = 150, 50
			atCallee, atCaller := newSink(calleeConn, 0x1111), newSink(callerConn, 0x2222)
			errs := make(chan error, 2)
			go func() { errs <- send(callerConn, toCaller, 0x1111, n, pps) }()
			go func() { errs <- send(calleeConn, toCallee, 0x2222, n, pps) }()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			for name, s := range map[string]*sink{"callee": atCallee, "caller": atCaller} {
				good, bad := s.Drain(n, drainWait)
				if good != n || bad != 0 {
					t.Errorf("%s received %d/%d intact packets, %d bad", name, good, n, bad)
				}
				for src := range s.Sources() {
					if src != toCaller && src != toCallee {
						t.Errorf("%s got media from %v, not from the relay port it was given", name, src)
					}
				}
			}
			rx := testutil.ToFloat64(lr.r.xp.m.rx)
			t.Logf("%s: %v packets through AF_XDP, %v out of its TX rings", tc.name, rx, testutil.ToFloat64(lr.r.xp.m.tx))
			if tc.name == "ipv4-to-ipv6" && rx < 2*n-2 {
				t.Errorf("only %v of %d translated packets went through AF_XDP", rx, 2*n)
			}
		})
	}
}

func TestSocketlessNeedsXDP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interfaces = []Interface{{Name: "lo", Addr: netip.MustParseAddr("127.0.0.1")}}
	if !cfg.Socketless {
		t.Error("--dataplane xdp is not socketless by default")
	}
	cfg.Dataplane, cfg.Socketless = DataplaneUserspace, true
	if err := cfg.Validate(); err != nil || cfg.Socketless {
		t.Errorf("userspace dataplane: socketless %v after Validate (%v); it binds sockets", cfg.Socketless, err)
	}
	cfg.Dataplane, cfg.Socketless = DataplaneXDP, true
	if err := cfg.Validate(); err != nil {
		t.Errorf("--dataplane xdp --socketless: %v", err)
	}
}

// A socketless relay restarted on the same pins re-creates its AF_XDP
// sockets in the program's map: a call made by the new process learns and
// forwards through them (its first packets reach the new process, not the
// kernel).
func TestSocketlessRestartNewCall(t *testing.T) {
	tri := labtest.NewTriangle(t)
	cfg := labConfig(t, tri, dataplaneXDPSocketless)
	cfg.RemoveOnExit = false
	first := startLabRelay(t, tri, cfg)
	first.stop()
	cfg.RemoveOnExit = true
	lr := startLabRelay(t, tri, cfg)
	c := lr.ngClient(t)
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
	offer := do(t, c, ng.Dict{"command": "offer", "call-id": "after", "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
		"direction": []any{"customer", "carrier"}})
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": "after", "from-tag": "caller", "to-tag": "callee", "sdp": g711SDP(tri.CalleeIP, 40000)})
	const n = 50
	atCallee, atCaller := newSink(calleeConn, 0x1111), newSink(callerConn, 0x2222)
	errs := make(chan error, 2)
	go func() { errs <- send(callerConn, mediaOf(t, answer.Str("sdp")), 0x1111, n, 50) }()
	go func() { errs <- send(calleeConn, mediaOf(t, offer.Str("sdp")), 0x2222, n, 50) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range map[string]*sink{"callee": atCallee, "caller": atCaller} {
		if good, bad := s.Drain(n, drainWait); good != n || bad != 0 {
			t.Errorf("%s received %d/%d intact packets, %d bad", name, good, n, bad)
		}
	}
	checkSocketless(t, lr.r, 2)
}
