package report

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestPct(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.0004: "<0.001", 0.1234: "0.123", 1: "1.0", 12.34: "12.3"} {
		if got := Pct(v); got != want {
			t.Errorf("Pct(%v) = %q, want %q", v, got, want)
		}
	}
	if CountOrNone(0) != "none" || CountOrNone(800) != "800" {
		t.Errorf("CountOrNone: %q, %q", CountOrNone(0), CountOrNone(800))
	}
	if FirstLine("a\nb") != "a" || FirstLine("a") != "a" {
		t.Error("FirstLine")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	type doc struct {
		N int `json:"n"`
	}
	path := filepath.Join(t.TempDir(), "results.json")
	if err := WriteJSON(path, doc{N: 7}); err != nil {
		t.Fatal(err)
	}
	var back doc
	if err := ReadJSON(path, &back); err != nil || back.N != 7 {
		t.Fatalf("read back %+v, %v", back, err)
	}
	var wrong []int
	if err := ReadJSON(path, &wrong); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a file of the wrong shape: %v, want an error naming it", err)
	}
}
