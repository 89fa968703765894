package route

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestWeights606020(t *testing.T) {
	targets := []Target[string]{{0, 60, "a"}, {0, 20, "b"}, {0, 20, "c"}, {10, 1, "backup"}}
	rnd := rand.New(rand.NewPCG(1, 2))
	const n = 1000
	first := map[string]int{}
	second := map[string]int{}
	for i := 0; i < n; i++ {
		o := Order(targets, rnd)
		if len(o) != 4 || o[3].Value != "backup" {
			t.Fatalf("priority 10 must come last: %v", o)
		}
		first[o[0].Value]++
		if o[0].Value == "a" {
			second[o[1].Value]++
		}
	}
	for v, want := range map[string]float64{"a": 60, "b": 20, "c": 20} {
		got := 100 * float64(first[v]) / n
		if math.Abs(got-want) > 5 {
			t.Errorf("%s first in %.1f%% of calls, want %.0f ± 5", v, got, want)
		}
	}
	// with a down, b and c split 50/50
	share := 100 * float64(second["b"]) / float64(first["a"])
	if math.Abs(share-50) > 5 {
		t.Errorf("after a fails, b takes %.1f%%, want 50 ± 5", share)
	}
}

func TestPriorityOrder(t *testing.T) {
	o := Order([]Target[int]{{20, 1, 3}, {0, 1, 1}, {10, 1, 2}}, rand.New(rand.NewPCG(3, 4)))
	for i, want := range []int{1, 2, 3} {
		if o[i].Value != want {
			t.Fatalf("order %v", o)
		}
	}
}

func TestFailover(t *testing.T) {
	no := []int{200, 202, 400, 404, 405, 410, 416, 482, 484, 486, 600, 603, 604, 606, 699}
	yes := []int{401, 403, 407, 408, 480, 487, 488, 500, 502, 503, 504, 580}
	for _, s := range no {
		if Failover(s) {
			t.Errorf("%d must not fail over", s)
		}
	}
	for _, s := range yes {
		if !Failover(s) {
			t.Errorf("%d must fail over", s)
		}
	}
}
