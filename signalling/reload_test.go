package signalling

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestReload: what a reload applies (carriers, carrier sources, limits,
// timeouts, the guard) and what it reports as taking a restart (and
// keeps), bad values refused with nothing changed, and requests reading
// the settings while a reload swaps them (go test -race).
func TestReload(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	cfg.Carriers = []string{"sip:198.18.2.2:5070"}
	cfg.CarrierSources = []string{"198.18.2.0/24"}
	s := serve(t, cfg, p.st)

	next := cfg
	next.Carriers = []string{"sip:198.18.2.3:5080;priority=5", "sip:gw.carrier.example;transport=tcp"}
	next.CarrierSources = []string{"198.18.3.0/24"}
	next.DefaultCPS, next.DefaultConcurrency = 5, 7
	next.MediaTimeout, next.DrainTimeout = 30*time.Second, 2*time.Minute
	next.GuardMaxRequests, next.GuardBan, next.GuardScanners = 99, time.Hour, []string{"evil"}
	next.Domain, next.ListenUDP, next.GuardMaxSources = "other.example", "127.0.0.1:5999", 17 // restart

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // a request's reads, racing the reload
		for {
			select {
			case <-stop:
				return
			default:
			}
			lv := s.settings()
			_ = len(lv.carriers) + lv.cfg.DefaultCPS + len(lv.carrierNets)
			_ = s.inCarrierNets(netip.MustParseAddr("198.18.3.1"))
			s.abuse.Check(netip.MustParseAddr("192.0.2.1"), "OPTIONS", "x")
		}
	})
	applied, restart, err := s.Reload(next)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	wantApplied := []string{"carrier", "carrier-source", "default-cps", "default-concurrency", "media-timeout", "drain-timeout",
		"guard-max-requests", "guard-ban", "guard-scanner"}
	wantRestart := []string{"listen-udp", "domain", "guard-max-sources"}
	slices.Sort(applied)
	slices.Sort(restart)
	slices.Sort(wantApplied)
	slices.Sort(wantRestart)
	if !slices.Equal(applied, wantApplied) || !slices.Equal(restart, wantRestart) {
		t.Errorf("applied %q, restart %q; want %q and %q", applied, restart, wantApplied, wantRestart)
	}
	lv := s.settings()
	if len(lv.carriers) != 2 || lv.carriers[0].Value.host != "198.18.2.3" || lv.carriers[0].Priority != 5 || lv.carriers[1].Value.transport != "TCP" {
		t.Errorf("carriers after reload: %+v", lv.carriers)
	}
	if !s.inCarrierNets(netip.MustParseAddr("198.18.3.9")) || s.inCarrierNets(netip.MustParseAddr("198.18.2.2")) {
		t.Error("carrier sources not replaced")
	}
	if lv.cfg.DefaultCPS != 5 || lv.cfg.DefaultConcurrency != 7 || lv.cfg.MediaTimeout != 30*time.Second || s.DrainTimeout() != 2*time.Minute {
		t.Errorf("limits/timeouts after reload: %+v", lv.cfg)
	}
	if g := s.abuse.Limits(); g.MaxRequests != 99 || g.Ban != time.Hour || g.MaxSources != DefaultConfig().GuardMaxSources {
		t.Errorf("guard after reload: %+v", g)
	}
	if lv.cfg.Domain != testDomain || lv.cfg.ListenUDP != cfg.ListenUDP || lv.cfg.GuardMaxSources != cfg.GuardMaxSources {
		t.Errorf("keys that take a restart changed: %+v", lv.cfg)
	}

	// the same file again: nothing to apply, the restart keys still named
	applied, restart, err = s.Reload(next)
	if err != nil || len(applied) != 0 || len(restart) != 3 {
		t.Errorf("second reload: applied %q restart %q %v", applied, restart, err)
	}

	// bad values: refused whole, nothing changes
	for name, bad := range map[string]func(*Config){
		"carrier without host":  func(c *Config) { c.Carriers = []string{"sip:;priority=1"} },
		"carrier bad weight":    func(c *Config) { c.Carriers = []string{"sip:198.18.2.9;weight=0"} },
		"carrier-source":        func(c *Config) { c.CarrierSources = []string{"not-a-cidr"} },
		"negative drain":        func(c *Config) { c.DrainTimeout = -time.Second },
		"negative guard limits": func(c *Config) { c.GuardMaxRequests = -1 },
	} {
		c := next
		c.DefaultCPS = 42
		bad(&c)
		if _, _, err := s.Reload(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
	}
	if lv2 := s.settings(); lv2 != lv || lv2.cfg.DefaultCPS != 5 {
		t.Error("a refused reload changed the settings")
	}
}

// TestConfigKeys: every Config field has a yaml key (the reload's diff
// names keys by it).
func TestConfigKeys(t *testing.T) {
	typ := reflect.TypeOf(Config{})
	for i := range typ.NumField() {
		if typ.Field(i).Tag.Get("yaml") == "" {
			t.Errorf("Config.%s has no yaml tag", typ.Field(i).Name)
		}
	}
	for _, k := range reloadable {
		found := false
		for i := range typ.NumField() {
			found = found || yamlKey(typ.Field(i)) == k
		}
		if !found {
			t.Errorf("reloadable key %q is no Config field", k)
		}
	}
}
