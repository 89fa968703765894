package render

import (
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// drawStat draws each series' last value as a big number, coloured by
// the panel's value mappings or thresholds (green without either), its
// name under it; it returns the values shown.
func drawStat(c draw.Canvas, p panel, data []targetData) []string {
	c, all, ok := framedSeries(c, p, data)
	if !ok {
		return nil
	}
	cols := int(math.Ceil(math.Sqrt(float64(len(all)))))
	if w, h := c.Max.X-c.Min.X, c.Max.Y-c.Min.Y; w > 2*h && len(all) > 1 {
		cols = min(len(all), int(math.Ceil(math.Sqrt(float64(len(all))*2))))
	}
	rows := (len(all) + cols - 1) / cols
	cw, ch := (c.Max.X-c.Min.X)/vg.Length(cols), (c.Max.Y-c.Min.Y)/vg.Length(rows)
	size := math.Min(float64(ch)*0.45, 34)
	var shown []string
	for i, ns := range all {
		col, row := i%cols, i/cols
		cell := vg.Rectangle{
			Min: vg.Point{X: c.Min.X + vg.Length(col)*cw, Y: c.Max.Y - vg.Length(row+1)*ch},
			Max: vg.Point{X: c.Min.X + vg.Length(col+1)*cw, Y: c.Max.Y - vg.Length(row)*ch},
		}
		txt, clr := "–", color.Color(dimColor)
		if v, ok := ns.s.last(); ok {
			txt, clr = p.statText(v)
		}
		shown = append(shown, txt)
		big := textStyle(size, clr, true)
		big.XAlign, big.YAlign = draw.XCenter, draw.YCenter
		mid := vg.Point{X: (cell.Min.X + cell.Max.X) / 2, Y: (cell.Min.Y+cell.Max.Y)/2 + px(6)}
		for big.Width(txt) > cw-px(8) && big.Font.Size > 8 {
			big.Font.Size *= 0.9
		}
		c.FillText(big, mid, txt)
		name := textStyle(8, textColor, false)
		name.XAlign, name.YAlign = draw.XCenter, draw.YTop
		c.FillText(name, vg.Point{X: mid.X, Y: mid.Y - vg.Length(big.Font.Size)*0.6}, fitText(name, ns.name, cw-px(6)))
	}
	return shown
}

// statText is a value as the stat panel shows it: a value mapping's text
// and colour, else the value in the panel's unit coloured by thresholds.
func (p panel) statText(v float64) (string, color.Color) {
	key := strconv.FormatFloat(v, 'f', -1, 64)
	for _, m := range p.Field.Defaults.Mappings {
		if o, ok := m.Options[key]; ok && m.Type == "value" {
			txt := o.Text
			if txt == "" {
				txt = key
			}
			return txt, colorNamed(o.Color)
		}
	}
	var clr color.Color = named["green"]
	for _, s := range p.Field.Defaults.Thresholds.Steps {
		if s.Value == nil || v >= *s.Value {
			clr = colorNamed(s.Color)
		}
	}
	return format(v, p.Field.Defaults.Unit), clr
}

// colorNamed is a Grafana colour: a name it knows or #rrggbb.
func colorNamed(s string) color.Color {
	if c, ok := named[strings.TrimPrefix(s, "dark-")]; ok {
		return c
	}
	if strings.HasPrefix(s, "#") && len(s) == 7 {
		if n, err := strconv.ParseUint(s[1:], 16, 32); err == nil {
			return color.RGBA{R: uint8(n >> 16), G: uint8(n >> 8), B: uint8(n), A: 0xff}
		}
	}
	return named["green"]
}

// drawTable draws one line per series: its labels and last value.
func drawTable(c draw.Canvas, p panel, data []targetData) {
	c, all, ok := framedSeries(c, p, data)
	if !ok {
		return
	}
	head := textStyle(8.5, dimColor, true)
	cell := textStyle(8.5, textColor, false)
	head.YAlign, cell.YAlign = draw.YTop, draw.YTop
	// columns: the label names of the first series, then Value
	var cols []string
	for k := range all[0].s.labels {
		if k != "__name__" {
			cols = append(cols, k)
		}
	}
	slices.Sort(cols)
	cols = append(cols, "Value")
	w := (c.Max.X - c.Min.X) / vg.Length(len(cols))
	y := c.Max.Y
	for i, k := range cols {
		c.FillText(head, vg.Point{X: c.Min.X + vg.Length(i)*w + px(4), Y: y}, k)
	}
	for _, ns := range all {
		y -= px(16)
		if y < c.Min.Y+px(12) {
			break
		}
		c.StrokeLine2(draw.LineStyle{Color: borderCol, Width: px(1)}, c.Min.X, y+px(3), c.Max.X, y+px(3))
		for i, k := range cols {
			v := ns.s.labels[k]
			if k == "Value" {
				if f, ok := ns.s.last(); ok {
					v = format(f, p.Field.Defaults.Unit)
				}
			}
			c.FillText(cell, vg.Point{X: c.Min.X + vg.Length(i)*w + px(4), Y: y}, fitText(cell, v, w-px(8)))
		}
	}
}

// fitText is s cut (with an ellipsis) to fit width in sty.
func fitText(sty draw.TextStyle, s string, width vg.Length) string {
	if sty.Width(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 1 && sty.Width(string(r)+"…") > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
