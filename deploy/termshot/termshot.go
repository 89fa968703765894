// Package termshot turns a terminal screen captured with its colours
// (`tmux capture-pane -e -p`: text with ANSI SGR escape sequences) into a
// PNG drawn in Go Mono, for the README's screenshot of `xtrunk top`. It
// honours what tmux emits for a screen: SGR colours (the 16 ANSI ones,
// 256-colour and true-colour), bold, dim and reverse video; other escape
// sequences are skipped.
package termshot

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Cell is one character cell of the screen and how it is drawn.
type Cell struct {
	R      rune
	FG, BG color.RGBA
	Bold   bool
}

// Screen is a grid of cells, Rows × Cols.
type Screen struct {
	Cols, Rows int
	Cells      [][]Cell
}

// Default colours: a dark terminal.
var (
	DefaultFG = color.RGBA{R: 0xd0, G: 0xd0, B: 0xd0, A: 0xff}
	DefaultBG = color.RGBA{R: 0x1c, G: 0x1c, B: 0x1c, A: 0xff}
)

// ansi16 are xterm's 16 colours.
var ansi16 = [16]color.RGBA{
	{0x00, 0x00, 0x00, 0xff}, {0xcd, 0x00, 0x00, 0xff}, {0x00, 0xcd, 0x00, 0xff}, {0xcd, 0xcd, 0x00, 0xff},
	{0x1e, 0x90, 0xff, 0xff}, {0xcd, 0x00, 0xcd, 0xff}, {0x00, 0xcd, 0xcd, 0xff}, {0xe5, 0xe5, 0xe5, 0xff},
	{0x7f, 0x7f, 0x7f, 0xff}, {0xff, 0x00, 0x00, 0xff}, {0x00, 0xff, 0x00, 0xff}, {0xff, 0xff, 0x00, 0xff},
	{0x5c, 0x5c, 0xff, 0xff}, {0xff, 0x00, 0xff, 0xff}, {0x00, 0xff, 0xff, 0xff}, {0xff, 0xff, 0xff, 0xff},
}

// color256 is xterm's 256-colour palette entry n.
func color256(n int) color.RGBA {
	switch {
	case n < 16:
		return ansi16[n]
	case n < 232:
		n -= 16
		level := func(v int) uint8 {
			if v == 0 {
				return 0
			}
			return uint8(55 + 40*v)
		}
		return color.RGBA{R: level(n / 36), G: level(n / 6 % 6), B: level(n % 6), A: 0xff}
	default:
		g := uint8(8 + 10*(n-232))
		return color.RGBA{R: g, G: g, B: g, A: 0xff}
	}
}

// sgrState is the current graphic rendition.
type sgrState struct {
	fg, bg         color.RGBA
	fgSet, bgSet   bool
	bold, dim, rev bool
}

func (s *sgrState) reset() { *s = sgrState{} }

// apply applies one SGR sequence's parameters.
func (s *sgrState) apply(params []int) {
	if len(params) == 0 {
		s.reset()
		return
	}
	for i := 0; i < len(params); i++ {
		p := params[i]
		switch {
		case p == 0:
			s.reset()
		case p == 1:
			s.bold = true
		case p == 2:
			s.dim = true
		case p == 22:
			s.bold, s.dim = false, false
		case p == 7:
			s.rev = true
		case p == 27:
			s.rev = false
		case p >= 30 && p <= 37:
			s.fg, s.fgSet = ansi16[p-30], true
		case p >= 90 && p <= 97:
			s.fg, s.fgSet = ansi16[p-90+8], true
		case p == 39:
			s.fgSet = false
		case p >= 40 && p <= 47:
			s.bg, s.bgSet = ansi16[p-40], true
		case p >= 100 && p <= 107:
			s.bg, s.bgSet = ansi16[p-100+8], true
		case p == 49:
			s.bgSet = false
		case p == 38 || p == 48:
			c, n, ok := extended(params[i+1:])
			i += n
			if !ok {
				continue
			}
			if p == 38 {
				s.fg, s.fgSet = c, true
			} else {
				s.bg, s.bgSet = c, true
			}
		}
	}
}

// extended reads "5;n" or "2;r;g;b" after 38/48: the colour and how many
// parameters it used.
func extended(p []int) (color.RGBA, int, bool) {
	switch {
	case len(p) >= 2 && p[0] == 5:
		return color256(clamp(p[1])), 2, true
	case len(p) >= 4 && p[0] == 2:
		return color.RGBA{R: uint8(clamp(p[1])), G: uint8(clamp(p[2])), B: uint8(clamp(p[3])), A: 0xff}, 4, true
	}
	return color.RGBA{}, len(p), false
}

func clamp(v int) int { return min(max(v, 0), 255) }

func (s *sgrState) cell(r rune) Cell {
	fg, bg := DefaultFG, DefaultBG
	if s.fgSet {
		fg = s.fg
	}
	if s.bgSet {
		bg = s.bg
	}
	if s.bold && s.fgSet {
		for i, c := range ansi16[:8] { // bold brightens the 8 basic colours, as xterm does
			if c == fg {
				fg = ansi16[i+8]
			}
		}
	}
	if s.dim {
		fg = color.RGBA{R: fg.R / 3 * 2, G: fg.G / 3 * 2, B: fg.B / 3 * 2, A: 0xff}
	}
	if s.rev {
		fg, bg = bg, fg
	}
	return Cell{R: r, FG: fg, BG: bg, Bold: s.bold}
}

