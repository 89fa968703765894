package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xtrunk/xtrunk/signalling"
)

// xtrunk top: a full-screen view of the edge refreshed every second, from
// sip's /metrics and /admin/calls and the relay's /admin/relay (the same
// listeners and credentials as xtrunk ctl).

// topWindow is how far back CPS, ASR and ACD look: long enough for ASR and
// ACD to mean something at a few calls a minute, short enough to show a
// change within the minute.
const topWindow = 60 * time.Second

// topSample is one reading of the edge.
type topSample struct {
	at                         time.Time
	attempts, answered, failed float64 // xtrunk_sip_call_attempts_total, calls_answered_total, calls_failed_total
	durSum, durCount           float64 // xtrunk_sip_call_duration_seconds
	active                     map[string]float64
	relay                      RelayStats
	calls                      []signalling.LiveCall
	sipErr, relayErr, callsErr error
}

func runTop(args []string) error {
	var f ctlFlags
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	f.register(fs)
	every := fs.Duration("interval", time.Second, "refresh interval")
	once := fs.Bool("once", false, "print one reading as text and exit (no terminal needed)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: xtrunk top [flags]\n\nA full-screen live view of the edge: CPS, ASR, ACD, active calls per trunk, relay packets per second by path, drops and the worst-quality calls, refreshed every second. q quits.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.resolve(); err != nil {
		return err
	}
	if *once {
		topOnce(&f, os.Stdout)
		return nil
	}
	scr, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("%w: top: %w", ErrCtl, err)
	}
	if err := scr.Init(); err != nil {
		return fmt.Errorf("%w: top: %w", ErrCtl, err)
	}
	defer scr.Fini()
	quit := make(chan struct{})
	go func() {
		for {
			switch ev := scr.PollEvent().(type) {
			case nil:
				return
			case *tcell.EventKey:
				if ev.Key() == tcell.KeyEscape || ev.Key() == tcell.KeyCtrlC || ev.Rune() == 'q' || ev.Rune() == 'Q' {
					close(quit)
					return
				}
			case *tcell.EventResize:
				scr.Sync()
			}
		}
	}()
	var hist []topSample
	t := time.NewTicker(max(*every, 100*time.Millisecond))
	defer t.Stop()
	for {
		s := topRead(&f)
		hist = append(hist, s)
		for len(hist) > 1 && s.at.Sub(hist[0].at) > topWindow {
			hist = hist[1:]
		}
		w, _ := scr.Size()
		drawLines(scr, topLines(hist, w, f.sip, f.relay))
		select {
		case <-quit:
			return nil
		case <-t.C:
		}
	}
}

func drawLines(scr tcell.Screen, lines []topLine) {
	scr.Clear()
	w, _ := scr.Size()
	for y, l := range lines {
		x := 0
		for _, r := range l.text {
			scr.SetContent(x, y, r, nil, l.style)
			x++
		}
		if y == 0 { // the title bar spans the screen
			for ; x < w; x++ {
				scr.SetContent(x, y, ' ', nil, l.style)
			}
		}
	}
	scr.Show()
}

// The view's colours: a title bar, section rules, and what needs a look
// (drops, errors, poor calls) in red or yellow, good quality in green.
var (
	topTitle = tcell.StyleDefault.Bold(true).Foreground(tcell.ColorWhite).Background(tcell.ColorNavy)
	topRule  = tcell.StyleDefault.Bold(true).Foreground(tcell.ColorTeal)
	topHead  = tcell.StyleDefault.Bold(true)
	topGood  = tcell.StyleDefault.Foreground(tcell.ColorGreen)
	topWarn  = tcell.StyleDefault.Foreground(tcell.ColorOlive)
	topBad   = tcell.StyleDefault.Bold(true).Foreground(tcell.ColorMaroon)
)

// mosStyle colours a call by its worst leg's MOS: 4.0 and up is what
// G.711 on a clean path scores, under 3.6 is what users complain about
// (the XtrunkQualityDegraded alert's threshold).
func mosStyle(c signalling.LiveCall) tcell.Style {
	switch m := worstMOS(c); {
	case len(c.Legs) == 0:
		return tcell.StyleDefault
	case m >= 4:
		return topGood
	case m >= 3.6:
		return topWarn
	}
	return topBad
}

