package signalling

import (
	"fmt"
	"testing"
	"time"
)

// A call's ladder keeps its first half and its latest messages: a long
// call's re-INVITEs do not grow it, its setup stays visible.
func TestLadderBounded(t *testing.T) {
	var l ladder
	for i := range 100 {
		l.add("A", "in", fmt.Sprintf("m%d", i))
	}
	ev := l.snapshot()
	if len(ev) != maxLadder || ev[0].Line != "m0" || ev[maxLadder/2-1].Line != fmt.Sprintf("m%d", maxLadder/2-1) ||
		ev[maxLadder/2].Line != fmt.Sprintf("m%d", 100-maxLadder/2) || ev[maxLadder-1].Line != "m99" || l.more != 100-maxLadder {
		t.Fatalf("ladder %v (more %d)", ev, l.more)
	}
}

// The ladder's compact events come back as the SIPEvents added: legs,
// directions (the end marker's "-" too), lines and times.
func TestLadderSnapshot(t *testing.T) {
	var l ladder
	before := time.Now().UTC()
	l.add("A", "in", "INVITE sip:+14155550123@edge")
	l.add("B", "out", "INVITE sip:+14155550123@carrier")
	l.add("-", "-", "end: normal clearing")
	after := time.Now().UTC()
	ev := l.snapshot()
	want := []SIPEvent{
		{Leg: "A", Dir: "in", Line: "INVITE sip:+14155550123@edge"},
		{Leg: "B", Dir: "out", Line: "INVITE sip:+14155550123@carrier"},
		{Leg: "-", Dir: "-", Line: "end: normal clearing"},
	}
	if len(ev) != len(want) {
		t.Fatalf("snapshot %+v", ev)
	}
	for i, e := range ev {
		if e.Leg != want[i].Leg || e.Dir != want[i].Dir || e.Line != want[i].Line {
			t.Errorf("event %d = %+v, want %+v", i, e, want[i])
		}
		if e.At.Before(before) || e.At.After(after) || e.At.Location() != time.UTC {
			t.Errorf("event %d at %v, want UTC within [%v, %v]", i, e.At, before, after)
		}
	}
}

// BenchmarkLadderCall is one call's ladder through the B2BUA: setup and
// teardown on both legs, 14 messages.
func BenchmarkLadderCall(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var l ladder
		for range 7 {
			l.add("A", "in", "SIP/2.0 200 OK")
			l.add("B", "out", "SIP/2.0 200 OK")
		}
	}
}