// Parse reads a captured screen (lines of text with SGR sequences) into a
// cols × rows grid: longer lines are cut, shorter ones padded with blanks
// in the default colours. Other escape sequences are skipped, control
// characters drawn as blanks.
func Parse(capture string, cols, rows int) Screen {
	sc := Screen{Cols: cols, Rows: rows, Cells: make([][]Cell, rows)}
	var st sgrState
	lines := strings.Split(strings.TrimSuffix(capture, "\n"), "\n")
	for y := range rows {
		row := make([]Cell, 0, cols)
		if y < len(lines) {
			row = parseLine(lines[y], cols, &st, row)
		}
		blank := (&sgrState{}).cell(' ')
		for len(row) < cols {
			row = append(row, blank)
		}
		sc.Cells[y] = row
	}
	return sc
}

// parseLine appends the cells of one line; the rendition carries over
// from line to line, as on a terminal.
func parseLine(line string, cols int, st *sgrState, row []Cell) []Cell {
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		if r == 0x1b {
			i = escape(rs, i, st)
			continue
		}
		if r == '\t' {
			for len(row) < cols && (len(row) == 0 || len(row)%8 != 0) {
				row = append(row, st.cell(' '))
			}
			continue
		}
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		if len(row) < cols {
			row = append(row, st.cell(r))
		}
	}
	return row
}

// escape consumes the escape sequence starting at rs[i] (ESC), applying it
// when it is an SGR; it returns the index of its last rune.
func escape(rs []rune, i int, st *sgrState) int {
	if i+1 >= len(rs) {
		return i
	}
	switch rs[i+1] {
	case '[': // CSI: parameters, intermediates, a final byte 0x40-0x7e
		j := i + 2
		for j < len(rs) && (rs[j] < 0x40 || rs[j] > 0x7e) {
			j++
		}
		if j >= len(rs) {
			return len(rs) - 1
		}
		if rs[j] == 'm' {
			st.apply(sgrParams(string(rs[i+2 : j])))
		}
		return j
	case ']': // OSC: up to BEL or ST
		for j := i + 2; j < len(rs); j++ {
			if rs[j] == 0x07 {
				return j
			}
			if rs[j] == 0x1b && j+1 < len(rs) && rs[j+1] == '\\' {
				return j + 1
			}
		}
		return len(rs) - 1
	}
	return i + 1 // a two-character sequence
}

// sgrParams splits "1;38;5;208" (colons as in "38:5:208" too); empty
// fields are 0; private sequences ("?...") give none.
func sgrParams(s string) []int {
	if s == "" {
		return nil
	}
	if s[0] < '0' || s[0] > ';' {
		return []int{-1}
	}
	var out []int
	for _, f := range strings.FieldsFunc(strings.ReplaceAll(s, ":", ";")+";", func(r rune) bool { return r == ';' }) {
		n := 0
		for _, c := range f {
			if c < '0' || c > '9' {
				break
			}
			n = min(n*10+int(c-'0'), 1<<16)
		}
		out = append(out, n)
	}
	return out
}

// fontSize is the Go Mono size in pixels; cells are its advance wide and
// its line height tall.
const fontSize = 15

// PNG draws the screen.
func (sc Screen) PNG() ([]byte, error) {
	regular, err := face(gomono.TTF)
	if err != nil {
		return nil, err
	}
	bold, err := face(gomonobold.TTF)
	if err != nil {
		return nil, err
	}
	adv, _ := regular.GlyphAdvance('M')
	cw := adv.Ceil()
	m := regular.Metrics()
	ch := (m.Ascent + m.Descent).Ceil() + 2
	const pad = 10
	img := image.NewRGBA(image.Rect(0, 0, sc.Cols*cw+2*pad, sc.Rows*ch+2*pad))
	draw.Draw(img, img.Bounds(), image.NewUniform(DefaultBG), image.Point{}, draw.Src)
	for y, row := range sc.Cells {
		for x, c := range row {
			r := image.Rect(pad+x*cw, pad+y*ch, pad+(x+1)*cw, pad+(y+1)*ch)
			if c.BG != DefaultBG {
				draw.Draw(img, r, image.NewUniform(c.BG), image.Point{}, draw.Src)
			}
			if c.R == ' ' {
				continue
			}
			f := regular
			if c.Bold {
				f = bold
			}
			d := font.Drawer{Dst: img, Src: image.NewUniform(c.FG), Face: f,
				Dot: fixed.P(r.Min.X, r.Min.Y+1+m.Ascent.Ceil())}
			d.DrawString(string(c.R))
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return buf.Bytes(), nil
}

func face(ttf []byte) (font.Face, error) {
	f, err := opentype.Parse(ttf)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFont, err)
	}
	fc, err := opentype.NewFace(f, &opentype.FaceOptions{Size: fontSize, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFont, err)
	}
	return fc, nil
}
