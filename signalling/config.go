package signalling

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/limit"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// Config is the signalling's configuration (xtrunk.yaml section sip:).
type Config struct {
	// Listeners. ListenTCP and ListenTLS are "auto" by default: TCP on
	// the UDP listener's address, TLS on its host at port 5061 (and only
	// when TLSCert and TLSKey are given). An empty address turns a
	// listener off.
	ListenUDP string `yaml:"listen_udp"`
	ListenTCP string `yaml:"listen_tcp"`
	ListenTLS string `yaml:"listen_tls"`
	// TLS: the server's certificate chain and key (PEM; re-read when the
	// files change), the lowest version spoken either way ("1.2" unless
	// set; "1.0" and "1.1" only on request), extra CAs trusted for the
	// servers xtrunk dials (added to the system's), and, for labs only,
	// no verification of those servers at all.
	TLSCert               string `yaml:"tls_cert"`
	TLSKey                string `yaml:"tls_key"`
	TLSMinVersion         string `yaml:"tls_min_version"`
	TLSCA                 string `yaml:"tls_ca"`
	TLSInsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify"`
	// Advertise is the host (address or name) xtrunk puts in its Contact,
	// Via and From when that is not the listeners' host: behind 1:1 NAT,
	// or listening on a wildcard address. Default: the listen host (and
	// 127.0.0.1 for a wildcard, which only suits a lab).
	Advertise string `yaml:"advertise"`

	Domain             string   `yaml:"domain"`
	Edge               string   `yaml:"edge"`
	Carriers           []string `yaml:"carrier"`
	CarrierSources     []string `yaml:"carrier_source"` // CIDRs or addresses
	RelayNG            string   `yaml:"relay_ng"`
	RelayCustomerIface string   `yaml:"relay_customer_iface"`
	RelayCarrierIface  string   `yaml:"relay_carrier_iface"`
	DB                 string   `yaml:"db"`
	Metrics            string   `yaml:"metrics"`
	// DefaultCPS and DefaultConcurrency are the per-trunk limits
	// (<= 0: none).
	DefaultCPS         int `yaml:"default_cps"`
	DefaultConcurrency int `yaml:"default_concurrency"`
	// MediaTimeout ends an answered call with no RTP/RTCP in either
	// direction for this long (0: never).
	MediaTimeout time.Duration `yaml:"media_timeout"`

	// DrainTimeout is how long a SIGTERM waits for calls in progress to
	// end on their own before the rest are hung up.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	// The abuse guard (see limit.GuardConfig; 0 turns a check off).
	// Carrier sources and requests within calls in progress are exempt;
	// a trunk's IP ACL exempts its addresses from the flood rule on that
	// trunk only, and authentication failures count for everyone. All
	// get one OPTIONS answered per OptionsInterval.
	GuardMaxRequests     int           `yaml:"guard_max_requests"`
	GuardRequestWindow   time.Duration `yaml:"guard_request_window"`
	GuardMaxAuthFailures int           `yaml:"guard_max_auth_failures"`
	GuardAuthWindow      time.Duration `yaml:"guard_auth_window"`
	GuardBan             time.Duration `yaml:"guard_ban"`
	// GuardMaxSources and GuardMaxBans bound the guard's tables (the
	// least recently seen source, the oldest ban go first);
	// GuardPrefixBans distinct sources of a /24 (/64) banned within
	// GuardPrefixWindow ban the prefix (0: never).
	GuardMaxSources   int           `yaml:"guard_max_sources"`
	GuardMaxBans      int           `yaml:"guard_max_bans"`
	GuardPrefixBans   int           `yaml:"guard_prefix_bans"`
	GuardPrefixWindow time.Duration `yaml:"guard_prefix_window"`
	OptionsInterval   time.Duration `yaml:"options_interval"`
	// GCPercent is the Go garbage collector's target for the process
	// (GOGC; the environment's GOGC wins). sipgo keeps every finished
	// transaction for its 32 s timers, so the live heap grows with CPS; at
	// Go's default of 100 the collector's assists stalled calls for
	// hundreds of ms near capacity (BENCHMARKS.md).
	GCPercent     int      `yaml:"gc_percent"`
	GuardScanners []string `yaml:"guard_scanner"`
	// DigestURICheck refuses (403) credentials whose uri= is not the
	// Request-URI (on by default; off only for clients such as SIPp 3.6
	// that put the server's address there).
	DigestURICheck bool `yaml:"digest_uri_check"`
}

// ListenAuto is the ListenTCP/ListenTLS value that follows ListenUDP.
const ListenAuto = "auto"

// DefaultConfig is the configuration before the file and flags.
func DefaultConfig() Config {
	g := limit.DefaultGuard()
	return Config{
		ListenUDP:            "0.0.0.0:5060",
		ListenTCP:            ListenAuto,
		ListenTLS:            ListenAuto,
		TLSMinVersion:        "1.2",
		Domain:               store.DefaultDomain,
		DB:                   "sqlite:xtrunk.db",
		RelayNG:              "127.0.0.1:2223",
		RelayCustomerIface:   "customer",
		RelayCarrierIface:    "carrier",
		DefaultCPS:           1,
		DefaultConcurrency:   0,
		MediaTimeout:         60 * time.Second,
		DrainTimeout:         60 * time.Second,
		GuardMaxRequests:     g.MaxRequests,
		GuardRequestWindow:   g.RequestWindow,
		GuardMaxAuthFailures: g.MaxAuthFails,
		GuardAuthWindow:      g.AuthWindow,
		GuardBan:             g.Ban,
		GuardMaxSources:      g.MaxSources,
		GuardMaxBans:         g.MaxBans,
		GuardPrefixBans:      g.PrefixBans,
		GuardPrefixWindow:    g.PrefixWindow,
		OptionsInterval:      g.OptionsEvery,
		GuardScanners:        g.Scanners,
		GCPercent:            400,
		DigestURICheck:       true,
	}
}

