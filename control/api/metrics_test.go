package api_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xtrunk/xtrunk/control/api"
)

// TestAPIMetrics: requests are counted by route template (never the
// path with its sids) and status, and their latency observed.
func TestAPIMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, "sqlite", api.WithRegistry(reg))
	get := func(path string, user, pass string) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.SetBasicAuth(user, pass)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	get("/v1/Trunks", e.main.Sid, e.main.AuthToken)
	get("/v1/Trunks/TK00000000000000000000000000000000", e.main.Sid, e.main.AuthToken)
	get("/nowhere/TK00000000000000000000000000000000", e.main.Sid, e.main.AuthToken)
	mf, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	latency := 0
	for _, f := range mf {
		if f.GetName() == "xtrunk_api_request_seconds" {
			latency = len(f.GetMetric())
		}
		if f.GetName() != "xtrunk_api_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got[l["route"]+" "+l["method"]+" "+l["status"]] = m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{"/v1/Trunks GET 200": 1, "/v1/Trunks/TK* GET 404": 1, "unmatched GET 404": 1} {
		if got[k] != want {
			t.Errorf("requests %q = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
	if n := latency; n != 3 {
		t.Errorf("latency series: %d, want 3", n)
	}
}
