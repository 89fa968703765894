package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Live calls: the signalling writes a call's row when it is admitted
// (ringing) and again when it is answered (in-progress); the CDR written
// at the end replaces the row (UpsertCalls). Two small writes per call,
// batched with the CDRs, never one per packet: the API lists calls
// while they happen (Status=ringing, Status=in-progress).

// Statuses of a call in progress.
const (
	CallRinging    = "ringing"
	CallInProgress = "in-progress"
)

// LiveCallStatuses are the statuses of calls in progress.
var LiveCallStatuses = []string{CallRinging, CallInProgress}

var allCallStatuses = append(append([]string{}, CallStatuses...), LiveCallStatuses...)

// upsertCDRSQL writes a call's CDR over its live row if it has one;
// upsertLiveSQL writes a live row, but never over a finished call (a late
// "answered" after the CDR). The first write's created_us stays, so the
// call keeps its place in listings.
var (
	upsertCDRSQL  = insertCallSQL + ` ON CONFLICT (sid) DO UPDATE SET ` + upsertSet()
	upsertLiveSQL = upsertCDRSQL + ` WHERE calls.status IN ('` + CallRinging + `', '` + CallInProgress + `')`
)

func upsertSet() string {
	var sets []string
	for _, c := range strings.Split(callCols, ",") {
		c = strings.TrimSpace(c)
		if c == "sid" || c == "created_us" {
			continue
		}
		sets = append(sets, c+" = excluded."+c)
	}
	return strings.Join(sets, ", ")
}

// UpsertCalls writes calls' rows in one transaction: live rows (status
// ringing or in-progress) and CDRs, a CDR replacing its live row.
func (s *Store) UpsertCalls(ctx context.Context, cs []Call) ([]Call, error) {
	return s.writeCalls(ctx, cs, func(c Call) string {
		if c.Status == CallRinging || c.Status == CallInProgress {
			return upsertLiveSQL
		}
		return upsertCDRSQL
	})
}

// FinishLiveCalls ends the live rows edge left behind (a signalling
// process that died with calls up): answered ones completed, the others
// failed, ended at end with cause; the answered ones' duration is
// rounded as AnsweredSeconds does. It returns how many there were.
func (s *Store) FinishLiveCalls(ctx context.Context, edge string, end time.Time, cause string) (int64, error) {
	res, err := s.execWrite(ctx, `UPDATE calls SET status = CASE WHEN answer_us > 0 THEN 'completed' ELSE 'failed' END,
		end_us = ?, hangup_cause = ?, updated_us = ?,
		duration = CASE WHEN answer_us > 0 AND ? > answer_us THEN (? - answer_us + 500000) / 1000000 ELSE 0 END
		WHERE edge = ? AND status IN ('`+CallRinging+`', '`+CallInProgress+`')`,
		end.UnixMicro(), cause, end.UnixMicro(), end.UnixMicro(), end.UnixMicro(), edge)
	if err != nil {
		return 0, classify(fmt.Errorf("store: finish live calls: %w", err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}
