package signalling

import (
	"context"
	"sync"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// Live quality in the API: every liveQualityEvery, sip asks the relay for
// the media so far of each answered call (one NG query per call, at most
// maxAdminQueries at once) and rewrites the call's live row with each
// leg's packets, loss, jitter and MOS, so that
// GET /Calls?Status=in-progress shows them (the API process does not talk
// to the relay). The rows go through the CDR writer's batches: one row
// per answered call per period, never one per packet; a row queued as the
// call ends never overwrites its CDR (store.UpsertCalls).

// liveQualityEvery is how often the live rows' quality is refreshed:
// fresh enough for a NOC watching a bad call, cheap enough at thousands
// of calls (a row and a query per call per period).
const liveQualityEvery = 5 * time.Second

// refreshLiveQuality runs until ctx ends.
func (s *Server) refreshLiveQuality(ctx context.Context) {
	t := time.NewTicker(liveQualityEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refreshLiveOnce(ctx)
		}
	}
}

// refreshLiveOnce rewrites the live rows of the answered calls with
// their quality so far.
func (s *Server) refreshLiveOnce(ctx context.Context) {
	sem := make(chan struct{}, maxAdminQueries)
	var wg sync.WaitGroup
	for _, c := range s.callsInProgress() {
		c.mu.Lock()
		answered := c.answered
		c.mu.Unlock()
		if !answered || c.p.fromEdge != "" {
			continue // ringing: no media to speak of; a hand-over's row is the other edge's
		}
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
