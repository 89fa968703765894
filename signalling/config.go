package signalling

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/signalling/route"
)

// Config is the signalling's configuration (xtrunk.yaml section sip:).
type Config struct {
	ListenUDP          string   `yaml:"listen_udp"`
	Domain             string   `yaml:"domain"`
	Edge               string   `yaml:"edge"`
	Carriers           []string `yaml:"carrier"`
	CarrierSources     []string `yaml:"carrier_source"`
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
}

// DefaultConfig is the configuration before the file and flags.
func DefaultConfig() Config {
	return Config{
		ListenUDP:          "0.0.0.0:5060",
		Domain:             store.DefaultDomain,
		DB:                 "sqlite:xtrunk.db",
		RelayNG:            "127.0.0.1:2223",
		RelayCustomerIface: "customer",
		RelayCarrierIface:  "carrier",
		DefaultCPS:         1,
		DefaultConcurrency: 0,
		MediaTimeout:       60 * time.Second,
	}
}

func (c Config) validate() error {
	if c.Domain == "" {
		return fmt.Errorf("%w: domain is empty", ErrConfig)
	}
	if _, _, err := splitHostPort(c.ListenUDP); err != nil {
		return fmt.Errorf("%w: listen_udp: %w", ErrConfig, err)
	}
	if c.RelayNG == "" {
		return fmt.Errorf("%w: relay_ng is empty", ErrConfig)
	}
	return nil
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
