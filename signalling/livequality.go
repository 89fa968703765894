package signalling

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// Live quality in the API: liveQualityEvery after its answer and every
// period after (paced: see liveQualityRate), sip asks the relay for
// the media so far of each answered call (one NG query per call, at most
// maxAdminQueries at once) and rewrites the call's live row with each
// leg's packets, loss, jitter and MOS, so that
// GET /Calls?Status=in-progress shows them (the API process does not talk
// to the relay). The rows go through the CDR writer's batches: one row
// per answered call per period, never one per packet; a row queued as the
// call ends never overwrites its CDR (store.UpsertCalls).

// liveQualityEvery is how often an answered call's live row is
// refreshed, from its answer on: fresh enough for a NOC watching a bad
// call. liveQualityRate bounds the queries (and rows) a second, spread
// over liveQualityTick: with more than liveQualityRate × 5 s calls up,
// each is refreshed less often, every calls/liveQualityRate seconds. The
// cost is the relay's and the store's, so it must not grow with the calls
// up (at 20,000 calls a refresh of all every 5 s was 4,000 queries and
// rows a second), nor come in bursts that call setups queue behind.
const (
	liveQualityEvery = 5 * time.Second
	liveQualityRate  = 200
	liveQualityTick  = 200 * time.Millisecond
	// liveQualityPerTick is the calls one tick refreshes at most.
	liveQualityPerTick = liveQualityRate * int(liveQualityTick/time.Millisecond) / 1000
)

// refreshLiveQuality runs until ctx ends.
func (s *Server) refreshLiveQuality(ctx context.Context) {
	t := time.NewTicker(liveQualityTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.refreshLiveOnce(ctx, now, liveQualityPerTick)
		}
	}
}

// dueForQuality is the answered calls whose live row is due for a
// refresh at now, at most max of them, the longest due first; each is
// marked refreshed.
func (s *Server) dueForQuality(now time.Time, max int) []*call {
	type due struct {
		c  *call
		at time.Time
	}
	var all []due
	for _, c := range s.callsInProgress() {
		c.mu.Lock()
		at := c.answer
		if c.qualityAt.After(at) {
			at = c.qualityAt
		}
		ok := c.answered && c.p.fromEdge == "" // ringing: no media to speak of; a hand-over's row is the other edge's
		c.mu.Unlock()
		if ok && !at.IsZero() && !now.Before(at.Add(liveQualityEvery)) {
			all = append(all, due{c, at})
		}
	}
	if len(all) > max {
		slices.SortFunc(all, func(a, b due) int { return a.at.Compare(b.at) })
		all = all[:max]
	}
	out := make([]*call, len(all))
	for i, d := range all {
		d.c.mu.Lock()
		d.c.qualityAt = now
		d.c.mu.Unlock()
		out[i] = d.c
	}
	return out
}

// refreshLiveOnce rewrites the live rows of up to max answered calls due
// at now with their quality so far.
func (s *Server) refreshLiveOnce(ctx context.Context, now time.Time, max int) {
	sem := make(chan struct{}, maxAdminQueries)
	var wg sync.WaitGroup
	for _, c := range s.dueForQuality(now, max) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			q, customerTag, ok := s.queryMedia(ctx, c, "relay query for the live row")
			if !ok {
				return
			}
			legs := withMOS(legQuality(q, customerTag), c.codec())
			if len(legs) == 0 {
				return
			}
			row := s.liveRow(c)
			if row.Status != store.CallInProgress {
				return
			}
			row.Quality = legs
			s.cdrs.tryAdd(cdrItem{call: row, log: c.log})
		})
	}
	wg.Wait()
}

// withMOS sets each leg's MOS from its loss and jitter and the call's
// codec.
func withMOS(legs []store.LegQuality, codec string) []store.LegQuality {
	for i := range legs {
		legs[i].MOS = mos(lossRatio(legs[i]), legs[i].JitterMs, codec)
	}
	return legs
}

// tryAdd queues it unless the writer is closed or 4*cdrBatch rows wait
// already: a refresh of quality so far is skipped rather than add to a
// slow store's backlog.
func (w *cdrWriter) tryAdd(it cdrItem) bool { return w.queue(it, 4*cdrBatch) == cdrQueued }
