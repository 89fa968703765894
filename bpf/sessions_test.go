package bpf

import (
	"bytes"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// Sessions sit at their address's and port's index: a restarted relay
// adopts the address table (positions unchanged), every live session and
// its counters from the pins; a session on a port gets zeroed counters,
// a replaced one keeps them; the address table refuses one address too many.
func TestSessionsAdoptedByIndex(t *testing.T) {
	labtest.RequirePrivileged(t)
	dir := filepath.Join(labtest.MountBPFFS(t), "relay")
	a4, a6 := netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("2001:db8::7")
	peer := netip.MustParseAddrPort("198.18.8.2:40000")
	first, err := Open(Options{PinDir: dir, PortMin: 30000, PortMax: 39999})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.AddLocalAddr(a6); err != nil {
		t.Fatal(err)
	}
	k4, k6, gone := netip.AddrPortFrom(a4, 30000), netip.AddrPortFrom(a6, 30002), netip.AddrPortFrom(a4, 30004)
	want := map[Key]Session{
		k4: {Action: ActionForward, Expect: peer, OutSrc: netip.AddrPortFrom(a4, 30010), OutDst: peer, ClockRate: 8000},
		k6: {Action: ActionPass},
	}
	// stale counters on k4's port from an earlier session: a new session
	// there must not inherit them
	if err := first.objs.XtrLegsV3.Put(uint32(1*portsEach+30000), &relayXtrLeg{Packets: 99}); err != nil {
		t.Fatal(err)
	}
	for k, s := range want {
		if err := first.SetSession(k, s); err != nil { // a4 is added here
			t.Fatal(err)
		}
	}
	if err := first.SetSession(gone, Session{Action: ActionDrop}); err != nil {
		t.Fatal(err)
	}
	if err := first.DeleteSession(gone); err != nil {
		t.Fatal(err)
	}
	if ls, err := first.LegStats(k4); err != nil || ls.Packets != 0 {
		t.Fatalf("new session's counters: %+v, %v; want zeroed", ls, err)
	}
	idx := first.live[k4].idx
	if idx != 1*portsEach+30000 {
		t.Fatalf("k4 at index %d, want address 1 (added second), port 30000", idx)
	}
	if err := first.objs.XtrLegsV3.Put(idx, &relayXtrLeg{Packets: 5, Bytes: 800}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, err := Open(Options{PinDir: dir, PortMin: 30000, PortMax: 39999, LockWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Remove()
	got, err := second.Sessions()
	if err != nil || len(got) != len(want) {
		t.Fatalf("adopted sessions %+v, %v; want %+v", got, err, want)
	}
	for k, s := range want {
		if got[k] != s {
			t.Errorf("adopted %v: %+v, want %+v", k, got[k], s)
		}
	}
	if second.live[k4].idx != idx {
		t.Errorf("adopted k4 at index %d, want %d", second.live[k4].idx, idx)
	}
	// a re-offer replaces the entry and keeps the counters
	if err := second.SetSession(k4, Session{Action: ActionForward, OutSrc: netip.AddrPortFrom(a4, 30010), OutDst: peer}); err != nil {
		t.Fatal(err)
	}
	if ls, err := second.LegStats(k4); err != nil || ls.Packets != 5 || ls.Bytes != 800 {
		t.Errorf("counters across restart and update: %+v, %v; want 5 packets, 800 bytes", ls, err)
	}
	for i := range maxAddrs - 2 {
		if err := second.AddLocalAddr(netip.AddrFrom4([4]byte{198, 18, 7, byte(10 + i)})); err != nil {
			t.Fatal(err)
		}
	}
	if err := second.AddLocalAddr(a6); err != nil {
		t.Errorf("adding a known address again: %v", err)
	}
	if err := second.AddLocalAddr(netip.MustParseAddr("198.18.7.99")); !errors.Is(err, ErrTooManyAddrs) {
		t.Errorf("one address more than the table holds: %v, want ErrTooManyAddrs", err)
	}
}

// An entry in the middle of an update (odd gen) or never written whole
// (gen 0) is not acted on: the packet goes to userspace, untouched, even
// where the fields would forward it; SetSession leaves an even gen, and
// DeleteSession an emptied entry with an odd one.
func TestSessionUpdateNotActedOnMidway(t *testing.T) {
	labtest.RequirePrivileged(t)
	l := newLab(t, testbed.WithStaticNeighbors())
	caller := ap(l.tri.CallerIP, 20000)
	key := ap(l.relayA, 30000)
	sess := Session{Action: ActionForward, Expect: caller, OutSrc: ap(l.relayB, 30002), OutDst: ap(l.tri.CalleeIP, 40000)}
	if err := l.dp.SetSession(key, sess); err != nil {
		t.Fatal(err)
	}
	idx := l.dp.live[key].idx
	var r relayXtrSess
	if err := l.dp.objs.XtrSessionsV3.Lookup(idx, &r); err != nil {
		t.Fatal(err)
	}
	if r.Gen == 0 || r.Gen&1 != 0 {
		t.Fatalf("installed entry's gen %d: want even, not 0", r.Gen)
	}
	in := frame{srcMAC: l.callerEnd.MAC, dstMAC: l.inIf.MAC, src: caller, dst: key, payload: rtp(0, 1)}.bytes()
	if ret, _ := l.run(t, l.inIf.Index, append([]byte(nil), in...)); ret != xdpRedirect {
		t.Fatalf("installed session: action %d, want redirect", ret)
	}
	for _, gen := range []uint32{r.Gen | 1, 0} {
		midway := r
		midway.Gen = gen
		if err := l.dp.objs.XtrSessionsV3.Put(idx, &midway); err != nil {
			t.Fatal(err)
		}
		before, _ := l.dp.Reasons()
		ret, out := l.run(t, l.inIf.Index, append([]byte(nil), in...))
		after, _ := l.dp.Reasons()
		if ret != xdpPass || !bytes.Equal(out, in) {
			t.Errorf("gen %d: action %d, frame changed %v; want it passed untouched", gen, ret, !bytes.Equal(out, in))
		}
		if d := after.Sub(before); d[ReasonPassUserspace] != 1 {
			t.Errorf("gen %d: reasons moved %v, want pass_userspace", gen, d)
		}
	}
	if err := l.dp.SetSession(key, sess); err != nil { // from the odd entry as last written
		t.Fatal(err)
	}
	if ret, _ := l.run(t, l.inIf.Index, append([]byte(nil), in...)); ret != xdpRedirect {
		t.Fatalf("rewritten session: action %d, want redirect", ret)
	}
	if err := l.dp.DeleteSession(key); err != nil {
		t.Fatal(err)
	}
	if err := l.dp.objs.XtrSessionsV3.Lookup(idx, &r); err != nil {
		t.Fatal(err)
	}
	if r.Flags != 0 || r.Gen&1 == 0 {
		t.Errorf("deleted entry: flags %#x gen %d; want no flags, odd gen", r.Flags, r.Gen)
	}
	if ret, _ := l.run(t, l.inIf.Index, append([]byte(nil), in...)); ret != xdpDrop {
		t.Errorf("deleted session: action %d, want drop (no session)", ret)
	}
}
