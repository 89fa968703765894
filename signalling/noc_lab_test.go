package signalling

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// Issue 14's Done-when: a real Prometheus (Debian's) scrapes xtrunk api,
// sip and relay in a namespace lab while SIPp places calls on two trunks —
// on one of them the PBX's audio loses 5 % of its packets (the pcap it
// plays has every 20th packet cut out) — toward two carrier gateways, the
// preferred one silent. Through Prometheus' HTTP API: every recording rule
// of deploy/prometheus returns data, the carrier-down alert fires for the
// silent gateway, every PromQL expression of every panel of the Grafana
// dashboard returns a series, and the lossy trunk shows the loss and a
// lower MOS than the clean one. Each process's /metrics passes
// `promtool check metrics`.
func TestNOCLab(t *testing.T) {
	for _, bin := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("the NOC lab runs Debian's prometheus package (make test-deps): %v", err)
		}
	}
	l := newTrunkLab(t, relayXtrunk, "--metrics", netip.AddrPortFrom(testbed.TriangleRelayCallerIP, 9101).String())
	tri := l.tri
	relayMetrics := netip.AddrPortFrom(tri.RelayCallerIP, 9101).String()
	apiMetrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	sipMetrics := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	promAddr := netip.AddrPortFrom(tri.RelayCallerIP, uint16(l.port())).String()
	api2 := l.startMetricsAPI(t, apiMetrics)

	// The lossy trunk: the acme credential list on a second domain.
	cls := l.api.get(t, "/2010-04-01/Accounts/"+labAccountSid+"/SIP/CredentialLists.json")
	cl := cls["credential_lists"].([]any)[0].(map[string]any)["sid"].(string)
	lossyHost := "lossy.pstn." + testDomain
	lossySid := l.api.create(t, "/v1/Trunks", url.Values{"FriendlyName": {"lossy"}, "DomainName": {lossyHost}})
	l.api.create(t, "/v1/Trunks/"+lossySid+"/CredentialLists", url.Values{"CredentialListSid": {cl}})

	carrierPort, carrierMedia, silentPort := l.port(), l.port(), l.port()
	live := "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort) + ";priority=20"
	silent := "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(silentPort) + ";priority=5"
	silentGW := tri.CalleeIP.String() + ":" + strconv.Itoa(silentPort) + ";transport=udp"
	// Prometheus first: it scrapes sip from its start, and the first calls
	// come while the silent gateway is still counted up (3 probes, about
	// 10 s), so they try it, time out and fail over.
	promStart := time.Now()
	prom := l.startPrometheus(t, promAddr, map[string]string{"xtrunk-api": apiMetrics, "xtrunk-sip": sipMetrics, "xtrunk-relay": relayMetrics})
	lossyScenario := l.lossyScenario(t)
	sipAddr := l.startSIP(t, sipOpts{metrics: sipMetrics, extra: []string{"--carrier", silent, "--carrier", live,
		"--carrier-probe-interval", "2s"}})
	l.startUAS(t, tri.Callee, "noc-carrier", "uas_carrier_options.xml", tri.CalleeIP, carrierPort, carrierMedia,
		"-rtp_echo", "-timeout", "180s")

	// Two calls on each trunk, one after the other (so that increase()
	// sees every counter move), both trunks at once; eight for the
	// README's screenshot, so that its graphs span a minute or so.
	calls := "2"
	if os.Getenv("XTRUNK_NOC_SCREENSHOTS") != "" {
		calls = "8"
	}
	clean := l.startSIPp(t, tri.Caller, "noc-clean", "uac_auth.xml", tri.CallerIP, l.port(), l.port(),
		nocPBXArgs(l.number(), labTrunkHost, sipAddr.String(), "noc-clean-%u@lab", calls)...)
	lossy := l.startSIPp(t, tri.Caller, "noc-lossy", lossyScenario, tri.CallerIP, l.port(), l.port(),
		nocPBXArgs(l.number(), lossyHost, sipAddr.String(), "noc-lossy-%u@lab", calls)...)
	clean.wait(t)
	lossy.wait(t)
	api2.get(t, "/v1/Trunks")
	api2.get(t, "/v1/Trunks/"+lossySid)

	for name, addr := range map[string]string{"api": apiMetrics, "sip": sipMetrics, "relay": relayMetrics} {
		l.promtoolCheckMetrics(t, name, addr)
	}

	liveGW := tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort) + ";transport=udp"
	pending := append(l.nocExpectations(t, lossySid), nocCheck{name: "the carrier-down alert", check: func(p *promClient) string {
		// the silent gateway was probed down, the answering one not
		alerts, err := p.alerts()
		switch {
		case err != nil:
			return err.Error()
		case !alerts["XtrunkCarrierDown/"+silentGW]:
			return fmt.Sprintf("not firing for %s: %v", silentGW, alerts)
		case alerts["XtrunkCarrierDown/"+liveGW]:
			return fmt.Sprintf("firing for the answering gateway %s: %v", liveGW, alerts)
		}
		return ""
	}})
	t.Logf("%d expectations on Prometheus", len(pending))
	deadline := time.Now().Add(45 * time.Second)
	for {
		var still []nocCheck
		for _, c := range pending {
			if msg := c.check(prom); msg != "" {
				c.last = msg
				still = append(still, c)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range pending {
				t.Errorf("%s: %s", c.name, c.last)
			}
			return
		}
		time.Sleep(time.Second)
	}
	renderDashboard(t, prom, time.Since(promStart))
}

