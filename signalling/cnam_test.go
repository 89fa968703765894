package signalling

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func TestSanitizeDisplayName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ACME CORP", "ACME CORP"},
		{`JOHN "JJ" DOE`, "JOHN JJ DOE"},
		{`BACK\SLASH\"`, "BACKSLASH"},
		{"CR\r\nLF: x", "CR LF: x"},
		{"  tabs\t\tand  spaces  ", "tabs and spaces"},
		{"nul\x00byte\x7f", "nul byte"},
		{"bad utf8 \xff\xfe here", "bad utf8 here"},
		{"bidi \u202egnp.exe", "bidi gnp.exe"},
		{"José Müller 東京", "José Müller 東京"},
		{strings.Repeat("A", 100), strings.Repeat("A", 64)},
		{strings.Repeat("é", 70), strings.Repeat("é", 64)},
		{"\"\"\\", ""},
		{"", ""},
	} {
		if got := sanitizeDisplayName(tc.in); got != tc.want {
			t.Errorf("sanitizeDisplayName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsUSCanadaNumber(t *testing.T) {
	for n, want := range map[string]bool{
		"+12125550100":  true,  // New York
		"+14165550123":  true,  // Toronto
		"+17875550100":  true,  // Puerto Rico: a US territory
		"+18005550100":  true,  // toll-free has the shape
		"+18765550100":  false, // Jamaica: NANP, not US/Canada
		"+18095550100":  false, // Dominican Republic
		"+441632960000": false,
		"+1212555010":   false, // 9 digits
		"+121255501000": false, // 11 digits
		"+11125550100":  false, // NPA starting with 1
		"+10125550100":  false, // NPA starting with 0
		"+12115550100":  false, // N11 NPA
		"+19995550100":  false, // NPA middle digit 9 (reserved)
		"+12121550100":  false, // NXX starting with 1
		"+12124110100":  false, // N11 NXX
		"12125550100":   false, // no +
		"+1212555010a":  false,
		"":              false,
	} {
		if got := isUSCanadaNumber(n); got != want {
			t.Errorf("isUSCanadaNumber(%q) = %v, want %v", n, got, want)
		}
	}
}

func TestParseLookupV2(t *testing.T) {
	for _, tc := range []struct {
		body, want string
		err        bool
	}{
		{`{"caller_name":{"caller_name":"ACME CORP","caller_type":"BUSINESS","error_code":null}}`, "ACME CORP", false},
		{`{"caller_name":{"caller_name":"Jane \"Q\" Doe","caller_type":"CONSUMER"}}`, "Jane Q Doe", false},
		{`{"caller_name":{"caller_name":null,"caller_type":null,"error_code":60600}}`, "", false},
		{`{"caller_name":{"caller_name":"STALE","error_code":60601}}`, "", false},
		{`{"caller_name":null,"phone_number":"+12125550100"}`, "", false},
		{`{"phone_number":"+12125550100","valid":true}`, "", false},
		{`{"caller_name":{"caller_name":""}}`, "", false},
		{`not json`, "", true},
		{`{"caller_name":"ACME"}`, "", true}, // a string where the object goes
		{``, "", true},
	} {
		got, err := parseLookupV2([]byte(tc.body))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseLookupV2(%s) = %q, %v; want %q, error %v", tc.body, got, err, tc.want, tc.err)
		}
	}
}

func TestCNAMURL(t *testing.T) {
	if got := cnamURL("https://lookups.example/v2/PhoneNumbers/{number}?Fields=caller_name", "+12125550100"); got !=
		"https://lookups.example/v2/PhoneNumbers/%2B12125550100?Fields=caller_name" {
		t.Errorf("path: %s", got)
	}
	if got := cnamURL("http://x/cnam?n={number}", "+1 2&x"); got != "http://x/cnam?n=%2B1+2%26x" {
		t.Errorf("query: %s", got)
	}
	for _, bad := range []string{"ftp://x/{number}", "https://x/lookup", "://{number}", "/{number}"} {
		c := DefaultConfig()
		c.CNAMURL = bad
		if err := c.validateCNAM(); err == nil {
			t.Errorf("cnam_url %q accepted", bad)
		}
	}
	c := DefaultConfig()
	c.CNAMURL = "https://AC1:tok@lookups.twilio.com/v2/PhoneNumbers/{number}?Fields=caller_name"
	if err := c.validateCNAM(); err != nil {
		t.Errorf("Twilio's URL refused: %v", err)
	}
	c.CNAMTimeout = 0
	if err := c.validateCNAM(); err == nil {
		t.Error("a zero --cnam-timeout accepted")
	}
}

func TestCNAMCacheLRU(t *testing.T) {
	c := newCNAMCache(2)
	now := time.Now()
	c.put("+12125550101", "ONE", now.Add(time.Hour))
	c.put("+12125550102", "", now.Add(time.Hour)) // a miss, cached too
	if _, ok := c.get("+12125550101", now); !ok {
		t.Fatal("ONE not cached")
	}
	c.put("+12125550103", "THREE", now.Add(time.Hour)) // evicts 102, the least recently used
	if _, ok := c.get("+12125550102", now); ok {
		t.Error("102 survived past the cache's size")
	}
	if n, ok := c.get("+12125550101", now); !ok || n != "ONE" {
		t.Errorf("101: %q %v", n, ok)
	}
	if _, ok := c.get("+12125550103", now.Add(2*time.Hour)); ok {
		t.Error("an expired entry was returned")
	}
	if c.len() != 1 {
		t.Errorf("expired entry kept: %d entries", c.len())
	}
}

// TestCNAMClient runs the client against a real HTTP server: a name, a
// miss (cached), a 500, and a server slower than the timeout.
func TestCNAMClient(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch strings.TrimPrefix(r.URL.Path, "/v2/PhoneNumbers/") {
		case "+12125550101":
			_ = json.NewEncoder(w).Encode(map[string]any{"caller_name": map[string]any{"caller_name": "ACME\r\nCORP", "caller_type": "BUSINESS", "error_code": nil}})
		case "+12125550102":
			_, _ = w.Write([]byte(`{"caller_name":{"caller_name":null,"caller_type":null,"error_code":null}}`))
		case "+12125550103":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "+12125550104":
			select {
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.CNAMURL = srv.URL + "/v2/PhoneNumbers/{number}?Fields=caller_name"
	// The fast answers must beat the timeout on a loaded machine too (at
	// 300 ms a slow loopback round trip counted a timeout); the slow
	// source is far past it.
	cfg.CNAMTimeout = 2 * time.Second
	reg := prometheus.NewRegistry()
	c := newCNAMClient(t.Context(), cfg, reg, zerolog.Nop())
	ctx := context.Background()
	count := func(result string) float64 {
		return counterValue(t, reg, "xtrunk_sip_cnam_lookups_total", "TK1", result)
	}

	if got := c.lookup(ctx, "TK1", "+12125550101"); got != "ACME CORP" {
		t.Errorf("name: %q", got)
	}
	if got := c.lookup(ctx, "TK1", "+12125550101"); got != "ACME CORP" {
		t.Errorf("cached name: %q", got)
	}
	if got := c.lookup(ctx, "TK1", "+12125550102"); got != "" {
		t.Errorf("miss: %q", got)
	}
	_ = c.lookup(ctx, "TK1", "+12125550102")
	if got := c.lookup(ctx, "TK1", "+12125550103"); got != "" {
		t.Errorf("error: %q", got)
	}
	start := time.Now()
	if got := c.lookup(ctx, "TK1", "+12125550104"); got != "" {
		t.Errorf("timeout: %q", got)
	}
	t.Logf("a 10 s source held the lookup %v (timeout %v)", time.Since(start).Round(time.Millisecond), cfg.CNAMTimeout)
	for result, want := range map[string]float64{cnamHit: 1, cnamCached: 2, cnamMiss: 1, cnamError: 1, cnamTimeout: 1} {
		if got := count(result); got != want {
			t.Errorf("result %s counted %v times, want %v", result, got, want)
		}
	}
	if n := hits.Load(); n != 4 {
		t.Errorf("%d requests reached the source, want 4 (the cache answers the rest)", n)
	}
}

func FuzzSanitizeDisplayName(f *testing.F) {
	for _, s := range []string{"ACME CORP", `a"b\c`, "x\r\ny", "\xff\xfe", strings.Repeat("é", 80), "\u202e", "  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := sanitizeDisplayName(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of %q: %q", s, out)
		}
		if n := utf8.RuneCountInString(out); n > maxCNAMName {
			t.Fatalf("%d characters out of %q", n, s)
		}
		if strings.ContainsAny(out, "\"\\\r\n\x00\t") || out != strings.TrimSpace(out) {
			t.Fatalf("unsafe display name %q out of %q", out, s)
		}
		if sanitizeDisplayName(out) != out {
			t.Fatalf("not idempotent: %q -> %q", out, sanitizeDisplayName(out))
		}
	})
}

func FuzzParseLookupV2(f *testing.F) {
	for _, s := range []string{
		`{"caller_name":{"caller_name":"ACME CORP","caller_type":"BUSINESS","error_code":null}}`,
		`{"caller_name":{"caller_name":null,"error_code":60600}}`,
		`{"caller_name":null}`, `{}`, `[]`, `null`, `{"caller_name":{"caller_name":"\u0000\""}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, err := parseLookupV2(body)
		if err != nil && name != "" {
			t.Fatalf("a name (%q) with an error", name)
		}
		if name != sanitizeDisplayName(name) {
			t.Fatalf("unsanitised name %q", name)
		}
	})
}

// counterValue reads the counter name{trunk,result} from reg (0 when it
// has not been counted).
func counterValue(t *testing.T, reg *prometheus.Registry, name, trunk, result string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["trunk"] == trunk && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