// topRead takes one reading; what fails is noted in the sample and shown.
func topRead(f *ctlFlags) topSample {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	s := topSample{at: time.Now(), active: map[string]float64{}}
	if mfs, err := scrape(ctx, f.sip+"/metrics"); err != nil {
		s.sipErr = err
	} else {
		s.readSIP(mfs)
	}
	if b, err := f.adminDo(ctx, http.MethodGet, f.sip+"/admin/calls"); err != nil {
		s.callsErr = err
	} else if err := json.Unmarshal(b, &s.calls); err != nil {
		s.callsErr = err
	}
	if b, err := f.adminDo(ctx, http.MethodGet, f.relay+"/admin/relay"); err != nil {
		s.relayErr = err
	} else if err := json.Unmarshal(b, &s.relay); err != nil {
		s.relayErr = err
	}
	return s
}

func scrape(ctx context.Context, u string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCtl, err)
	}
	req.Header.Set("Accept", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCtl, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: %s", ErrCtl, u, res.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCtl, u, err)
	}
	return mfs, nil
}

func (s *topSample) readSIP(mfs map[string]*dto.MetricFamily) {
	sum := func(name string) float64 {
		v := 0.0
		for _, m := range mfs[name].GetMetric() {
			v += m.GetCounter().GetValue()
		}
		return v
	}
	s.attempts = sum("xtrunk_sip_call_attempts_total")
	s.answered = sum("xtrunk_sip_calls_answered_total")
	s.failed = sum("xtrunk_sip_calls_failed_total")
	for _, m := range mfs["xtrunk_sip_call_duration_seconds"].GetMetric() {
		s.durSum += m.GetHistogram().GetSampleSum()
		s.durCount += float64(m.GetHistogram().GetSampleCount())
	}
	for _, m := range mfs["xtrunk_sip_calls_active"].GetMetric() {
		if v := m.GetGauge().GetValue(); v > 0 {
			s.active[label(m, "trunk")] += v
		}
	}
}

// topLines renders the view from the readings in hist (oldest first) for
// a screen width columns wide.
func topLines(hist []topSample, width int, sipURL, relayURL string) []topLine {
	cur := hist[len(hist)-1]
	var v topView
	rule := func(title string) {
		v.style(topRule, "%s", "── "+title+" "+strings.Repeat("─", max(width-len(title)-4, 0)))
	}
	v.style(topTitle, "xtrunk top — %s   sip %s   relay %s   (q quits)", cur.at.Format("15:04:05"), sipURL, relayURL)
	rule("calls")
	v.calls(hist)
	rule("relay")
	v.relay(hist)
	rule("worst calls (lowest MOS first)")
	v.worst(cur)
	return v.lines
}

// topLine is one line of the screen and how it is drawn.
type topLine struct {
	text  string
	style tcell.Style
}

// topView collects the screen's lines.
type topView struct{ lines []topLine }

func (v *topView) add(format string, a ...any) { v.style(tcell.StyleDefault, format, a...) }

func (v *topView) style(st tcell.Style, format string, a ...any) {
	v.lines = append(v.lines, topLine{text: fmt.Sprintf(format, a...), style: st})
}

// calls: CPS, ASR and ACD over the window, active calls per trunk.
func (v *topView) calls(hist []topSample) {
	cur, old := hist[len(hist)-1], hist[0]
	if cur.sipErr != nil {
		v.style(topBad, "sip: %v", cur.sipErr)
		return
	}
	span := cur.at.Sub(old.at).Seconds()
	cps, asr, acd := "-", "-", "-"
	if span > 0 {
		cps = fmt.Sprintf("%.2f", (cur.attempts-old.attempts)/span)
	}
	// ASR over the calls with an outcome, as the recording rules have it
	// (deploy/prometheus): over attempts, the answers of calls admitted
	// before the window took it past 100 %.
	ans, ended := cur.answered-old.answered, (cur.answered+cur.failed)-(old.answered+old.failed)
	if ended <= 0 { // nothing new in the window: since sip started
		ans, ended = cur.answered, cur.answered+cur.failed
	}
	if ended > 0 {
		asr = fmt.Sprintf("%.0f%%", 100*ans/ended)
	}
	ds, dc := cur.durSum-old.durSum, cur.durCount-old.durCount
	if dc <= 0 {
		ds, dc = cur.durSum, cur.durCount
	}
	if dc > 0 {
		acd = (time.Duration(ds/dc) * time.Second).String()
	}
	total := 0.0
	for _, n := range cur.active {
		total += n
	}
	v.add("CPS %s   ASR %s   ACD %s   active %.0f   attempts %.0f   answered %.0f   (rates over the last %.0f s)",
		cps, asr, acd, total, cur.attempts, cur.answered, span)
	trunks := make([]string, 0, len(cur.active))
	for k := range cur.active {
		trunks = append(trunks, k)
	}
	sort.Slice(trunks, func(i, j int) bool { return cur.active[trunks[i]] > cur.active[trunks[j]] })
	for i, k := range trunks {
		if i == 8 {
			v.add("  … %d more trunks", len(trunks)-i)
			break
		}
		v.add("  %-40s %5.0f active", k, cur.active[k])
	}
}

