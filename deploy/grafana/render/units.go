package render

import (
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
)

// format writes v in Grafana's unit (fieldConfig.defaults.unit) the way
// its panels do: SI prefixes for rates and sizes, percentunit as a
// percentage, seconds scaled to ms/µs or minutes.
func format(v float64, unit string) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	switch unit {
	case "percentunit":
		return trim(v*100, 1) + "%"
	case "percent":
		return trim(v, 1) + "%"
	case "s":
		return duration(v)
	case "ms":
		return duration(v / 1000)
	case "reqps":
		return si(v) + " req/s"
	case "pps":
		return si(v) + " p/s"
	case "ops":
		return si(v) + " ops/s"
	case "bps":
		return si(v) + "b/s"
	case "Bps":
		return si(v) + "B/s"
	case "bytes":
		return si(v) + "B"
	}
	return si(v)
}

func duration(s float64) string {
	a := math.Abs(s)
	switch {
	case a == 0:
		return "0 s"
	case a < 1e-3:
		return trim(s*1e6, 1) + " µs"
	case a < 1:
		return trim(s*1e3, 1) + " ms"
	case a < 120:
		return trim(s, 2) + " s"
	case a < 7200:
		return trim(s/60, 1) + " min"
	}
	return trim(s/3600, 1) + " h"
}

// si is v with a K/M/G/T prefix, short as Grafana's "short" unit.
func si(v float64) string {
	a := math.Abs(v)
	for _, p := range []struct {
		f float64
		s string
	}{{1e12, " T"}, {1e9, " G"}, {1e6, " M"}, {1e3, " K"}} {
		if a >= p.f {
			return trim(v/p.f, 2) + p.s
		}
	}
	if a != 0 && a < 0.01 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return trim(v, 2)
}

// trim formats v with at most prec decimals, without trailing zeros.
func trim(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// unitTicks labels an axis' ticks in the panel's unit.
type unitTicks struct{ unit string }

func (u unitTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = format(ts[i].Value, u.unit)
		}
	}
	return ts
}
