package relay

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// timeoutCall is one call of the media timeout lab and its two parties'
// sockets.
type timeoutCall struct {
	id                 string
	caller, callee     *net.UDPConn
	toCaller, toCallee netip.AddrPort // the relay ports each party sends to
	signalled          time.Time      // before the answer was sent
}

func setUpTimeoutCall(t *testing.T, tri *testbed.Triangle, c *ng.Client, id string, callerPort, calleePort int) *timeoutCall {
	t.Helper()
	tc := &timeoutCall{id: id}
	var err error
	if tc.caller, err = tri.Caller.ListenUDP(netip.AddrPortFrom(tri.CallerIP, uint16(callerPort)).String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.caller.Close() })
	if tc.callee, err = tri.Callee.ListenUDP(netip.AddrPortFrom(tri.CalleeIP, uint16(calleePort)).String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.callee.Close() })
	offer := do(t, c, ng.Dict{"command": "offer", "call-id": id, "from-tag": "caller",
		"sdp": g711SDP(tri.CallerIP, callerPort), "direction": []any{"customer", "carrier"}})
	tc.toCallee = mediaOf(t, offer.Str("sdp"))
	tc.signalled = time.Now()
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": id, "from-tag": "caller", "to-tag": "callee",
		"sdp": g711SDP(tri.CalleeIP, calleePort)})
	tc.toCaller = mediaOf(t, answer.Str("sdp"))
	return tc
}

// media sends 50 pps G.711 both ways until stop is closed, then reports
// how many packets each party sent.
func (tc *timeoutCall) media(stop <-chan struct{}) <-chan int {
	done := make(chan int, 1)
	go func() {
		buf := make([]byte, 172)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- i
				return
			case <-tick.C:
			}
			_, _ = tc.caller.WriteToUDPAddrPort(rtpPacket(buf, 0, 0x1111, uint16(i)), tc.toCaller)
			_, _ = tc.callee.WriteToUDPAddrPort(rtpPacket(buf, 0, 0x2222, uint16(i)), tc.toCallee)
		}
	}()
	return done
}

func isTimedOut(reply ng.Dict) bool {
	v, _ := reply.Int("timed out")
	return v == 1 && reply.Str("status") == "timed out"
}

// Media timeout (--timeout): a call whose parties never send, and one whose
// media stops, show as timed out in query and list once the timeout has
// passed without packets; a call with media flowing all along does not.
// In xdp mode the flowing call's packets never reach the relay process:
// only the XDP per-leg "last seen" stamps keep it alive.
func TestMediaTimeout(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) { testTimeout(t, mode) })
	}
}

