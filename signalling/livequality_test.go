package signalling

import (
	"fmt"
	"testing"
	"time"
)

// TestLiveQualityPaced: a call's live row is first due liveQualityEvery
// after its answer and then every period; ringing calls and hand-overs
// never; a tick takes at most its budget, the longest due first, so with
// more calls up than the rate covers each waits its turn instead of the
// relay getting a query per call at once.
func TestLiveQualityPaced(t *testing.T) {
	s := &Server{calls: map[string]*call{}}
	t0 := time.Now()
	add := func(id string, answered bool, answer time.Time, fromEdge string) *call {
		c := &call{id: id, answered: answered, answer: answer, p: &plan{fromEdge: fromEdge}}
		s.calls[id] = c
		return c
	}
	add("ringing", false, time.Time{}, "")
	add("handover", true, t0, "edge-b")
	for i := range 10 {
		add(fmt.Sprintf("c%d", i), true, t0.Add(time.Duration(i)*time.Second), "")
	}
	ids := func(cs []*call) (out []string) {
		for _, c := range cs {
			out = append(out, c.id)
		}
		return out
	}

	if got := s.dueForQuality(t0.Add(liveQualityEvery-time.Millisecond), 100); len(got) != 0 {
		t.Fatalf("due before %v: %v", liveQualityEvery, ids(got))
	}
	// 5.5 s: c0 (answered at 0 s) is due, c1 (1 s) not yet.
	now := t0.Add(liveQualityEvery + 500*time.Millisecond)
	if got := ids(s.dueForQuality(now, 100)); fmt.Sprint(got) != "[c0]" {
		t.Fatalf("at 5.5 s: %v, want [c0]", got)
	}
	if got := s.dueForQuality(now, 100); len(got) != 0 {
		t.Fatalf("taken twice: %v", ids(got))
	}
	// 20 s: all ten are due; a budget of 3 takes the longest due first.
	now = t0.Add(20 * time.Second)
	if got := ids(s.dueForQuality(now, 3)); fmt.Sprint(got) != "[c1 c2 c3]" {
		t.Fatalf("at 20 s, budget 3: %v, want [c1 c2 c3] (c0 was refreshed at 5.5 s)", got)
	}
	if got := ids(s.dueForQuality(now, 100)); len(got) != 7 {
		t.Fatalf("at 20 s the rest: %v, want the other 7", got)
	}
	// c1 refreshed at 20 s is next due at 25 s.
	if got := s.dueForQuality(t0.Add(24*time.Second), 100); len(got) != 0 {
		t.Fatalf("due again before a period: %v", ids(got))
	}
	if got := s.dueForQuality(t0.Add(25*time.Second), 100); len(got) != 10 {
		t.Fatalf("at 25 s: %d due, want 10", len(got))
	}
}
