package render

import (
	"context"
	"errors"
	"math"
	"net/http"
	"os"
	"testing"
	"time"
)

// Values read as Grafana shows them in each unit the dashboards use.
func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		unit string
		want string
	}{
		{0.05, "percentunit", "5%"}, {0.9731, "percentunit", "97.3%"}, {1, "percentunit", "100%"},
		{0.0125, "s", "12.5 ms"}, {2.5, "s", "2.5 s"}, {300, "s", "5 min"}, {0.0000042, "s", "4.2 µs"},
		{1500, "pps", "1.5 K p/s"}, {0.25, "reqps", "0.25 req/s"}, {2.5e6, "bps", "2.5 Mb/s"},
		{4.4, "short", "4.4"}, {0, "short", "0"}, {math.NaN(), "short", "NaN"}, {0.004, "short", "0.004"},
	} {
		if got := format(c.v, c.unit); got != c.want {
			t.Errorf("format(%v, %q) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
}

// Legends: legendFormat with labels, else the label set.
func TestLegend(t *testing.T) {
	l := map[string]string{"__name__": "up", "job": "xtrunk-sip", "instance": "h:1"}
	if got := legend("{{job}} {{ instance }}", l); got != "xtrunk-sip h:1" {
		t.Errorf("%q", got)
	}
	if got := legend("", l); got != `up{instance="h:1", job="xtrunk-sip"}` {
		t.Errorf("%q", got)
	}
}

// errTransport stands for a Prometheus that cannot be reached: the fuzz
// exercises the dashboard's reading and layout, not the network.
type errTransport struct{}

func (errTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network here")
}

// The committed dashboard draws (every panel saying "No data" without a
// Prometheus), and any input is an error or an image, never a panic or
// an unbounded one.
func FuzzRender(f *testing.F) {
	raw, err := os.ReadFile("../xtrunk-noc.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{"panels":[{"type":"stat","gridPos":{"x":0,"y":0,"w":24,"h":3},"targets":[{"expr":"up"}]}]}`))
	f.Add([]byte(`{"panels":[{"type":"row","gridPos":{"x":0,"y":0,"w":24,"h":1},"panels":[{"type":"table","gridPos":{"x":0,"y":1,"w":2,"h":2}}]}]}`))
	f.Add([]byte(`{"panels":[{"gridPos":{"x":23,"y":399,"w":1,"h":1}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := Options{Prometheus: "http://prometheus.invalid", Client: &http.Client{Transport: errTransport{}},
			End: time.Unix(1e9, 0), Range: time.Minute, Width: 600}
		res, err := Render(context.Background(), b, o)
		if err == nil && len(res.PNG) == 0 {
			t.Fatal("no error and no image")
		}
	})
}
