// Command noc-render draws xtrunk's Grafana dashboard as a PNG from a
// Prometheus, for hosts without Grafana and for the README's screenshot:
//
//	go run ./deploy/grafana/render/noc-render -prometheus http://127.0.0.1:9090 \
//	    -dashboard deploy/grafana/xtrunk-noc.json -range 1h -o noc.png
//
// It lives outside cmd/xtrunk: the product binary does not carry the
// plotting libraries.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/deploy/grafana/render"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "noc-render:", err)
		os.Exit(1)
	}
}

func run() error {
	prom := flag.String("prometheus", "http://127.0.0.1:9090", "Prometheus base URL")
	dash := flag.String("dashboard", "deploy/grafana/xtrunk-noc.json", "Grafana dashboard JSON")
	out := flag.String("o", "noc-dashboard.png", "PNG to write")
	rng := flag.Duration("range", time.Hour, "time range, ending now")
	width := flag.Int("width", 1800, "image width in pixels")
	var vars []string
	flag.Func("var", "dashboard variable NAME=VALUE (repeatable; default: its All value)", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want NAME=VALUE: %q", s)
		}
		vars = append(vars, s)
		return nil
	})
	flag.Parse()
	raw, err := os.ReadFile(*dash)
	if err != nil {
		return err
	}
	o := render.Options{Prometheus: *prom, Range: *rng, Width: *width, Vars: map[string]string{}}
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		o.Vars[k] = val
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := render.Render(ctx, raw, o)
	if err != nil {
		return err
	}
	empty := 0
	for _, p := range res.Panels {
		if p.Series == 0 {
			empty++
			fmt.Fprintf(os.Stderr, "panel %q: no data %s\n", p.Title, p.Err)
		}
	}
	if err := os.WriteFile(*out, res.PNG, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d panels, %d without data\n", *out, len(res.Panels), empty)
	return nil
}
