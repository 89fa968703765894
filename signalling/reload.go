package signalling

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/xtrunk/xtrunk/signalling/route"
)

// settings are the part of the configuration a reload may change while calls
// go on (SIGHUP): the carriers, the carrier sources, the limits and the
// timeouts. Requests read it through Server.settings without a lock; Reload
// swaps it whole, so a request sees either the old or the new settings,
// never half of each. A call keeps the carriers and timeouts it started
// with.
type settings struct {
	cfg         Config // the reloadable fields are the ones in force
	carriers    []route.Target[dest]
	carrierNets []netip.Prefix
}

// reloadable are the keys (the sip: section's, as the flags spell them)
// Reload applies; every other key takes a restart.
var reloadable = []string{
	"carrier", "carrier-source",
	"default-cps", "default-concurrency", "media-timeout", "drain-timeout",
	"guard-max-requests", "guard-request-window", "guard-max-auth-failures", "guard-auth-window",
	"guard-ban", "guard-prefix-bans", "guard-prefix-window", "options-interval", "guard-scanner",
	"carrier-probe-interval",
}

// ReloadableKeys are the sip: keys Reload applies without a restart.
func ReloadableKeys() []string { return slices.Clone(reloadable) }

// newSettings derives the live settings from cfg (validated).
func newSettings(cfg Config) (*settings, error) {
	l := &settings{cfg: cfg}
	for _, c := range cfg.Carriers {
		t, err := parseCarrier(c)
		if err != nil {
			return nil, err
		}
		l.carriers = append(l.carriers, route.Target[dest]{Priority: t.Priority, Weight: t.Weight, Value: destOfURI(t.Value)})
	}
	var err error
	if l.carrierNets, err = parseCarrierSources(cfg.CarrierSources); err != nil {
		return nil, err
	}
	return l, nil
}

// settings is the reloadable configuration in force.
func (s *Server) settings() *settings { return s.liveCfg.Load() }

// Reload applies cfg, a configuration re-read while the server runs (the
// sip: section after SIGHUP), as far as it can without dropping a call:
// carriers and carrier sources, the per-trunk limits, the media and
// drain timeouts and the abuse guard's limits (see reloadable). The next
// call uses them; calls in progress keep their carriers and timeouts.
//
// applied are the keys that changed and now hold; restart the keys that
// changed but take a restart (listeners, TLS files, domain, store, relay,
// table sizes...), which keep their old values. A configuration that
// does not validate is refused whole (ErrConfig) and nothing changes.
// TLS certificates need no reload: renewed files are picked up as they
// change.
func (s *Server) Reload(cfg Config) (applied, restart []string, err error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	next, err := newSettings(cfg)
	if err != nil {
		return nil, nil, err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cur := s.settings().cfg
	for _, k := range changedKeys(cur, cfg) {
		if slices.Contains(reloadable, k) {
			applied = append(applied, k)
		} else {
			restart = append(restart, k)
		}
	}
	if len(applied) == 0 {
		return nil, restart, nil
	}
	// Keys that take a restart keep their running values, so that the
	// next reload reports them again and nothing reads half a change.
	kept := s.cfg
	copyKeys(&kept, cfg, reloadable)
	next.cfg = kept
	s.abuse.SetLimits(kept.guard())
	s.liveCfg.Store(next)
	return applied, restart, nil
}

// changedKeys are the yaml keys whose values differ between a and b.
func changedKeys(a, b Config) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, yamlKey(va.Type().Field(i)))
		}
	}
	return out
}

// copyKeys sets the fields of dst with the given yaml keys from src.
func copyKeys(dst *Config, src Config, keys []string) {
	vd, vs := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := range vd.NumField() {
		if slices.Contains(keys, yamlKey(vd.Type().Field(i))) {
			vd.Field(i).Set(vs.Field(i))
		}
	}
}

func yamlKey(f reflect.StructField) string {
	if k, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); k != "" {
		return k
	}
	return f.Name // every field has a key; TestReload checks
}
