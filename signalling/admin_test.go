package signalling

import (
	"fmt"
	"testing"
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
