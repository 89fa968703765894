// Package render draws one of xtrunk's Grafana dashboards (deploy/grafana)
// as a PNG from the same PromQL, for the README's screenshot and for
// hosts without Grafana: every panel's targets run against a Prometheus
// HTTP API (query_range), and the image is laid out on the dashboard's
// 24-column grid — rows with their titles, time series as lines with a
// legend, stat panels as big numbers (value mappings and thresholds
// honoured), tables as label rows — values in the panel's unit. It is
// not Grafana: it draws what the xtrunk dashboards use, nothing more.
package render

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Options say where the data comes from and what time it covers.
type Options struct {
	Prometheus string       // base URL of the Prometheus HTTP API, e.g. http://127.0.0.1:9090
	Client     *http.Client // nil: http.DefaultClient
	End        time.Time    // zero: now
	Range      time.Duration
	Step       time.Duration // zero: Range/240, at least 1 s
	// Vars are the dashboard variables' values; a variable not given
	// takes its "All" value (allValue, else ".*").
	Vars  map[string]string
	Width int // image width in pixels (zero: 1800)
}

// Panel is what was drawn for one panel (rows left out).
type Panel struct {
	Title  string
	Type   string   // timeseries, stat, table
	Series int      // series drawn (all types)
	Values []string // stat: the values shown
	Err    string   // a query that failed (the panel says so too)
}

// Result is the image and what each panel showed.
type Result struct {
	PNG    []byte
	Panels []Panel
}

// dashboard is the part of Grafana's dashboard model the renderer reads.
type dashboard struct {
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			AllValue string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type    string                   `json:"type"`
	Title   string                   `json:"title"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Field   struct {
		Defaults struct {
			Unit       string     `json:"unit"`
			Thresholds thresholds `json:"thresholds"`
			Mappings   []mapping  `json:"mappings"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type thresholds struct {
	Steps []struct {
		Color string   `json:"color"`
		Value *float64 `json:"value"`
	} `json:"steps"`
}

// mapping is a value mapping of type "value": value → text and colour.
type mapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text  string `json:"text"`
		Color string `json:"color"`
	} `json:"options"`
}

// Layout in pixels: Grafana's grid row is 30 px; a header band on top.
const (
	gridRow   = 30
	headerPx  = 56
	marginPx  = 6
	defaultW  = 1800
	maxPoints = 240
	// maxPanels and maxRows bound the image a dashboard can ask for.
	maxPanels = 200
	maxRows   = 400
)

var varRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// Render queries every panel of the dashboard JSON and draws the PNG.
func Render(ctx context.Context, dashboardJSON []byte, o Options) (Result, error) {
	var d dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrDashboard, err)
	}
	o = o.withDefaults()
	vars := map[string]string{"__rate_interval": "1m", "__interval": o.Step.String(), "__range": o.Range.String()}
	for _, v := range d.Templating.List {
		val, ok := o.Vars[v.Name]
		if !ok {
			val = v.AllValue
			if val == "" {
				val = ".*"
			}
		}
		vars[v.Name] = val
	}
	var panels []panel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	if len(panels) > maxPanels {
		return Result{}, fmt.Errorf("%w: %d panels, at most %d", ErrDashboard, len(panels), maxPanels)
	}
	rows := 0
	for i := range panels {
		g := &panels[i].GridPos
		if g.X < 0 || g.Y < 0 || g.W <= 0 || g.H <= 0 || g.X+g.W > 24 || g.Y+g.H > maxRows {
			return Result{}, fmt.Errorf("%w: panel %q: gridPos %+v off the 24-column grid (or past %d rows)", ErrDashboard, panels[i].Title, *g, maxRows)
		}
		rows = max(rows, g.Y+g.H)
	}
	if rows == 0 {
		return Result{}, fmt.Errorf("%w: no panels", ErrDashboard)
	}
	wpx, hpx := o.Width, headerPx+rows*gridRow+marginPx
	img := vgimg.NewWith(vgimg.UseWH(px(wpx), px(hpx)), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(bgColor))
	dc := draw.New(img)
	start := o.End.Add(-o.Range)
	drawHeader(dc, d.Title, start, o.End, wpx, hpx)
	var res Result
	for _, p := range panels {
		// the panel's rectangle, in pixels from the top left
		x0 := p.GridPos.X * wpx / 24
		x1 := (p.GridPos.X + p.GridPos.W) * wpx / 24
		y0 := headerPx + p.GridPos.Y*gridRow
		y1 := y0 + p.GridPos.H*gridRow
		c := draw.Crop(dc, px(x0+marginPx/2), px(x1-wpx)-px(marginPx/2), px(hpx-y1)+px(marginPx/2), px(y0)*-1-px(marginPx/2))
		if p.Type == "row" {
			drawRow(c, p.Title)
			continue
		}
		data, errMsg := o.query(ctx, p, vars, start)
		out := Panel{Title: p.Title, Type: p.Type, Err: errMsg}
		switch p.Type {
		case "stat":
			out.Values = drawStat(c, p, data)
		case "table":
			drawTable(c, p, data)
		default:
			drawTimeSeries(c, p, data, start, o.End)
		}
		for _, s := range data {
			out.Series += len(s.series)
		}
		res.Panels = append(res.Panels, out)
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrDraw, err)
	}
	res.PNG = buf.Bytes()
	return res, nil
}

func (o Options) withDefaults() Options {
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.End.IsZero() {
		o.End = time.Now()
	}
	if o.Range <= 0 {
		o.Range = time.Hour
	}
	if o.Step <= 0 {
		o.Step = max(o.Range/maxPoints, time.Second)
	}
	if o.Width <= 0 || o.Width > 8000 {
		o.Width = defaultW
	}
	return o
}

// targetData is one target's series and how to name them.
type targetData struct {
	series []series
	legend string
}

// query runs the panel's targets with the variables substituted; the
// message of the first failure, if any.
func (o Options) query(ctx context.Context, p panel, vars map[string]string, start time.Time) ([]targetData, string) {
	var out []targetData
	var msg string
	for _, t := range p.Targets {
		expr := varRef.ReplaceAllStringFunc(t.Expr, func(m string) string {
			name := strings.Trim(m, "${}")
			name, _, _ = strings.Cut(name, ":")
			if v, ok := vars[name]; ok {
				return v
			}
			return m
		})
		ss, err := queryRange(ctx, o.Client, o.Prometheus, expr, start, o.End, o.Step)
		if err != nil && msg == "" {
			msg = err.Error()
		}
		out = append(out, targetData{series: ss, legend: t.LegendFormat})
	}
	return out, msg
}

// px is n pixels at the image's DPI.
func px(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }

const dpi = 96
