package media

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// modeStyle is how a mode looks in the chart: the ceiling as a grey
// reference, xtrunk XDP as the strong line.
var modeStyle = map[string]struct {
	color color.RGBA
	dash  []vg.Length
	label string
}{
	ModeXDP:           {color.RGBA{R: 0x1f, G: 0x5f, B: 0xbf, A: 0xff}, nil, "xtrunk XDP"},
	ModeUserspace:     {color.RGBA{R: 0xe0, G: 0x7b, B: 0x10, A: 0xff}, nil, "xtrunk userspace"},
	ModeRTPEngine:     {color.RGBA{R: 0xc0, G: 0x20, B: 0x30, A: 0xff}, nil, "rtpengine (userspace)"},
	ModeXDPSocketless: {color.RGBA{R: 0x10, G: 0x90, B: 0x50, A: 0xff}, nil, "xtrunk XDP socketless"},
	ModeCeiling:       {color.RGBA{R: 0x70, G: 0x70, B: 0x70, A: 0xff}, []vg.Length{vg.Points(6), vg.Points(3)}, "ceiling (XDP redirect)"},
}

// lossFloor is where a step without loss is drawn on the logarithmic
// loss axis (labelled "0").
const lossFloor = 0.001

// WritePNG draws the chart: delivered packets per second (top) and loss
// (bottom) against concurrent calls, one line per mode, with the offered
// rate and the 0.1 % / 1 % loss lines for reference.
func (r *Results) WritePNG(path string) error {
	top, bottom := r.ratePlot(), r.lossPlot()
	const w, h = 26 * vg.Centimeter, 22 * vg.Centimeter
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(120), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 5, PadY: vg.Millimeter * 6}
	cs := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(cs[0][0])
	bottom.Draw(cs[1][0])
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("media: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	return nil
}

func (r *Results) newPlot(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = fmt.Sprintf("concurrent calls (RTP %d bytes, %d pps each way)", RTPBytes, r.PacketsPerCall)
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = callTicks(r.Calls)
	for _, s := range []*plot.Axis{&p.X, &p.Y} {
		s.Label.TextStyle.Font.Variant = "Sans"
		s.Tick.Label.Font.Variant = "Sans"
	}
	p.Title.TextStyle.Font.Variant = "Sans"
	p.Legend.TextStyle.Font.Variant = "Sans"
	p.Legend.Top, p.Legend.Left = true, true // where loss lines are not
	p.Legend.XOffs, p.Legend.YOffs = vg.Millimeter*4, -vg.Millimeter*12
	p.Add(plotter.NewGrid())
	return p
}

func (r *Results) ratePlot() *plot.Plot {
	title := fmt.Sprintf("RTP packets delivered per second — %d vCPU, kernel %s", r.Host.CPUs, r.Host.Kernel)
	if r.SRTP {
		title = fmt.Sprintf("Packets delivered per second, SRTP customer legs (%s) — %d vCPU", r.SRTPSuite, r.Host.CPUs)
	}
	p := r.newPlot(title, "delivered packets/s (log scale)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = rateTicks{}
	p.Legend.Top, p.Legend.Left = false, false // rates rise to the top right
	p.Legend.XOffs, p.Legend.YOffs = -vg.Millimeter*3, vg.Millimeter*3
	var offered plotter.XYs
	for _, n := range r.Calls {
		offered = append(offered, plotter.XY{X: float64(n), Y: float64(2 * n * r.PacketsPerCall)})
	}
	if l, err := plotter.NewLine(offered); err == nil {
		l.Color = color.RGBA{R: 0xb0, G: 0xb0, B: 0xb0, A: 0xff}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		l.Width = vg.Points(1)
		p.Add(l)
		p.Legend.Add("offered", l)
	}
	r.addModes(p, func(s Step) float64 { return s.DeliveredPPS })
	return p
}

func (r *Results) lossPlot() *plot.Plot {
	p := r.newPlot("Packet loss", "loss (%, log scale)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.ConstantTicks{
		{Value: lossFloor, Label: "0"}, {Value: 0.01, Label: "0.01"}, {Value: 0.1, Label: "0.1"},
		{Value: 1, Label: "1"}, {Value: 10, Label: "10"}, {Value: 100, Label: "100"},
	}
	p.Y.Min, p.Y.Max = lossFloor*0.7, 100
	lo, hi := float64(r.Calls[0]), float64(r.Calls[len(r.Calls)-1])
	for _, th := range []float64{CleanLoss, StopLoss} {
		if l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: th}, {X: hi, Y: th}}); err == nil {
			l.Color = color.RGBA{R: 0xc0, G: 0xc0, B: 0xc0, A: 0xff}
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
		}
	}
	r.addModes(p, func(s Step) float64 { return max(s.LossPct, lossFloor) })
	return p
}

// drawOrder puts the reference (ceiling) at the bottom and xtrunk XDP on
// top, where lines coincide.
var drawOrder = []string{ModeCeiling, ModeRTPEngine, ModeUserspace, ModeXDPSocketless, ModeXDP}

func (r *Results) addModes(p *plot.Plot, y func(Step) float64) {
	type entry struct {
		label string
		l     *plotter.Line
		pts   *plotter.Scatter
	}
	legend := map[string]entry{}
	for _, mode := range drawOrder {
		m := r.mode(mode)
		if m == nil || len(m.Steps) == 0 {
			continue
		}
		st := modeStyle[m.Mode]
		var xy plotter.XYs
		for _, s := range m.Steps {
			xy = append(xy, plotter.XY{X: float64(s.Calls), Y: y(s)})
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			continue
		}
		l.Color, l.Width, l.Dashes = st.color, vg.Points(2.2), st.dash
		pts.Color, pts.Shape, pts.Radius = st.color, draw.CircleGlyph{}, vg.Points(3)
		p.Add(l, pts)
		legend[mode] = entry{st.label, l, pts}
	}
	for _, m := range r.Modes {
		if e, ok := legend[m.Mode]; ok {
			p.Legend.Add(e.label, e.l, e.pts)
		}
	}
}

// callTicks labels the steps themselves on the calls axis.
func callTicks(calls []int) plot.ConstantTicks {
	var t plot.ConstantTicks
	for _, n := range calls {
		label := strconv.Itoa(n)
		if n >= 1000 && n%1000 == 0 {
			label = strconv.Itoa(n/1000) + "k"
		}
		t = append(t, plot.Tick{Value: float64(n), Label: label})
	}
	return t
}

// rateTicks labels a logarithmic packet-rate axis 1-2-5 per decade: 1k,
// 2k, 5k, 10k ... 1M, 2M.
type rateTicks struct{}

func (rateTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for dec := math.Pow(10, math.Floor(math.Log10(math.Max(lo, 1)))); dec <= hi; dec *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := m * dec
			if v < lo || v > hi {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: rateLabel(v)})
		}
	}
	return ts
}

func rateLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
