package signalling

import (
	"bufio"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/store"
)

// Issue 6, integration tests 3 and 6: origination URI choice and
// failover (REQUIREMENTS §3.2–3.3) with SIPp as the carrier and as the
// customer's URIs, against xtrunk's relay and against rtpengine.
func TestOriginationFailoverLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) {
			l := newTrunkLab(t, kind)
			t.Run("silent first URI fails over after 4 s", func(t *testing.T) { t.Parallel(); l.failoverSilent(t) })
			t.Run("486 does not fail over", func(t *testing.T) { t.Parallel(); l.failoverBusy(t) })
			t.Run("503 fails over", func(t *testing.T) { t.Parallel(); l.failover503(t) })
			t.Run("weights 60/20/20 over 1000 calls", func(t *testing.T) { t.Parallel(); l.weights(t) })
		})
	}
}

// failoverSilent: priority 1 never answers (not even 100 Trying), priority
// 2 answers; the call is answered by the second URI no sooner than the
// 4 s no-response timer allows.
func (l *trunkLab) failoverSilent(t *testing.T) {
	tri := l.tri
	silentPort, uasPort := l.port(), l.port()
	silent := listenSilent(t, tri.Caller, netip.AddrPortFrom(tri.CallerIP, uint16(silentPort)))
	did := l.originationTrunk(t, "fo-silent",
		origURL{l.customerURI(silentPort), 1, 10}, origURL{l.customerURI(uasPort), 2, 10})
	sipAddr := l.startSIP(t, sipOpts{})
	uas := l.startUAS(t, tri.Caller, "silent-second", "uas_answer.xml", tri.CallerIP, uasPort, l.port(), "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "silent-carrier", "uac_carrier_quick.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-d", "1500"}, carrierArgs(did, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
	n, first := silent.invites()
	if n == 0 {
		t.Fatal("the priority-1 URI never got the INVITE")
	}
	if wait := c.Answer.Sub(first); wait < 3500*time.Millisecond {
		t.Errorf("the call left the silent URI after %v, want the 4 s no-response timer (≥ 3.5 s)", wait)
	} else {
		t.Logf("silent URI got the INVITE (%d copies); answered by the next one %v later", n, wait.Round(time.Millisecond))
	}
}

// failoverBusy: priority 1 answers 486 Busy Here; priority 2 must never
// see the call and the carrier gets the 486.
func (l *trunkLab) failoverBusy(t *testing.T) {
	tri := l.tri
	busyPort, nextPort := l.port(), l.port()
	next := listenSilent(t, tri.Caller, netip.AddrPortFrom(tri.CallerIP, uint16(nextPort)))
	did := l.originationTrunk(t, "fo-busy",
		origURL{l.customerURI(busyPort), 1, 10}, origURL{l.customerURI(nextPort), 2, 10})
	sipAddr := l.startSIP(t, sipOpts{})
	uas := l.startUAS(t, tri.Caller, "busy-first", "uas_busy.xml", tri.CallerIP, busyPort, 0, "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "busy-carrier", "uac_carrier_refused.xml", tri.CalleeIP, l.port(), l.port(),
		carrierArgs(did, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "busy", code: 486,
		hangup: string(hangupCallee) + ": Busy Here"})
	if n, _ := next.invites(); n != 0 {
		t.Errorf("the priority-2 URI got %d INVITEs after a 486: no failover allowed", n)
	}
}

// failover503: priority 1 answers 503; the call moves to priority 2,
// which answers.
func (l *trunkLab) failover503(t *testing.T) {
	tri := l.tri
	refusePort, uasPort := l.port(), l.port()
	did := l.originationTrunk(t, "fo-503",
		origURL{l.customerURI(refusePort), 1, 10}, origURL{l.customerURI(uasPort), 2, 10})
	sipAddr := l.startSIP(t, sipOpts{})
	refuse := l.startUAS(t, tri.Caller, "503-first", "uas_503.xml", tri.CallerIP, refusePort, 0, "-m", "1")
	uas := l.startUAS(t, tri.Caller, "503-second", "uas_answer.xml", tri.CallerIP, uasPort, l.port(), "-m", "1")
	uac := l.startSIPp(t, tri.Callee, "503-carrier", "uac_carrier_quick.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-d", "1500"}, carrierArgs(did, sipAddr.String())...)...)
	uac.wait(t)
	refuse.wait(t)
	uas.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true})
}

