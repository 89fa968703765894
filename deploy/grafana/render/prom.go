package render

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// series is one time series of a range query: its labels and points.
type series struct {
	labels map[string]string
	t, v   []float64 // unix seconds, values (NaN where Prometheus said so)
}

// last is the series' last value that is a number.
func (s series) last() (float64, bool) {
	for i := len(s.v) - 1; i >= 0; i-- {
		if !math.IsNaN(s.v[i]) && !math.IsInf(s.v[i], 0) {
			return s.v[i], true
		}
	}
	return 0, false
}

// maxResponse bounds what one query_range answer may be: a dashboard's
// panel is tens of series, not the whole TSDB.
const maxResponse = 64 << 20

// queryRange runs expr over [start, end] through Prometheus' HTTP API
// (GET /api/v1/query_range) and returns the matrix.
func queryRange(ctx context.Context, hc *http.Client, base, expr string, start, end time.Time, step time.Duration) ([]series, error) {
	q := url.Values{
		"query": {expr},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrQuery, expr, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrQuery, expr, err)
	}
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("%w: %s: %s: %w", ErrQuery, expr, res.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%w: %s: %s", ErrQuery, expr, body.Error)
	}
	out := make([]series, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s := series{labels: r.Metric}
		for _, p := range r.Values {
			ts, ok := p[0].(float64)
			vs, ok2 := p[1].(string)
			if !ok || !ok2 {
				return nil, fmt.Errorf("%w: %s: point %v", ErrQuery, expr, p)
			}
			v, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: value %q", ErrQuery, expr, vs)
			}
			s.t, s.v = append(s.t, ts), append(s.v, v)
		}
		out = append(out, s)
	}
	return out, nil
}

// legend is a series' name as Grafana shows it: legendFormat with
// {{label}} replaced, else the label set.
func legend(format string, labels map[string]string) string {
	if format != "" && format != "__auto" {
		out := format
		for {
			i := strings.Index(out, "{{")
			if i < 0 {
				break
			}
			j := strings.Index(out[i:], "}}")
			if j < 0 {
				break
			}
			name := strings.TrimSpace(out[i+2 : i+j])
			out = out[:i] + labels[name] + out[i+j+2:]
		}
		return strings.TrimSpace(out)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+`="`+labels[k]+`"`)
	}
	return labels["__name__"] + "{" + strings.Join(parts, ", ") + "}"
}
