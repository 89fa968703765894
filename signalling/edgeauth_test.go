package signalling

import (
	"errors"
	"testing"
	"time"
)

// A hand-over header verifies only for its INVITE, its edge, in time and
// with the secret; every change to a part fails it.
func TestEdgeAuth(t *testing.T) {
	secret := []byte("0123456789abcdef-shared")
	now := time.Unix(1_800_000_000, 0)
	a := edgeAuth{from: "ashburn", to: "dublin", ts: now.Unix(), target: "OU0123456789abcdef0123456789abcdef"}
	a.mac = a.sign(secret, "call-1", "+14155550100")
	got, err := parseEdgeAuth(a.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := got.verify(secret, "dublin", "call-1", "+14155550100", now.Add(5*time.Second)); err != nil {
		t.Fatalf("good header: %v", err)
	}
	for name, check := range map[string]func() error{
		"other Call-ID": func() error { return got.verify(secret, "dublin", "call-2", "+14155550100", now) },
		"other number":  func() error { return got.verify(secret, "dublin", "call-1", "+14155550199", now) },
		"other edge":    func() error { return got.verify(secret, "tokyo", "call-1", "+14155550100", now) },
		"other secret":  func() error { return got.verify([]byte("another-secret-16"), "dublin", "call-1", "+14155550100", now) },
		"no secret":     func() error { return got.verify(nil, "dublin", "call-1", "+14155550100", now) },
		"stale": func() error {
			return got.verify(secret, "dublin", "call-1", "+14155550100", now.Add(edgeAuthValidity+time.Second))
		},
		"from the future": func() error {
			return got.verify(secret, "dublin", "call-1", "+14155550100", now.Add(-edgeAuthValidity-time.Second))
		},
		"target changed": func() error {
			b := got
			b.target = "OUffffffffffffffffffffffffffffffff"
			return b.verify(secret, "dublin", "call-1", "+14155550100", now)
		},
	} {
		if err := check(); !errors.Is(err, ErrEdgeAuth) {
			t.Errorf("%s: %v, want ErrEdgeAuth", name, err)
		}
	}
	for _, bad := range []string{"", "v=1", "v=2;from=a;to=b;ts=1;target=OU1;mac=00", "v=1;from=a;to=b;ts=x;target=OU1;mac=" + hexOf(a.mac),
		"v=1;from=a;to=b;ts=1;target=OU1;mac=zz", "v=1;v=1;from=a;to=b;ts=1;target=OU1;mac=" + hexOf(a.mac), "v=1;from=a;to=b;ts=1;target=OU1;mac=" + hexOf(a.mac) + ";x=1"} {
		if _, err := parseEdgeAuth(bad); !errors.Is(err, ErrEdgeAuth) {
			t.Errorf("%q: %v, want ErrEdgeAuth", bad, err)
		}
	}
}

func hexOf(b []byte) string {
	return edgeAuth{mac: b}.String()[len("v=1;from=;to=;ts=0;target=;mac="):]
}

// Registered addresses: HOST:PORT is UDP, a URI names its transport.
func TestParseEdgeAddress(t *testing.T) {
	for in, want := range map[string]dest{
		"198.18.0.1:5070":                           {host: "198.18.0.1", port: 5070, transport: "UDP"},
		"[2001:db8::1]:5060":                        {host: "2001:db8::1", port: 5060, transport: "UDP"},
		"sip:edge-b.example.net:5080;transport=tcp": {host: "edge-b.example.net", port: 5080, transport: "TCP"},
		"sips:edge-b.example.net":                   {host: "edge-b.example.net", transport: "TLS"},
	} {
		got, err := parseEdgeAddress(in)
		if err != nil || got.host != want.host || got.port != want.port || got.transport != want.transport {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "edge-b", "198.18.0.1:0", "198.18.0.1:99999", "sip:"} {
		if _, err := parseEdgeAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The hand-over header parser never panics and accepts only what it
// prints back the same.
func FuzzParseEdgeAuth(f *testing.F) {
	a := edgeAuth{from: "ashburn", to: "dublin", ts: 1, target: "OU1", mac: make([]byte, 32)}
	f.Add(a.String())
	f.Add("v=1;from=;to=b")
	f.Add(";;==;")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseEdgeAuth(s)
		if err != nil {
			return
		}
		again, err := parseEdgeAuth(got.String())
		if err != nil || again.String() != got.String() {
			t.Fatalf("%q: reparse %q: %v", s, got.String(), err)
		}
	})
}

// The --edge-* settings are checked when the server is made.
func TestEdgeConfig(t *testing.T) {
	good := DefaultConfig()
	good.Edge, good.EdgeSecret, good.EdgeSIPAddress = "ashburn", "0123456789abcdef", "198.18.0.1:5060"
	if err := good.validate(); err != nil {
		t.Fatalf("good: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"short secret":      func(c *Config) { c.EdgeSecret = "short" },
		"bad address":       func(c *Config) { c.EdgeSIPAddress = "edge-b" },
		"negative interval": func(c *Config) { c.EdgeHeartbeat = -time.Second },
		"edge not a label":  func(c *Config) { c.Edge = "ash burn" },
	} {
		c := good
		mod(&c)
		if err := c.validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}
