package render

import (
	"fmt"
	"image/color"
	"math"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Grafana's dark theme, roughly.
var (
	bgColor    = color.RGBA{R: 0x11, G: 0x12, B: 0x17, A: 0xff}
	panelColor = color.RGBA{R: 0x18, G: 0x1b, B: 0x1f, A: 0xff}
	borderCol  = color.RGBA{R: 0x2c, G: 0x30, B: 0x35, A: 0xff}
	textColor  = color.RGBA{R: 0xcc, G: 0xcc, B: 0xdc, A: 0xff}
	dimColor   = color.RGBA{R: 0x8e, G: 0x8e, B: 0x9e, A: 0xff}
	gridColor  = color.RGBA{R: 0x26, G: 0x29, B: 0x2e, A: 0xff}
	// palette is Grafana's classic series colours.
	palette = []color.RGBA{
		{R: 0x73, G: 0xbf, B: 0x69, A: 0xff}, {R: 0xf2, G: 0xcc, B: 0x0c, A: 0xff}, {R: 0x8a, G: 0xb8, B: 0xff, A: 0xff},
		{R: 0xff, G: 0x98, B: 0x30, A: 0xff}, {R: 0xf2, G: 0x49, B: 0x5c, A: 0xff}, {R: 0x57, G: 0x94, B: 0xf2, A: 0xff},
		{R: 0xb8, G: 0x77, B: 0xd9, A: 0xff}, {R: 0x70, G: 0x5d, B: 0xa0, A: 0xff}, {R: 0x37, G: 0x87, B: 0x2d, A: 0xff},
		{R: 0xfa, G: 0xde, B: 0x2a, A: 0xff},
	}
	// named are the colour names Grafana's thresholds and mappings use.
	named = map[string]color.RGBA{
		"green": {R: 0x73, G: 0xbf, B: 0x69, A: 0xff}, "red": {R: 0xf2, G: 0x49, B: 0x5c, A: 0xff},
		"yellow": {R: 0xfa, G: 0xde, B: 0x2a, A: 0xff}, "orange": {R: 0xff, G: 0x98, B: 0x30, A: 0xff},
		"blue": {R: 0x57, G: 0x94, B: 0xf2, A: 0xff}, "text": textColor,
	}
)

func textStyle(size float64, c color.Color, bold bool) draw.TextStyle {
	f := font.Font{Typeface: "Liberation", Variant: "Sans"}
	if bold {
		f.Weight = 700 // font.WeightBold
	}
	return text.Style{Color: c, Font: font.From(f, vg.Length(size)), Handler: plot.DefaultTextHandler}
}

func fillRect(c draw.Canvas, r vg.Rectangle, col color.Color) {
	c.FillPolygon(col, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

func drawHeader(dc draw.Canvas, title string, start, end time.Time, wpx, hpx int) {
	top := dc.Max.Y
	sty := textStyle(16, textColor, true)
	sty.YAlign = draw.YTop
	dc.FillText(sty, vg.Point{X: px(12), Y: top - px(12)}, title)
	sub := textStyle(10, dimColor, false)
	sub.YAlign = draw.YTop
	sub.XAlign = draw.XRight
	dc.FillText(sub, vg.Point{X: px(wpx - 12), Y: top - px(16)},
		fmt.Sprintf("%s – %s UTC (%s) · rendered by deploy/grafana/render from the dashboard's PromQL",
			start.UTC().Format("2006-01-02 15:04:05"), end.UTC().Format("15:04:05"), end.Sub(start).Round(time.Second)))
	_ = hpx
}

func drawRow(c draw.Canvas, title string) {
	sty := textStyle(13, textColor, true)
	sty.YAlign = draw.YCenter
	c.FillText(sty, vg.Point{X: c.Min.X + px(4), Y: (c.Min.Y + c.Max.Y) / 2}, title)
	c.StrokeLine2(draw.LineStyle{Color: borderCol, Width: px(1)}, c.Min.X, c.Min.Y, c.Max.X, c.Min.Y)
}

// panelFrame fills the panel, writes its title and returns the canvas
// under the title.
func panelFrame(c draw.Canvas, title string) draw.Canvas {
	fillRect(c, c.Rectangle, panelColor)
	r := c.Rectangle
	c.StrokeLines(draw.LineStyle{Color: borderCol, Width: px(1)},
		[]vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}, r.Min})
	sty := textStyle(10.5, textColor, true)
	sty.YAlign = draw.YTop
	c.FillText(sty, vg.Point{X: r.Min.X + px(8), Y: r.Max.Y - px(6)}, title)
	return draw.Crop(c, px(4), -px(6), px(4), -px(24))
}

// noData writes Grafana's "No data" (or the query's error) in c.
func noData(c draw.Canvas, msg string) {
	sty := textStyle(11, dimColor, false)
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	if msg == "" {
		msg = "No data"
	}
	if len(msg) > 80 {
		msg = msg[:80] + "…"
	}
	c.FillText(sty, c.Center(), msg)
}

// named series: what a target's series are called, in order.
type namedSeries struct {
	name string
	s    series
}

// framedSeries draws p's frame and returns the canvas inside it and the
// panel's series, flattened; with no series it writes "no data" there
// and ok is false: the panel is done.
func framedSeries(c draw.Canvas, p panel, data []targetData) (inner draw.Canvas, all []namedSeries, ok bool) {
	c = panelFrame(c, p.Title)
	all = flatten(data)
	if len(all) == 0 {
		noData(c, "")
		return c, nil, false
	}
	return c, all, true
}

func flatten(data []targetData) []namedSeries {
	var out []namedSeries
	for _, td := range data {
		for _, s := range td.series {
			out = append(out, namedSeries{name: legend(td.legend, s.labels), s: s})
		}
	}
	return out
}

// drawTimeSeries draws the panel's series as lines over [start, end],
// with a legend under the plot.
func drawTimeSeries(c draw.Canvas, p panel, data []targetData, start, end time.Time) {
	c, all, ok := framedSeries(c, p, data)
	if !ok {
		return
	}
	lg := textStyle(8, textColor, false)
	legendH := legendHeight(c, lg, all)
	area := draw.Crop(c, 0, 0, legendH, 0)
	pl := plot.New()
	pl.BackgroundColor = color.Transparent
	pl.X.Min, pl.X.Max = float64(start.Unix()), float64(end.Unix())
	for _, ax := range []*plot.Axis{&pl.X, &pl.Y} {
		ax.Color = borderCol
		ax.Tick.Color = borderCol
		ax.Tick.Label = textStyle(7.5, dimColor, false)
		ax.Padding = 0
	}
	pl.X.Tick.Marker = plot.TimeTicks{Format: "15:04:05"}
	pl.Y.Tick.Marker = unitTicks{unit: p.Field.Defaults.Unit}
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = gridColor, gridColor
	pl.Add(grid)
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, ns := range all {
		for _, seg := range segments(ns.s) {
			l, err := plotter.NewLine(seg)
			if err != nil {
				continue
			}
			l.Color = palette[i%len(palette)]
			l.Width = px(2)
			pl.Add(l)
			for _, xy := range seg {
				lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
			}
		}
	}
	if lo <= hi {
		pl.Y.Min, pl.Y.Max = math.Min(lo, 0), hi
		if pl.Y.Max == pl.Y.Min {
			pl.Y.Max = pl.Y.Min + 1
		}
		pl.Y.Max += (pl.Y.Max - pl.Y.Min) * 0.05
	}
	pl.X.Min, pl.X.Max = float64(start.Unix()), float64(end.Unix())
	pl.Draw(area)
	drawLegend(draw.Crop(c, 0, 0, 0, -(c.Max.Y-c.Min.Y-legendH)), lg, all)
}

// segments are a series' runs of numbers (NaN and ±Inf break a line).
func segments(s series) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for i := range s.t {
		if math.IsNaN(s.v[i]) || math.IsInf(s.v[i], 0) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, plotter.XY{X: s.t[i], Y: s.v[i]})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// maxLegendLines bounds the legend; the rest is summed up as "+N more".
const maxLegendLines = 3

// legendLayout places the entries left to right, wrapping; it returns
// each entry's line and x offset, and how many fit.
func legendLayout(width vg.Length, sty draw.TextStyle, all []namedSeries) (lines []int, xs []vg.Length, fit int) {
	line, x := 0, vg.Length(0)
	for _, ns := range all {
		w := px(14) + sty.Width(ns.name) + px(12)
		if x > 0 && x+w > width {
			line, x = line+1, 0
		}
		if line >= maxLegendLines {
			break
		}
		lines, xs = append(lines, line), append(xs, x)
		x += w
		fit++
	}
	return lines, xs, fit
}

func legendHeight(c draw.Canvas, sty draw.TextStyle, all []namedSeries) vg.Length {
	lines, _, _ := legendLayout(c.Max.X-c.Min.X, sty, all)
	n := 1
	if len(lines) > 0 {
		n = lines[len(lines)-1] + 1
	}
	return vg.Length(n)*px(13) + px(4)
}

func drawLegend(c draw.Canvas, sty draw.TextStyle, all []namedSeries) {
	lines, xs, fit := legendLayout(c.Max.X-c.Min.X, sty, all)
	sty.YAlign = draw.YCenter
	for i := 0; i < fit; i++ {
		y := c.Max.Y - px(8) - vg.Length(lines[i])*px(13)
		x := c.Min.X + xs[i]
		fillRect(c, vg.Rectangle{Min: vg.Point{X: x, Y: y - px(1)}, Max: vg.Point{X: x + px(10), Y: y + px(2)}}, palette[i%len(palette)])
		c.FillText(sty, vg.Point{X: x + px(14), Y: y}, fitText(sty, all[i].name, c.Max.X-c.Min.X-px(14)))
	}
	if fit < len(all) {
		more := sty
		more.XAlign = draw.XRight
		more.Color = dimColor
		c.FillText(more, vg.Point{X: c.Max.X, Y: c.Min.Y + px(6)}, "+"+strconv.Itoa(len(all)-fit)+" more")
	}
}