func testTimeout(t *testing.T, mode string) {
	const timeout = 2 * time.Second
	tri := labtest.NewTriangle(t)
	cfg := labConfig(t, tri, mode)
	cfg.Timeout = timeout
	lr := startLabRelay(t, tri, cfg)
	c := lr.ngClient(t)

	idle := setUpTimeoutCall(t, tri, c, "idle", 20000, 40000)
	stopped := setUpTimeoutCall(t, tri, c, "stopped", 20010, 40010)
	active := setUpTimeoutCall(t, tri, c, "active", 20020, 40020)

	stopActive := make(chan struct{})
	activeSent := active.media(stopActive)
	defer func() {
		select {
		case <-stopActive:
		default:
			close(stopActive)
		}
	}()
	stopStopped := make(chan struct{})
	stoppedSent := stopped.media(stopStopped)
	time.Sleep(time.Second)
	close(stopStopped)
	<-stoppedSent
	mediaEnd := time.Now()

	// poll until both silent calls have timed out, and for long enough
	// that the flowing call's signalling alone would have let it time out
	seen := map[string]time.Duration{}
	deadline := time.Now().Add(3*timeout + 2*time.Second)
	for time.Now().Before(deadline) {
		for _, tc := range []*timeoutCall{idle, stopped, active} {
			if _, ok := seen[tc.id]; ok {
				continue
			}
			if isTimedOut(do(t, c, ng.Dict{"command": "query", "call-id": tc.id})) {
				seen[tc.id] = time.Since(tc.signalled)
			}
		}
		_, idleDone := seen["idle"]
		_, stoppedDone := seen["stopped"]
		if idleDone && stoppedDone && time.Since(active.signalled) > timeout+1500*time.Millisecond {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s: timed out after signalling: %v; media stopped %v after signalling", mode, seen, mediaEnd.Sub(stopped.signalled).Round(time.Millisecond))

	if d, ok := seen["idle"]; !ok {
		t.Errorf("call without media not timed out %v after its answer (timeout %v)", time.Since(idle.signalled).Round(time.Millisecond), timeout)
	} else if d < timeout {
		t.Errorf("call without media timed out %v after its answer, before the %v timeout", d, timeout)
	}
	if d, ok := seen["stopped"]; !ok {
		t.Errorf("call whose media stopped not timed out %v after the media ended (timeout %v)", time.Since(mediaEnd).Round(time.Millisecond), timeout)
	} else if end := mediaEnd.Sub(stopped.signalled); d < end+timeout-100*time.Millisecond {
		// the last packet's stamp may lead our mediaEnd by one packet interval
		t.Errorf("call whose media stopped timed out %v after signalling, only %v after its media ended", d, d-end)
	}
	if _, ok := seen["active"]; ok {
		t.Errorf("call with media flowing timed out (%v after signalling)", seen["active"])
	}

	list := do(t, c, ng.Dict{"command": "list"})
	calls, timedOut := list.Strings("calls"), list.Strings("timed out")
	slices.Sort(calls)
	slices.Sort(timedOut)
	if !slices.Equal(calls, []string{"active", "idle", "stopped"}) {
		t.Errorf("list calls %v, want all three", calls)
	}
	if !slices.Equal(timedOut, []string{"idle", "stopped"}) {
		t.Errorf("list \"timed out\" %v, want [idle stopped]", timedOut)
	}

	// the active call really carried media the whole time, through the
	// path the mode promises
	close(stopActive)
	sent := <-activeSent
	q := queryUntil(t, c, "active", func(q ng.Dict) bool {
		return statInt(streamStats(t, q, "caller"), "packets") >= int64(sent)-2 && statInt(streamStats(t, q, "callee"), "packets") >= int64(sent)-2
	})
	for _, tag := range []string{"caller", "callee"} {
		st := streamStats(t, q, tag)
		if p := statInt(st, "packets"); p < int64(sent)-2 {
			t.Errorf("active call, %s: relay counted %d of %d packets", tag, p, sent)
		}
		if isXDP(mode) && statInt(st, "userspace") > 2 {
			t.Errorf("active call, %s: %d packets went through userspace; the fast path was not used", tag, statInt(st, "userspace"))
		}
	}
	if isTimedOut(q) {
		t.Errorf("active call reported timed out after its media: %v", q)
	}
}

// A dead call times out even while a scanner sprays its ports: packets the
// relay drops as foreign are not the call's media. Otherwise anyone who
// keeps spraying a relay's port range keeps every abandoned call, and its
// ports, alive until the final timeout.
func TestMediaTimeoutUnderAttack(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) { testTimeoutUnderAttack(t, mode) })
	}
}

func testTimeoutUnderAttack(t *testing.T, mode string) {
	const timeout = 2 * time.Second
	tri := labtest.NewTriangle(t)
	atk := addAttacker(t, tri)
	cfg := bleedConfig(t, tri, mode)
	cfg.Timeout = timeout
	lr := startLabRelay(t, tri, cfg)
	c := lr.ngClient(t)

	tc := setUpTimeoutCall(t, tri, c, "abandoned", 20000, 40000)
	stop := make(chan struct{})
	sent := tc.media(stop)
	time.Sleep(time.Second)
	close(stop)
	<-sent
	// the parties are gone; the scanner arrives
	spray := startSprayer(t, atk, []netip.Addr{tri.RelayCallerIP, tri.RelayCalleeIP}, cfg.PortMin, cfg.PortMax)
	// It must time out at all, not quickly: the janitor's period and a
	// loaded machine both come on top of the timeout (the same bound as
	// TestMediaTimeout's).
	wait := 3*timeout + 2*time.Second
	deadline := time.Now().Add(wait)
	timedOut := false
	for !timedOut && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		timedOut = isTimedOut(do(t, c, ng.Dict{"command": "query", "call-id": "abandoned"}))
	}
	spray.halt()
	q := do(t, c, ng.Dict{"command": "query", "call-id": "abandoned"})
	drops, _ := streamDrops(t, q)
	if drops == 0 {
		t.Fatalf("the relay dropped nothing: the attack did not reach the call's ports")
	}
	if !timedOut {
		t.Errorf("call without media for %v (timeout %v) not timed out while %d foreign packets were dropped at its ports",
			wait, timeout, drops)
	}
}
