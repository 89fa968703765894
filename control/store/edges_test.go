package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// Edges register and heartbeat in the shared store; a clean shutdown
// zeroes the heartbeat; a CDR's edge note round-trips.
func TestEdgesRegistry(t *testing.T) {
	storetest.Run(t, func(t *testing.T, backend string) {
		s, a := setup(t, backend)
		c := ctx(t)
		t0 := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
		if err := s.HeartbeatEdge(c, store.Edge{Name: "ashburn", SIPAddress: "198.51.100.1:5060", Started: t0, Heartbeat: t0}); err != nil {
			t.Fatal(err)
		}
		if err := s.HeartbeatEdge(c, store.Edge{Name: "dublin", SIPAddress: "sip:198.51.100.2:5070;transport=tcp", Heartbeat: t0}); err != nil {
			t.Fatal(err)
		}
		// A later heartbeat moves the time and address, keeps the start.
		if err := s.HeartbeatEdge(c, store.Edge{Name: "ashburn", SIPAddress: "198.51.100.9:5060", Heartbeat: t0.Add(5 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		es, err := s.ListEdges(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 || es[0].Name != "ashburn" || es[0].SIPAddress != "198.51.100.9:5060" ||
			!es[0].Started.Equal(t0) || !es[0].Heartbeat.Equal(t0.Add(5*time.Second)) || es[1].Name != "dublin" {
			t.Fatalf("edges: %+v", es)
		}
		if err := s.EdgeDown(c, "ashburn"); err != nil {
			t.Fatal(err)
		}
		if es, _ = s.ListEdges(c); !es[0].Heartbeat.IsZero() {
			t.Fatalf("after EdgeDown: %+v", es[0])
		}
		for _, bad := range []store.Edge{{Name: "", SIPAddress: "x:1"}, {Name: "Ash burn", SIPAddress: "x:1"}, {Name: "-a", SIPAddress: "x:1"}, {Name: "a"}} {
			if err := s.HeartbeatEdge(c, bad); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("%+v: %v", bad, err)
			}
		}
		call, err := s.InsertCall(c, store.Call{AccountSid: a.Sid, Direction: store.DirectionOriginating, Status: "completed",
			Edge: "ashburn", EdgeNote: "edge dublin is dead: left from ashburn"})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Call(c, a.Sid, call.Sid); err != nil || got.EdgeNote != "edge dublin is dead: left from ashburn" {
			t.Fatalf("%+v %v", got, err)
		}
	})
}

// ;region= takes Twilio's legacy codes; ;edge= wins over it.
func TestSipURLEdge(t *testing.T) {
	edges := []string{"ashburn", "dublin", "sao-paulo"}
	for in, want := range map[string]string{
		"sip:pbx.example.com":                        "",
		"sip:pbx.example.com;edge=Dublin":            "dublin",
		"sip:pbx.example.com;region=ie1":             "dublin",
		"sip:pbx.example.com;region=br1":             "sao-paulo",
		"sip:pbx.example.com;region=ashburn":         "ashburn",
		"sip:pbx.example.com;region=us1;edge=dublin": "dublin",
	} {
		u, err := store.ParseSipURL(in, edges)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := u.Edge(); got != want {
			t.Errorf("%s: edge %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"sip:pbx.example.com;region=jp1", "sip:pbx.example.com;edge=tokyo"} {
		if _, err := store.ParseSipURL(in, edges); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid (tokyo is not an edge)", in, err)
		}
	}
}
