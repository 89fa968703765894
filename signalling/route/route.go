// Package route orders a trunk's targets (origination URIs, carrier
// gateways) for one call and says when a failed attempt may move on to the
// next: lowest priority first; within a priority, a weighted random order
// (60/20/20 means 60 % / 20 % / 20 % first choices, and with the 60 one
// down the other two split 50/50); when a whole priority fails, the next.
package route

import (
	"math/rand/v2"
	"slices"
)

// Target is one place a call can go.
type Target[T any] struct {
	Priority int // 0–65535, lower is tried first
	Weight   int // 1–65535, share among equal priorities
	Value    T
}

// Order returns the targets in the order to try them for one call.
func Order[T any](targets []Target[T], rnd *rand.Rand) []Target[T] {
	byPrio := map[int][]Target[T]{}
	var prios []int
	for _, t := range targets {
		if _, ok := byPrio[t.Priority]; !ok {
			prios = append(prios, t.Priority)
		}
		byPrio[t.Priority] = append(byPrio[t.Priority], t)
	}
	slices.Sort(prios)
	out := make([]Target[T], 0, len(targets))
	for _, p := range prios {
		out = append(out, weighted(byPrio[p], rnd)...)
	}
	return out
}

// weighted draws without replacement, each draw proportional to weight.
func weighted[T any](g []Target[T], rnd *rand.Rand) []Target[T] {
	g = append([]Target[T](nil), g...)
	out := make([]Target[T], 0, len(g))
	for len(g) > 0 {
		total := 0
		for _, t := range g {
			total += max(t.Weight, 1)
		}
		pick := rnd.IntN(total)
		i := 0
		for ; i < len(g)-1; i++ {
			pick -= max(g[i].Weight, 1)
			if pick < 0 {
				break
			}
		}
		out = append(out, g[i])
		g = append(g[:i], g[i+1:]...)
	}
	return out
}

// Failover reports whether a final SIP response to an attempt lets the call
// try the next target. It never does on 2xx, on 400, 404, 405, 410, 416,
// 482, 484, 486 (answers about the call, not the target), nor on any 6xx
// (global failures). No response at all within the attempt timeout (4 s)
// is a failover too; the caller handles that.
func Failover(status int) bool {
	switch {
	case status < 300:
		return false
	case status >= 600:
		return false
	}
	switch status {
	case 400, 404, 405, 410, 416, 482, 484, 486:
		return false
	}
	return true
}