func (c Config) validate() error {
	if c.Domain == "" {
		return fmt.Errorf("%w: domain is empty", ErrConfig)
	}
	udp, tcp, tlsAddr := c.listenAddrs()
	if udp == "" && tcp == "" && tlsAddr == "" {
		return fmt.Errorf("%w: no listener (listen_udp, listen_tcp and listen_tls are all off)", ErrConfig)
	}
	for _, l := range []struct{ name, addr string }{{"listen_udp", udp}, {"listen_tcp", tcp}, {"listen_tls", tlsAddr}} {
		if l.addr == "" {
			continue
		}
		if _, _, err := splitHostPort(l.addr); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, l.name, err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%w: tls_cert and tls_key go together", ErrConfig)
	}
	if _, err := tlsVersion(c.TLSMinVersion); err != nil {
		return err
	}
	if _, err := parseCarrierSources(c.CarrierSources); err != nil {
		return err
	}
	if c.RelayNG == "" {
		return fmt.Errorf("%w: relay_ng is empty", ErrConfig)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"drain_timeout", c.DrainTimeout}, {"media_timeout", c.MediaTimeout}, {"guard_request_window", c.GuardRequestWindow}, {"guard_auth_window", c.GuardAuthWindow},
		{"guard_ban", c.GuardBan}, {"options_interval", c.OptionsInterval}, {"guard_prefix_window", c.GuardPrefixWindow}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s is negative", ErrConfig, d.name)
		}
	}
	if c.GuardMaxRequests < 0 || c.GuardMaxAuthFailures < 0 || c.GuardPrefixBans < 0 {
		return fmt.Errorf("%w: guard limits are negative", ErrConfig)
	}
	if c.GuardMaxAuthFailures > limit.MaxAuthFails {
		return fmt.Errorf("%w: guard_max_auth_failures above %d", ErrConfig, limit.MaxAuthFails)
	}
	if c.GuardPrefixBans > limit.MaxPrefixBans {
		return fmt.Errorf("%w: guard_prefix_bans above %d", ErrConfig, limit.MaxPrefixBans)
	}
	if c.GuardMaxSources < 1 || c.GuardMaxBans < 1 {
		return fmt.Errorf("%w: guard_max_sources and guard_max_bans must be at least 1", ErrConfig)
	}
	return nil
}

// listenAddrs resolves "auto": TCP on the UDP address, TLS on the UDP
// host at 5061 when a certificate is configured. A TLS address without a
// certificate is off.
func (c Config) listenAddrs() (udp, tcp, tlsAddr string) {
	udp, tcp, tlsAddr = c.ListenUDP, c.ListenTCP, c.ListenTLS
	if tcp == ListenAuto {
		tcp = udp
	}
	if tlsAddr == ListenAuto {
		host := "0.0.0.0"
		if h, _, err := net.SplitHostPort(udp); err == nil {
			host = h
		}
		tlsAddr = net.JoinHostPort(host, strconv.Itoa(sip.DefaultTlsPort))
	}
	if c.TLSCert == "" {
		tlsAddr = ""
	}
	return udp, tcp, tlsAddr
}

// guard is the abuse guard's configuration.
func (c Config) guard() limit.GuardConfig {
	g := limit.DefaultGuard()
	g.MaxRequests, g.RequestWindow = c.GuardMaxRequests, c.GuardRequestWindow
	g.MaxAuthFails, g.AuthWindow = c.GuardMaxAuthFailures, c.GuardAuthWindow
	g.Ban, g.OptionsEvery = c.GuardBan, c.OptionsInterval
	g.Scanners = c.GuardScanners
	g.MaxSources, g.MaxBans = c.GuardMaxSources, c.GuardMaxBans
	g.PrefixBans, g.PrefixWindow = c.GuardPrefixBans, c.GuardPrefixWindow
	return g
}

// tlsVersion reads tls_min_version.
func tlsVersion(v string) (uint16, error) {
	switch strings.TrimSpace(v) {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.0":
		return tls.VersionTLS10, nil
	}
	return 0, fmt.Errorf("%w: tls_min_version %q: want 1.0, 1.1, 1.2 or 1.3", ErrConfig, v)
}

func (c Config) edges() []string {
	if c.Edge == "" {
		return nil
	}
	return []string{c.Edge}
}

func (c Config) realm() string { return c.Domain }

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, n, nil
}

// parseCarrier reads "sip:host[:port][;priority=N][;weight=N]".
func parseCarrier(s string) (route.Target[sip.Uri], error) {
	var u sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(s), &u); err != nil {
		return route.Target[sip.Uri]{}, fmt.Errorf("%w: carrier %q: %w", ErrConfig, s, err)
	}
	t := route.Target[sip.Uri]{Priority: 10, Weight: 10}
	if u.UriParams != nil {
		for _, k := range []string{"priority", "weight"} {
			v, ok := u.UriParams.Get(k)
			if !ok {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 65535 || (k == "weight" && n < 1) {
				return t, fmt.Errorf("%w: carrier %q: bad %s", ErrConfig, s, k)
			}
			if k == "priority" {
				t.Priority = n
			} else {
				t.Weight = n
			}
			u.UriParams.Remove(k)
		}
	}
	if u.Host == "" {
		return t, fmt.Errorf("%w: carrier %q: no host", ErrConfig, s)
	}
	t.Value = u
	return t, nil
}
