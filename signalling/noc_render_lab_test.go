package signalling

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/deploy/grafana/render"
)

// renderDashboard draws the Grafana dashboard from the lab's Prometheus
// with deploy/grafana/render over the lab's run: every panel is drawn,
// with a series or a stat value. With XTRUNK_NOC_SCREENSHOTS=DIR (a
// directory, relative to the repository's root) the PNG is written there
// as noc-dashboard.png: the README's screenshot.
func renderDashboard(t *testing.T, prom *promClient, span time.Duration) {
	t.Helper()
	raw, err := os.ReadFile("../deploy/grafana/xtrunk-noc.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := render.Render(ctx, raw, render.Options{Prometheus: prom.base, Client: prom.hc,
		Range: span.Round(time.Second) + 5*time.Second, Step: time.Second, Width: 1800})
	if err != nil {
		t.Fatalf("rendering the dashboard: %v", err)
	}
	want := 0
	for _, e := range dashboardPanels(t) {
		if e != "row" {
			want++
		}
	}
	if len(res.Panels) != want {
		t.Errorf("%d panels drawn, the dashboard has %d", len(res.Panels), want)
	}
	for _, p := range res.Panels {
		if p.Series == 0 || p.Type == "stat" && len(p.Values) == 0 {
			t.Errorf("panel %q (%s) drawn without data: %s", p.Title, p.Type, p.Err)
		}
	}
	if len(res.PNG) < 8 || string(res.PNG[1:4]) != "PNG" {
		t.Fatalf("not a PNG: % x", res.PNG[:min(8, len(res.PNG))])
	}
	if _, err := png.Decode(bytes.NewReader(res.PNG)); err != nil {
		t.Fatalf("the dashboard PNG does not decode: %v", err)
	}
	t.Logf("dashboard rendered: %d panels, %d bytes of PNG", len(res.Panels), len(res.PNG))
	if dir := os.Getenv("XTRUNK_NOC_SCREENSHOTS"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", dir)
		}
		out := filepath.Join(dir, "noc-dashboard.png")
		if err := os.WriteFile(out, res.PNG, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}
}

// dashboardPanels are the type of every panel of the dashboard, a
// collapsed row's included.
func dashboardPanels(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/grafana/xtrunk-noc.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Type   string  `json:"type"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		out = append(out, p.Type)
		for _, q := range p.Panels {
			out = append(out, q.Type)
		}
	}
	return out
}
