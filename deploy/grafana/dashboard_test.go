// Package grafana holds xtrunk's Grafana dashboard (xtrunk-noc.json) and
// the test that checks its structure, standing in for Grafana's own
// schema check (Grafana is not packaged for Debian).
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Dashboard is the part of Grafana's dashboard model (schemaVersion 39)
// the checks read.
type Dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel.
type Panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *Datasource     `json:"datasource"`
	GridPos    *GridPos        `json:"gridPos"`
	Targets    []Target        `json:"targets"`
	Panels     []Panel         `json:"panels"`
	Field      json.RawMessage `json:"fieldConfig"`
}

// Datasource names a data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// GridPos places a panel on the 24-column grid.
type GridPos struct{ H, W, X, Y int }

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

var varRef = regexp.MustCompile(`\$\{?(\w+)\}?`)

// builtin are Grafana's global variables, defined without templating.
var builtin = map[string]bool{"__interval": true, "__rate_interval": true, "__range": true, "__interval_ms": true, "__range_s": true}

// TestDashboard: the dashboard parses as Grafana's model, and every panel
// is complete — a unique id, a place on the grid, a Prometheus data
// source, targets with a refId and a PromQL expression — and every
// variable a panel uses is defined.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("xtrunk-noc.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	var d Dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want both set and a schema of Grafana 9+", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		if v.Name == "" || v.Type == "" || vars[v.Name] {
			t.Errorf("variable %q (%s): unnamed, untyped or defined twice", v.Name, v.Type)
		}
		vars[v.Name] = true
	}
	ids := map[int]string{}
	exprs := 0
	for _, p := range flatten(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID <= 0 {
			t.Errorf("panel %q: id %d not unique and positive (also %q)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: no place on the 24-column grid (%+v)", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: data source %+v, want prometheus", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %+v lacks an expr or a unique refId", p.Title, tg)
			}
			refs[tg.RefID] = true
			exprs++
		}
		uses := []string{}
		if p.Datasource != nil {
			uses = append(uses, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			uses = append(uses, tg.Expr)
			if tg.Datasource != nil {
				uses = append(uses, tg.Datasource.UID)
			}
		}
		for _, s := range uses {
			for _, m := range varRef.FindAllStringSubmatch(s, -1) {
				if !vars[m[1]] && !builtin[m[1]] {
					t.Errorf("panel %q uses $%s, which is not defined", p.Title, m[1])
				}
			}
		}
	}
	if exprs < 20 {
		t.Errorf("%d expressions: the dashboard lost its panels", exprs)
	}
}

// flatten lists the panels, those of collapsed rows included.
func flatten(ps []Panel) []Panel {
	var out []Panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}