// nocPBXArgs are a termination UAC's for calls (a count) in a row on host.
func nocPBXArgs(called, host, server, cid, calls string) []string {
	return []string{"-cid_str", cid, "-s", called, "-key", "trunk", host, "-key", "caller", labDID,
		"-au", testUser, "-ap", testPassword, "-auth_uri", called + "@" + host, "-m", calls, "-l", "1", "-r", "1", server}
}

// nocCheck is one expectation on Prometheus, retried until it holds.
type nocCheck struct {
	name  string
	check func(p *promClient) string // "" once it holds
	last  string
}

// nocExpectations: every recording rule has data, every dashboard
// expression a series, and the lossy trunk its loss and lower MOS.
func (l *trunkLab) nocExpectations(t *testing.T, lossySid string) []nocCheck {
	var checks []nocCheck
	nonEmpty := func(name, q string) nocCheck {
		return nocCheck{name: name, check: func(p *promClient) string {
			res, err := p.query(q)
			if err != nil {
				return err.Error()
			}
			if len(res) == 0 {
				return "no series for " + q
			}
			return ""
		}}
	}
	for _, r := range recordingRules(t) {
		checks = append(checks, nonEmpty("recording rule "+r, r))
	}
	for _, e := range dashboardExprs(t) {
		checks = append(checks, nonEmpty("dashboard panel "+e[0], e[1]))
	}
	value := func(p *promClient, q string) (float64, string) {
		res, err := p.query(q)
		if err != nil {
			return 0, err.Error()
		}
		if len(res) != 1 {
			return 0, fmt.Sprintf("%d series for %s", len(res), q)
		}
		return res[0], ""
	}
	checks = append(checks, nocCheck{name: "the lossy trunk's quality", check: func(p *promClient) string {
		q := func(rule, trunk string) string {
			return rule + `{trunk="` + trunk + `",leg="customer"}`
		}
		loss, msg := value(p, q("trunk_leg:xtrunk_sip_call_loss_ratio:avg1h", lossySid))
		if msg != "" {
			return msg
		}
		cleanLoss, msg := value(p, q("trunk_leg:xtrunk_sip_call_loss_ratio:avg1h", l.acmeSid))
		if msg != "" {
			return msg
		}
		mosLossy, msg := value(p, q("trunk_leg:xtrunk_sip_call_mos:avg1h", lossySid))
		if msg != "" {
			return msg
		}
		mosClean, msg := value(p, q("trunk_leg:xtrunk_sip_call_mos:avg1h", l.acmeSid))
		if msg != "" {
			return msg
		}
		if loss < 0.03 || loss > 0.08 || cleanLoss > 0.01 || mosLossy > mosClean-0.2 || mosClean < 4 {
			return fmt.Sprintf("loss %.4f (clean %.4f), MOS %.2f (clean %.2f): want about 5 %% loss and a MOS lower by 0.2 or more",
				loss, cleanLoss, mosLossy, mosClean)
		}
		t.Logf("customer leg: lossy trunk loss %.4f MOS %.2f, clean trunk loss %.4f MOS %.2f", loss, mosLossy, cleanLoss, mosClean)
		return ""
	}})
	return checks
}

// recordingRules are the record names of deploy/prometheus.
func recordingRules(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/prometheus/recording.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Record)
		}
	}
	if len(out) == 0 {
		t.Fatal("no recording rules")
	}
	return out
}

// dashboardExprs are every panel's expressions (title, expr), with the
// trunk variable at its "All" value.
func dashboardExprs(t *testing.T) [][2]string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/grafana/xtrunk-noc.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, [2]string{p.Title, strings.ReplaceAll(tg.Expr, "$trunk", ".*")})
		}
	}
	return out
}

