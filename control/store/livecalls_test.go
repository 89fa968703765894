package store_test

import (
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// A call's live row (ringing, then in-progress) is listed by status; its
// CDR replaces it, keeping its place; a late live write does not undo the
// CDR; FinishLiveCalls ends an edge's leftover rows and only those.
func TestLiveCalls(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		t0 := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
		live := store.Call{Sid: store.NewSid(store.PrefixCall), AccountSid: a.Sid, Direction: store.DirectionTerminating,
			From: "+14155550100", To: "+16505550199", Status: store.CallRinging, Start: t0, Edge: "ashburn"}
		if _, err := s.UpsertCalls(c, []store.Call{live}); err != nil {
			t.Fatal(err)
		}
		list := func(status string) []store.Call {
			cs, _, err := s.ListCalls(c, a.Sid, store.CallFilter{Status: status}, store.Page{Size: 50})
			if err != nil {
				t.Fatal(err)
			}
			return cs
		}
		if got := list(store.CallRinging); len(got) != 1 || got[0].Sid != live.Sid {
			t.Fatalf("ringing: %+v", got)
		}
		first, _ := s.Call(c, a.Sid, live.Sid)
		answered := live
		answered.Status, answered.Answer = store.CallInProgress, t0.Add(2*time.Second)
		if _, err := s.UpsertCalls(c, []store.Call{answered}); err != nil {
			t.Fatal(err)
		}
		if got := list(store.CallInProgress); len(got) != 1 || !got[0].Answer.Equal(answered.Answer) || len(list(store.CallRinging)) != 0 {
			t.Fatalf("in-progress: %+v", got)
		}
		cdr := answered
		cdr.Status, cdr.End, cdr.Duration, cdr.HangupCause = "completed", t0.Add(12*time.Second), 10, "caller: BYE"
		if _, err := s.UpsertCalls(c, []store.Call{cdr, answered}); err != nil { // a stale live write after the CDR
			t.Fatal(err)
		}
		got, err := s.Call(c, a.Sid, live.Sid)
		if err != nil || got.Status != "completed" || got.Duration != 10 || got.HangupCause != "caller: BYE" || !got.Created.Equal(first.Created) {
			t.Fatalf("after the CDR: %+v %v (created %v)", got, err, first.Created)
		}

		// leftovers: ashburn's two (one answered), dublin's one
		left := []store.Call{
			{AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: store.CallRinging, Start: t0, Edge: "ashburn"},
			{AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: store.CallInProgress, Start: t0, Answer: t0, Edge: "ashburn"},
			{AccountSid: a.Sid, Direction: store.DirectionTerminating, Status: store.CallRinging, Start: t0, Edge: "dublin"},
		}
		if left, err = s.UpsertCalls(c, left); err != nil {
			t.Fatal(err)
		}
		// 29.5 s answered: rounded to 30, as AnsweredSeconds does.
		n, err := s.FinishLiveCalls(c, "ashburn", t0.Add(29*time.Second+500*time.Millisecond), "system: signalling restarted")
		if err != nil || n != 2 {
			t.Fatalf("FinishLiveCalls: %d %v", n, err)
		}
		for i, want := range []string{"failed", "completed", store.CallRinging} {
			got, _ := s.Call(c, a.Sid, left[i].Sid)
			if got.Status != want {
				t.Errorf("leftover %d: %+v, want %s", i, got, want)
			}
		}
		if got, _ := s.Call(c, a.Sid, left[1].Sid); got.Duration != 30 || got.HangupCause != "system: signalling restarted" {
			t.Errorf("finished answered leftover: %+v", got)
		}
	})
}

// An answered call's Duration is its seconds rounded to the nearest, a
// half second up.
func TestAnsweredSeconds(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 21, 42, 7, 0, time.UTC)
	for _, tc := range []struct {
		answer time.Time
		end    time.Duration // after t0
		want   int
	}{
		{time.Time{}, 5 * time.Second, 0},
		{t0, 0, 0},
		{t0, -time.Second, 0},
		{t0, 499900 * time.Microsecond, 0},
		{t0, 500 * time.Millisecond, 1},
		{t0, time.Second + 499*time.Millisecond, 1},
		{t0, 2*time.Second + 8*time.Millisecond, 2},
		{t0, 10 * time.Second, 10},
	} {
		if got := store.AnsweredSeconds(tc.answer, t0.Add(tc.end)); got != tc.want {
			t.Errorf("AnsweredSeconds(%v, +%v) = %d, want %d", tc.answer, tc.end, got, tc.want)
		}
	}
}