// weights: three URIs of equal priority weighted 60/20/20 share 1,000
// calls within five binomial standard deviations each (7.7 and 6.3 points).
func (l *trunkLab) weights(t *testing.T) {
	tri := l.tri
	const calls = 1000
	weights := []int{60, 20, 20}
	ports := []int{l.port(), l.port(), l.port()}
	var urls []origURL
	for i, w := range weights {
		urls = append(urls, origURL{l.customerURI(ports[i]), 10, w})
	}
	did := l.originationTrunk(t, "weighted", urls...)
	sipAddr := l.startSIP(t, sipOpts{})
	var uas []*sippProc
	for i := range weights {
		sp := l.startSIPpStat(t, tri.Caller, "weighted-"+strconv.Itoa(i), "uas_answer.xml", tri.CallerIP, ports[i], l.port())
		uas = append(uas, sp)
	}
	uac := l.startSIPp(t, tri.Callee, "weighted-carrier", "uac_carrier_quick.xml", tri.CalleeIP, l.port(), l.port(),
		"-s", did, "-key", "caller", labCarrierFrom, "-d", "300", "-r", "100", "-l", "200", "-m", strconv.Itoa(calls),
		sipAddr.String())
	uac.wait(t)
	cdrs := l.cdrs(t, did, calls)
	completed := 0
	for _, c := range cdrs {
		if c.Status == "completed" && c.SIPResponseCode == 200 && strings.HasPrefix(c.HangupCause, string(hangupCaller)+": BYE") {
			completed++
		}
	}
	if completed != calls {
		t.Errorf("%d of %d CDRs completed and hung up by the carrier", completed, calls)
	}
	// Each UAS's successful calls, from its -trace_stat file (written
	// every second).
	var got []int
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = got[:0]
		sum := 0
		for _, sp := range uas {
			n := sp.successfulCalls(t)
			got = append(got, n)
			sum += n
		}
		if sum >= calls || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	sum := 0
	for _, n := range got {
		sum += n
	}
	t.Logf("calls per URI (weights %v): %v of %d", weights, got, sum)
	if sum != calls {
		t.Fatalf("the URIs answered %d calls in all, want %d", sum, calls)
	}
	// The picks are random: a fixed ±5 points was 3.2 standard deviations
	// for the 60 % URI (a failure in some 700 runs). Five deviations of
	// the binomial, a failure in millions, still tells 60/20/20 from
	// anything else.
	for i, n := range got {
		share := 100 * float64(n) / float64(sum)
		p := float64(weights[i]) / 100
		tol := max(5, 5*100*math.Sqrt(p*(1-p)/float64(sum)))
		if math.Abs(share-float64(weights[i])) > tol {
			t.Errorf("URI %d (weight %d) took %.1f%% of the calls, want %d ± %.1f", i, weights[i], share, weights[i], tol)
		}
	}
}

// startSIPpStat starts a UAS for any number of calls that writes its
// statistics (-trace_stat) every second.
func (l *trunkLab) startSIPpStat(t *testing.T, ns *testbed.NS, name, scenario string, addr netip.Addr, port, mport int) *sippProc {
	t.Helper()
	stat := filepath.Join(l.dir, name+"_stat.csv")
	sp := l.startUAS(t, ns, name, scenario, addr, port, mport, "-trace_stat", "-stf", stat, "-fd", "1")
	sp.stat = stat
	return sp
}

// successfulCalls reads the cumulative SuccessfulCall(C) of the last line
// of the SIPp's -trace_stat file (0 before the first).
func (sp *sippProc) successfulCalls(t *testing.T) int {
	t.Helper()
	f, err := os.Open(sp.stat)
	if err != nil {
		return 0
	}
	defer f.Close()
	col := -1
	last := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if col < 0 {
			for i, h := range strings.Split(line, ";") {
				if h == "SuccessfulCall(C)" {
					col = i
				}
			}
			if col < 0 {
				t.Fatalf("%s: no SuccessfulCall(C) column in %q", sp.stat, line)
			}
			continue
		}
		if strings.TrimSpace(line) != "" {
			last = line
		}
	}
	if last == "" {
		return 0
	}
	f2 := strings.Split(last, ";")
	if col >= len(f2) {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(f2[col]))
	return n
}
