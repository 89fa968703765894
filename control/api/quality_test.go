package api

import (
	"encoding/json"
	"testing"

	"github.com/xtrunk/xtrunk/control/store"
)

// The Call resource's "quality": per leg, packets received, lost, the
// loss over expected packets, jitter and MOS; {} on a call without media.
func TestCallQuality(t *testing.T) {
	c := call(store.Call{Sid: "CA0", AccountSid: "AC0", Status: store.CallInProgress, Quality: []store.LegQuality{
		{Leg: "customer", PacketsReceived: 950, PacketsLost: 50, JitterMs: 3.5, MOS: 3.9876},
		{Leg: "carrier", PacketsReceived: 1000, JitterMs: 0.25, MOS: 4.41},
	}})
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Quality map[string]map[string]float64 `json:"quality"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	cu, ca := got.Quality["customer"], got.Quality["carrier"]
	if cu["packets"] != 950 || cu["packets_lost"] != 50 || cu["loss_pct"] != 5 || cu["jitter_ms"] != 3.5 || cu["mos"] != 3.99 {
		t.Errorf("customer leg: %v", cu)
	}
	if ca["packets"] != 1000 || ca["loss_pct"] != 0 || ca["mos"] != 4.41 {
		t.Errorf("carrier leg: %v", ca)
	}
	b, _ = json.Marshal(call(store.Call{Sid: "CA1", AccountSid: "AC0", Status: store.CallRinging}))
	var empty struct {
		Quality json.RawMessage `json:"quality"`
	}
	if json.Unmarshal(b, &empty) != nil || string(empty.Quality) != "{}" {
		t.Errorf("a call without media: quality %s", empty.Quality)
	}
}
