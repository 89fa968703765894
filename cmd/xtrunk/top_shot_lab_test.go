package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/deploy/termshot"
)

// topScreenshot captures xtrunk top's tmux pane with its colours
// (capture-pane -e) and draws it as a PNG with deploy/termshot: the
// capture has colours and the image decodes at the pane's size. With
// XTRUNK_NOC_SCREENSHOTS=DIR (relative to the repository's root) it is
// written there as xtrunk-top.png, the README's screenshot.
func topScreenshot(t *testing.T, tmux func(...string) (string, error), cols, rows int) {
	t.Helper()
	capture, err := tmux("capture-pane", "-e", "-p", "-t", "top")
	if err != nil {
		t.Fatalf("capture-pane -e: %v %s", err, capture)
	}
	sc := termshot.Parse(capture, cols, rows)
	// the title bar has a background, the call's row (MOS 4.4) is green
	var fg, bg bool
	for _, row := range sc.Cells {
		for _, c := range row {
			fg = fg || c.R != ' ' && c.FG != termshot.DefaultFG && c.FG != termshot.DefaultBG
			bg = bg || c.BG != termshot.DefaultBG
		}
	}
	if !fg || !bg || !strings.Contains(capture, "\x1b[") {
		t.Errorf("xtrunk top's screen without colours (foreground %v, background %v):\n%q", fg, bg, capture)
	}
	b, err := sc.PNG()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("xtrunk top's PNG: %v", err)
	}
	if img.Bounds().Dx() < cols*6 || img.Bounds().Dy() < rows*12 {
		t.Errorf("xtrunk top's PNG is %v for %dx%d cells", img.Bounds(), cols, rows)
	}
	if dir := os.Getenv("XTRUNK_NOC_SCREENSHOTS"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", "..", dir)
		}
		out := filepath.Join(dir, "xtrunk-top.png")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}
}