// relay: sessions, port pairs, packets per second by path, drops.
func (v *topView) relay(hist []topSample) {
	cur := hist[len(hist)-1]
	if cur.relayErr != nil {
		v.style(topBad, "relay: %v", cur.relayErr)
		return
	}
	prev, dt := cur.relay, 1.0
	if len(hist) > 1 {
		prev = hist[len(hist)-2].relay
		dt = max(cur.at.Sub(hist[len(hist)-2].at).Seconds(), 0.001)
	}
	var paths, drops []string
	for _, k := range sortedKeys(cur.relay.Packets) {
		paths = append(paths, fmt.Sprintf("%s %.0f pps", k, max(cur.relay.Packets[k]-prev.Packets[k], 0)/dt))
	}
	for _, k := range sortedKeys(cur.relay.Drops) {
		if cur.relay.Drops[k] == 0 {
			continue
		}
		drops = append(drops, fmt.Sprintf("%s %.0f (%.0f/s)", k, cur.relay.Drops[k], max(cur.relay.Drops[k]-prev.Drops[k], 0)/dt))
	}
	sessions := 0.0
	for _, n := range cur.relay.Sessions {
		sessions += n
	}
	v.add("sessions %.0f   port pairs %.0f/%.0f   %s", sessions, cur.relay.PortPairsUsed, cur.relay.PortPairs, strings.Join(paths, "   "))
	if len(drops) > 0 {
		v.style(topBad, "drops: %s", strings.Join(drops, "   "))
	} else {
		v.style(topGood, "drops: none")
	}
}

// worst: the live calls, lowest MOS first.
func (v *topView) worst(cur topSample) {
	if cur.callsErr != nil {
		v.style(topBad, "calls: %v", cur.callsErr)
		return
	}
	v.style(topHead, "%-32s %-34s %-14s %-14s %-11s %6s %6s %6s %5s", "CALL", "TRUNK", "FROM", "TO", "STATUS", "LOSS%", "JIT ms", "MOS", "XDP%")
	calls := append([]signalling.LiveCall(nil), cur.calls...)
	sort.SliceStable(calls, func(i, j int) bool { return worstMOS(calls[i]) < worstMOS(calls[j]) })
	for i, c := range calls {
		if i == 20 {
			v.add("… %d more calls", len(calls)-i)
			break
		}
		l := worstLeg(c)
		v.style(mosStyle(c), "%-32s %-34s %-14s %-14s %-11s %6.1f %6.1f %6.2f %5.0f", trunc(c.ID, 32), trunc(c.Trunk, 34), trunc(c.From, 14), trunc(c.To, 14), c.Status,
			l.LossPct, l.JitterMs, l.MOS, 100*l.XDPShare)
	}
	if len(calls) == 0 {
		v.add("no calls in progress")
	}
}

// worstLeg is the call's leg with the lowest MOS (a zero leg when the
// relay has nothing yet).
func worstLeg(c signalling.LiveCall) signalling.LiveLeg {
	var w signalling.LiveLeg
	for i, l := range c.Legs {
		if i == 0 || l.MOS < w.MOS {
			w = l
		}
	}
	return w
}

// worstMOS sorts calls without media last.
func worstMOS(c signalling.LiveCall) float64 {
	if len(c.Legs) == 0 {
		return 5
	}
	return worstLeg(c).MOS
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// topOnce prints one reading as text (no terminal needed), for scripts.
func topOnce(f *ctlFlags, w io.Writer) {
	s := topRead(f)
	for _, l := range topLines([]topSample{s}, 120, f.sip, f.relay) {
		fmt.Fprintln(w, l.text)
	}
}
