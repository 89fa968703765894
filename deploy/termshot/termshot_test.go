package termshot

import (
	"bytes"
	"image/png"
	"testing"
)

// What tmux capture-pane -e emits: colours and bold carry across cells
// and lines, reverse video swaps, 256 and true colours map, resets
// return to the defaults, other sequences leave nothing on screen.
func TestParse(t *testing.T) {
	capture := "\x1b[1;32mOK\x1b[0m x\x1b]0;title\x07y\n" +
		"\x1b[7mR\x1b[27m\x1b[38;5;196mr\x1b[38;2;1;2;3mt\x1b[39m\x1b[?25ld\n" +
		"\x1b[44mb\n" +
		"c"
	sc := Parse(capture, 6, 4)
	if sc.Rows != 4 || len(sc.Cells) != 4 || len(sc.Cells[0]) != 6 {
		t.Fatalf("grid %d rows, %d cols", len(sc.Cells), len(sc.Cells[0]))
	}
	text := func(y int) string {
		var b []rune
		for _, c := range sc.Cells[y] {
			b = append(b, c.R)
		}
		return string(b)
	}
	for y, want := range []string{"OK xy ", "Rrtd  ", "b     ", "c     "} {
		if got := text(y); got != want {
			t.Errorf("row %d: %q, want %q", y, got, want)
		}
	}
	c := sc.Cells
	if !c[0][0].Bold || c[0][0].FG != ansi16[10] { // bold green is bright green
		t.Errorf("bold green: %+v", c[0][0])
	}
	if c[0][3].Bold || c[0][3].FG != DefaultFG {
		t.Errorf("after reset: %+v", c[0][3])
	}
	if c[1][0].FG != DefaultBG || c[1][0].BG != DefaultFG {
		t.Errorf("reverse: %+v", c[1][0])
	}
	if c[1][1].FG != color256(196) || c[1][1].FG.R != 0xff || c[1][1].FG.G != 0 {
		t.Errorf("256-colour red: %+v", c[1][1])
	}
	if c[1][2].FG.R != 1 || c[1][2].FG.G != 2 || c[1][2].FG.B != 3 {
		t.Errorf("true colour: %+v", c[1][2])
	}
	if c[1][3].FG != DefaultFG {
		t.Errorf("39: %+v", c[1][3])
	}
	if c[2][0].BG != ansi16[4] || c[3][0].BG != ansi16[4] {
		t.Errorf("a background carries to the next line: %+v %+v", c[2][0], c[3][0])
	}
	b, err := sc.PNG()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w < 6*7 || h < 4*14 {
		t.Errorf("image %dx%d for 6x4 cells", w, h)
	}
}

// Any capture parses to the grid asked for, without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "\x1b", "\x1b[", "\x1b[38;5", "\x1b[38;2;1m", "\x1b]0;x", "a\tb\n\x1b[1;31mc", "\x1b[99999999999m", "\x1b[38:5:300m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc := Parse(s, 20, 5)
		if len(sc.Cells) != 5 {
			t.Fatalf("%d rows", len(sc.Cells))
		}
		for _, row := range sc.Cells {
			if len(row) != 20 {
				t.Fatalf("%d cols", len(row))
			}
		}
	})
}