// lossyScenario is uac_auth.xml playing a copy of the G.711 pcap with
// every 20th RTP packet cut out (5 % loss, the first packets kept so the
// relay latches on them); it returns its path relative to testdata.
func (l *trunkLab) lossyScenario(t *testing.T) string {
	t.Helper()
	pcap := filepath.Join(l.dir, "g711a-lossy.pcap")
	if err := cutPackets(labG711Pcap, pcap, 20); err != nil {
		t.Fatal(err)
	}
	sc, err := os.ReadFile(filepath.Join(l.testdata, "uac_auth.xml"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(l.dir, "uac_auth_lossy.xml")
	if err := os.WriteFile(out, []byte(strings.ReplaceAll(string(sc), labG711Pcap, pcap)), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(l.testdata, out)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// cutPackets copies a classic pcap file, leaving out every nth record
// after the first five.
func cutPackets(src, dst string, nth int) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if len(b) < 24 {
		return fmt.Errorf("%s: not a pcap", src)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if binary.BigEndian.Uint32(b) == 0xa1b2c3d4 {
		order = binary.BigEndian
	}
	out := append([]byte(nil), b[:24]...)
	for i, off := 0, 24; off+16 <= len(b); i++ {
		n := int(order.Uint32(b[off+8:]))
		end := off + 16 + n
		if end > len(b) {
			return fmt.Errorf("%s: truncated record %d", src, i)
		}
		if i < 5 || i%nth != 0 {
			out = append(out, b[off:end]...)
		}
		off = end
	}
	return os.WriteFile(dst, out, 0o600)
}

// metricsAPI is a second `xtrunk api` on the lab's store, with --metrics.
type metricsAPI struct{ c *apiClient }

func (a metricsAPI) get(t *testing.T, path string) { a.c.get(t, path) }

// startMetricsAPI runs `xtrunk api` with --metrics on addr in the relay
// namespace, on a unix socket of its own.
func (l *trunkLab) startMetricsAPI(t *testing.T, metrics string) metricsAPI {
	t.Helper()
	sock := filepath.Join(l.dir, "api-metrics.sock")
	cmd := l.tri.Relay.Command(context.Background(), l.bin, "api", "--config", l.config, "--listen", "unix:"+sock,
		"--db", l.dsn, "--domain", testDomain, "--edges", "lab", "--metrics", metrics, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "XTRUNK_ACCOUNT_SID="+labAccountSid, "XTRUNK_AUTH_TOKEN="+labAuthToken)
	p, err := l.tri.Relay.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("xtrunk api (metrics):\n%s", lastLines(p.Output(), 50))
		}
	})
	c := &apiClient{hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _, err := c.do("GET", "/v1/Trunks", nil); err == nil && code == http.StatusOK {
			return metricsAPI{c}
		}
		if time.Now().After(deadline) {
			t.Fatalf("xtrunk api with --metrics not answering:\n%s", p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nsHTTP is an HTTP client whose connections are made in the relay
// namespace.
func (l *trunkLab) nsHTTP() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := l.tri.Relay.Do(func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// promtoolCheckMetrics scrapes addr's /metrics and runs `promtool check
// metrics` on it.
func (l *trunkLab) promtoolCheckMetrics(t *testing.T, name, addr string) {
	t.Helper()
	res, err := l.nsHTTP().Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", name, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", name, err, out)
	}
}

// promClient queries the lab's Prometheus.
type promClient struct {
	hc   *http.Client
	base string
}

// startPrometheus runs Debian's Prometheus in the relay namespace on
// listen, scraping targets (job → address) every second and evaluating
// deploy/prometheus's rules every second, the alerts' for: cut to 1 s.
func (l *trunkLab) startPrometheus(t *testing.T, listen string, targets map[string]string) *promClient {
	t.Helper()
	dir := filepath.Join(l.dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	rec, err := filepath.Abs("../deploy/prometheus/recording.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := os.ReadFile("../deploy/prometheus/alerts.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	fast := regexp.MustCompile(`(?m)^(\s+)for: \S+$`).ReplaceAllString(string(alerts), "${1}for: 1s")
	alertsPath := filepath.Join(dir, "alerts.rules.yml")
	if err := os.WriteFile(alertsPath, []byte(fast), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n" +
		"rule_files:\n  - " + rec + "\n  - " + alertsPath + "\nscrape_configs:\n"
	for job, addr := range targets {
		cfg += "  - job_name: " + job + "\n    static_configs:\n      - targets: ['" + addr + "']\n"
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := l.tri.Relay.Start(context.Background(), "prometheus", "--config.file", cfgPath,
		"--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", listen, "--log.level", "warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("prometheus:\n%s", lastLines(p.Output(), 40))
		}
	})
	pc := &promClient{hc: l.nsHTTP(), base: "http://" + listen}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := pc.hc.Get(pc.base + "/-/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return pc
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("prometheus exited:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %v\n%s", err, p.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// query runs an instant query: the vector's values (NaN included).
func (p *promClient) query(q string) ([]float64, error) {
	res, err := p.hc.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	out := make([]float64, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, r.Value[1])
		}
		out = append(out, f)
	}
	return out, nil
}

// alerts are the firing alerts, as "alertname/gateway".
func (p *promClient) alerts() (map[string]bool, error) {
	res, err := p.hc.Get(p.base + "/api/v1/alerts")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range body.Data.Alerts {
		if a.State == "firing" {
			out[a.Labels["alertname"]+"/"+a.Labels["gateway"]] = true
		}
	}
	return out, nil
}
