package signalling

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
)

// TestCDRCoalesce: within a batch a call's later row replaces its live
// row, a late live row never replaces its CDR, and two CDRs of one sid
// are both kept (each may carry a recording).
func TestCDRCoalesce(t *testing.T) {
	row := func(sid, status string) cdrItem { return cdrItem{call: store.Call{Sid: sid, Status: status}} }
	rec := &store.Recording{CallSid: "CA2"}
	cdr2 := row("CA2", "completed")
	cdr2.rec = rec
	got := coalesce([]cdrItem{
		row("CA1", store.CallRinging),
		row("CA2", store.CallRinging),
		row("CA1", store.CallInProgress),
		cdr2,
		row("CA2", store.CallInProgress), // late: after its CDR
		row("CA1", "completed"),
		row("CA3", "failed"),
		row("CA3", "failed"),
	})
	want := []struct{ sid, status string }{{"CA1", "completed"}, {"CA2", "completed"}, {"CA3", "failed"}, {"CA3", "failed"}}
	if len(got) != len(want) {
		t.Fatalf("coalesced to %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].call.Sid != w.sid || got[i].call.Status != w.status {
			t.Errorf("row %d: %s %s, want %s %s", i, got[i].call.Sid, got[i].call.Status, w.sid, w.status)
		}
	}
	if got[1].rec != rec {
		t.Error("the CDR lost its recording")
	}
}

// TestCDRWriterStore: through a real SQLite store, every call ends as
// its CDR whatever batches its rows fell into.
func TestCDRWriterStore(t *testing.T) {
	p := provision(t)
	w := newCDRWriter(context.Background(), p.st, zerolog.Nop())
	calls := cdrCalls(p, 300)
	writeCallRows(w, calls)
	w.close()
	for _, c := range calls {
		got, err := p.st.Call(context.Background(), p.account, c.Sid)
		if err != nil {
			t.Fatalf("%s: %v", c.Sid, err)
		}
		if got.Status != "completed" || got.Duration != 1 {
			t.Fatalf("%s: status %q duration %d, want completed 1", c.Sid, got.Status, got.Duration)
		}
	}
}

// BenchmarkCDRWriter: one call's three rows (ringing, in-progress, CDR)
// through the writer into a SQLite file, per op.
func BenchmarkCDRWriter(b *testing.B) {
	p := provision(b)
	w := newCDRWriter(context.Background(), p.st, zerolog.Nop())
	calls := cdrCalls(p, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	writeCallRows(w, calls)
	w.close()
}

// BenchmarkCDRWriterPaced: calls' rows at 1,000 calls per second, as
// calls make them (not as fast as the writer takes them, which fills
// every batch): the process's CPU time per call (cpu-µs/call) is the
// writer's cost, batches as small as the pace makes them.
func BenchmarkCDRWriterPaced(b *testing.B) {
	p := provision(b)
	w := newCDRWriter(context.Background(), p.st, zerolog.Nop())
	calls := cdrCalls(p, b.N)
	const cps = 1000
	tick := time.NewTicker(time.Second / cps)
	defer tick.Stop()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	writeCallRows(w, calls, func() { <-tick.C })
	w.close()
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cdrCalls are n answered one-second calls on the acme trunk.
func cdrCalls(p provisioned, n int) []store.Call {
	start := time.Now().Add(-time.Minute)
	out := make([]store.Call, n)
	for i := range out {
		out[i] = store.Call{Sid: store.NewSid(store.PrefixCall), AccountSid: p.account, TrunkSid: p.acme.Sid,
			Direction: store.DirectionTerminating, From: "+14155550100", To: "+16505550100", Edge: "lab",
			Start: start, Answer: start.Add(time.Second), End: start.Add(2 * time.Second)}
	}
	return out
}

// writeCallRows queues the calls' rows as calls make them: ringing at
// admission, in-progress a few ms later at the answer, the CDR once the
// call ends, here cdrLag calls later (more than a batch: a call's CDR
// never meets its live rows in one batch, as in xtrunk bench sip's 1 s
// calls at hundreds of calls per second).
func writeCallRows(w *cdrWriter, calls []store.Call, pace ...func()) {
	const cdrLag = 2 * cdrBatch
	for i := range len(calls) + cdrLag {
		for _, f := range pace {
			f()
		}
		if i < len(calls) {
			live := calls[i]
			live.Status, live.Answer, live.End = store.CallRinging, time.Time{}, time.Time{}
			w.add(cdrItem{call: live})
			live.Status, live.Answer = store.CallInProgress, calls[i].Answer
			w.add(cdrItem{call: live})
		}
		if j := i - cdrLag; j >= 0 {
			c := calls[j]
			c.Status, c.Duration, c.SIPResponseCode, c.HangupCause = "completed", 1, 200, "caller: BYE"
			w.add(cdrItem{call: c})
		}
	}
}

// TestCDRWriterNeverWaits: with the store's writes held up (a store that
// falls behind), queuing a call's rows returns at once however many wait
// — call setup never stalls behind the store — the backlog is visible,
// and once the store takes writes again every CDR is written. Past the
// queue's limit live rows are dropped and counted; CDRs never.
func TestCDRWriterNeverWaits(t *testing.T) {
	p := provision(t)
	ctx := context.Background()
	held := make(chan struct{})
	unlock := sync.OnceFunc(func() { close(held) })
	defer unlock()
	w := newCDRWriter(ctx, p.st, zerolog.Nop())
	w.upsert = func(ctx context.Context, cs []store.Call) ([]store.Call, error) {
		<-held
		return p.st.UpsertCalls(ctx, cs)
	}
	var dropped atomic.Int64
	w.dropped = func() { dropped.Add(1) }
	calls := cdrCalls(p, 2000) // 6,000 rows: the old channel took 1,024 and then blocked
	queued := make(chan struct{})
	go func() {
		defer close(queued)
		writeCallRows(w, calls)
	}()
	select {
	case <-queued:
	case <-time.After(30 * time.Second):
		t.Fatal("queuing rows waited for the store")
	}
	if n := w.backlog(); n < len(calls) {
		t.Errorf("backlog %d rows with the store held up, want at least the %d CDRs", n, len(calls))
	}
	// At the limit a live row is refused, a CDR queued.
	live := calls[0]
	live.Status = store.CallInProgress
	if got := w.queue(cdrItem{call: live}, 1); got != cdrFull {
		t.Errorf("a live row past the limit: %d, want cdrFull", got)
	}
	cdr := calls[0]
	cdr.Status, cdr.Duration = "completed", 1
	if got := w.queue(cdrItem{call: cdr}, 1); got != cdrQueued {
		t.Errorf("a CDR past the limit: %d, want cdrQueued", got)
	}
	unlock()
	w.close()
	if dropped.Load() != 0 {
		t.Errorf("%d live rows dropped under the default limit", dropped.Load())
	}
	for _, c := range calls {
		got, err := p.st.Call(ctx, p.account, c.Sid)
		if err != nil {
			t.Fatalf("%s: %v", c.Sid, err)
		}
		if got.Status != "completed" {
			t.Fatalf("%s: status %q, want completed", c.Sid, got.Status)
		}
	}
	if n := w.backlog(); n != 0 {
		t.Errorf("backlog %d after close", n)
	}
}
