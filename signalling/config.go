package signalling

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/sockbuf"
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
	ListenUDP string `yaml:"listen-udp"`
	ListenTCP string `yaml:"listen-tcp"`
	ListenTLS string `yaml:"listen-tls"`
	// TLS: the server's certificate chain and key (PEM; re-read when the
	// files change), the lowest version spoken either way ("1.2" unless
	// set; "1.0" and "1.1" only on request), extra CAs trusted for the
	// servers xtrunk dials (added to the system's), and, for labs only,
	// no verification of those servers at all.
	TLSCert               string `yaml:"tls-cert"`
	TLSKey                string `yaml:"tls-key"`
	TLSMinVersion         string `yaml:"tls-min-version"`
	TLSCA                 string `yaml:"tls-ca"`
	TLSInsecureSkipVerify bool   `yaml:"tls-insecure-skip-verify"`
	// Advertise is the host (address or name) xtrunk puts in its Contact,
	// Via and From on every leg, behind 1:1 NAT for instance. Default:
	// the listen host, and on a wildcard listener (0.0.0.0, ::) the
	// address of the interface facing each peer (addr.go).
	Advertise string `yaml:"advertise"`

	Domain             string   `yaml:"domain"`
	Edge               string   `yaml:"edge"`
	Carriers           []string `yaml:"carrier"`
	CarrierSources     []string `yaml:"carrier-source"` // CIDRs or addresses
	RelayNG            string   `yaml:"relay-ng"`
	RelayCustomerIface string   `yaml:"relay-customer-iface"`
	RelayCarrierIface  string   `yaml:"relay-carrier-iface"`
	// RelayInterfaces are the relay's logical interfaces with their
	// addresses, NAME/IP as given to the relay's --interface: a leg whose
	// signalling uses IP gets interface NAME, whatever its role.
	RelayInterfaces []string `yaml:"relay-interface"`
	DB              string   `yaml:"db"`
	Metrics         string   `yaml:"metrics"`
	// PProf is the Go profiler's HTTP address (/debug/pprof/), loopback
	// only (empty: off): the process's own concern, read by cmd/xtrunk.
	PProf string `yaml:"pprof"`
	// DefaultCPS and DefaultConcurrency are the per-trunk limits
	// (<= 0: none).
	DefaultCPS         int `yaml:"default-cps"`
	DefaultConcurrency int `yaml:"default-concurrency"`
	// MediaTimeout ends an answered call with no RTP/RTCP in either
	// direction for this long (0: never).
	MediaTimeout time.Duration `yaml:"media-timeout"`
	// Session timers (RFC 4028): SessionMinSE is the shortest
	// Session-Expires accepted (shorter: 422 with Min-SE), SessionExpires
	// the interval the edge asks for on a leg whose peer asks none (0:
	// only the peers' own requests are honoured).
	SessionMinSE   time.Duration `yaml:"session-min-se"`
	SessionExpires time.Duration `yaml:"session-expires"`

	// DrainTimeout is how long a SIGTERM waits for calls in progress to
	// end on their own before the rest are hung up.
	DrainTimeout time.Duration `yaml:"drain-timeout"`

	// CarrierProbeInterval is how often each carrier gateway gets an
	// OPTIONS (0: never probed, every gateway counts as up).
	CarrierProbeInterval time.Duration `yaml:"carrier-probe-interval"`

	// The abuse guard (see limit.GuardConfig; 0 turns a check off).
	// Carrier sources and requests within calls in progress are exempt;
	// a trunk's IP ACL exempts its addresses from the flood rule on that
	// trunk only, and authentication failures count for everyone. All
	// get one OPTIONS answered per OptionsInterval.
	GuardMaxRequests     int           `yaml:"guard-max-requests"`
	GuardRequestWindow   time.Duration `yaml:"guard-request-window"`
	GuardMaxAuthFailures int           `yaml:"guard-max-auth-failures"`
	GuardAuthWindow      time.Duration `yaml:"guard-auth-window"`
	GuardBan             time.Duration `yaml:"guard-ban"`
	// GuardMaxSources and GuardMaxBans bound the guard's tables (the
	// least recently seen source, the oldest ban go first);
	// GuardPrefixBans distinct sources of a /24 (/64) banned within
	// GuardPrefixWindow ban the prefix (0: never).
	GuardMaxSources   int           `yaml:"guard-max-sources"`
	GuardMaxBans      int           `yaml:"guard-max-bans"`
	GuardPrefixBans   int           `yaml:"guard-prefix-bans"`
	GuardPrefixWindow time.Duration `yaml:"guard-prefix-window"`
	OptionsInterval   time.Duration `yaml:"options-interval"`
	// GCPercent is the Go garbage collector's target for the process
	// (GOGC; the environment's GOGC wins). Each collection's mark phase
	// slows every call set up during it (tens of ms at 1,200 CPS on 2
	// vCPUs), so fewer collections are a shorter setup tail: 1,000 (the
	// heap grows to ~11× what is live before a collection) against 400
	// took the p99 at 1,200 CPS from 16 to 9.5–15 ms (BENCHMARKS.md).
	// MemoryLimit bounds what that costs in memory.
	GCPercent int `yaml:"gc-percent"`
	// MemoryLimit is the Go runtime's soft memory limit for the process
	// (GOMEMLIMIT; the environment's GOMEMLIMIT wins): GOMEMLIMIT's
	// syntax (1536MiB, 2GiB), "auto" (MemoryLimitAuto) or "off". Near it
	// the collector runs before GCPercent says, so a large live heap
	// (tens of thousands of calls up) does not grow to GCPercent's
	// multiple of itself.
	MemoryLimit string `yaml:"memory-limit"`
	// UDPReceiveBuffer and NGReceiveBuffer are the receive buffers
	// (bytes) asked for on the SIP UDP listener and on the NG client's
	// socket (<= 0: the kernel's default, 208 KiB, which a short stall of
	// the reader overflows at a few hundred CPS: every datagram dropped
	// costs a retransmission of 500 ms or more). Capped by
	// net.core.rmem_max unless the process has CAP_NET_ADMIN; what was
	// granted is logged and exported (xtrunk_sip_udp_receive_buffer_bytes).
	UDPReceiveBuffer int      `yaml:"udp-rcvbuf"`
	NGReceiveBuffer  int      `yaml:"ng-rcvbuf"`
	GuardScanners    []string `yaml:"guard-scanner"`
	// TxLinger is how long a finished SIP transaction is kept to absorb
	// retransmissions (sipgo's Timers J, L, M, D; RFC 3261: 64*T1 = 32 s
	// on UDP). 5 s, Kamailio tm's wait timer: at 32 s every transaction
	// of the last 32 s, with its messages, is live heap the GC marks on
	// every cycle (BENCHMARKS.md, "Transaction linger"). <= 0: the RFC's.
	TxLinger time.Duration `yaml:"tx-linger"`
	// FinishLiveCalls: at start, end the live-call rows (ringing,
	// in-progress) a previous run of this edge left in the store. Only
	// sound when no other sip of this edge's name runs on the store:
	// xtrunk up sets it for the one sip it supervises.
	FinishLiveCalls bool `yaml:"finish-live-calls"`

	// TCP and TLS connections (conns.go): closed after TCPIdleTimeout with
	// nothing read (CRLF keep-alives count; 0: never), refused at accept
	// past TCPMaxPerSource from one address or TCPMax in all (0: no cap),
	// and given TLSHandshakeTimeout to finish a TLS handshake.
	TCPIdleTimeout      time.Duration `yaml:"tcp-idle-timeout"`
	TCPMaxPerSource     int           `yaml:"tcp-max-per-source"`
	TCPMax              int           `yaml:"tcp-max"`
	TLSHandshakeTimeout time.Duration `yaml:"tls-handshake-timeout"`
	// DigestURICheck refuses (403) credentials whose uri= is not the
	// Request-URI (on by default; off only for clients such as SIPp without -auth_uri
	// that put the server's address there).
	DigestURICheck bool `yaml:"digest-uri-check"`

	// CNAM (cnam.go): the Lookup URL ({number} becomes the caller's E.164
	// number, escaped; empty: no lookups), how long a call waits for it,
	// how long a name is cached (its absence at most an hour) and how
	// many numbers the cache holds.
	CNAMURL       string        `yaml:"cnam-url"`
	CNAMTimeout   time.Duration `yaml:"cnam-timeout"`
	CNAMTTL       time.Duration `yaml:"cnam-ttl"`
	CNAMCacheSize int           `yaml:"cnam-cache-size"`

	// Several edges on one store (edges.go): the SIP address other edges
	// hand calls over to (HOST:PORT or a sip: URI; default: --advertise
	// or the UDP listener, with its port), the secret every edge shares
	// (hand-overs are off without it) and how often this edge heartbeats.
	EdgeSIPAddress string        `yaml:"edge-sip-address"`
	EdgeSecret     string        `yaml:"edge-secret"`
	EdgeHeartbeat  time.Duration `yaml:"edge-heartbeat"`
}

// DefaultSIPReceiveBuffer is the SIP UDP listener's receive buffer by
// default: 1 MiB (2 MiB as the kernel counts it, ~900 SIP datagrams),
// some 200 ms of a 600 CPS load's messages. Enough to ride out a stalled
// reader, and short of SIP's T1 (500 ms): a deeper queue, once the
// process falls behind, holds requests their senders have already
// retransmitted, and working through those stale copies deepens an
// overload (BENCHMARKS.md, "Setup tail"). The NG sockets have no such
// limit: the client's requests time out on their own and the relay
// answers a retransmit from its reply cache.
const DefaultSIPReceiveBuffer = 1 << 20

// ListenAuto is the ListenTCP/ListenTLS value that follows ListenUDP.
const ListenAuto = "auto"

// DefaultConfig is the configuration before the file and flags.
// DefaultTxLinger is Config.TxLinger's default: Kamailio tm's wait timer.
const DefaultTxLinger = 5 * time.Second

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
		SessionMinSE:         DefaultMinSE,
		SessionExpires:       DefaultSessionExpires,
		DrainTimeout:         10 * time.Second,
		CarrierProbeInterval: 10 * time.Second,
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
		GCPercent:            1000,
		MemoryLimit:          MemoryLimitAuto,
		UDPReceiveBuffer:     DefaultSIPReceiveBuffer,
		NGReceiveBuffer:      sockbuf.DefaultReceive,
		TxLinger:             DefaultTxLinger,
		TCPIdleTimeout:       120 * time.Second,
		TCPMaxPerSource:      32,
		TCPMax:               10000,
		TLSHandshakeTimeout:  10 * time.Second,
		DigestURICheck:       true,
		CNAMTimeout:          defaultCNAMTimeout,
		CNAMTTL:              defaultCNAMTTL,
		CNAMCacheSize:        defaultCNAMCacheSize,
		EdgeHeartbeat:        defaultEdgeHeartbeat,
	}
}

// Validate checks the configuration as New does, without binding
// anything (xtrunk check-config).
func (c Config) Validate() error { return c.validate() }

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
	if err := c.validateCNAM(); err != nil {
		return err
	}
	if err := c.validateEdges(); err != nil {
		return err
	}
	if _, err := parseRelayInterfaces(c.RelayInterfaces); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"drain_timeout", c.DrainTimeout}, {"media_timeout", c.MediaTimeout}, {"guard_request_window", c.GuardRequestWindow}, {"guard_auth_window", c.GuardAuthWindow},
		{"guard_ban", c.GuardBan}, {"options_interval", c.OptionsInterval}, {"carrier_probe_interval", c.CarrierProbeInterval}, {"tcp_idle_timeout", c.TCPIdleTimeout}, {"guard_prefix_window", c.GuardPrefixWindow}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s is negative", ErrConfig, d.name)
		}
	}
	if err := c.validateSessionTimers(); err != nil {
		return err
	}
	if c.GuardMaxRequests < 0 || c.GuardMaxAuthFailures < 0 || c.GuardPrefixBans < 0 {
		return fmt.Errorf("%w: guard limits are negative", ErrConfig)
	}
	if c.TCPMax < 0 || c.TCPMaxPerSource < 0 {
		return fmt.Errorf("%w: tcp_max and tcp_max_per_source must not be negative", ErrConfig)
	}
	if c.TLSHandshakeTimeout <= 0 {
		return fmt.Errorf("%w: tls_handshake_timeout must be positive", ErrConfig)
	}
	if c.GuardMaxAuthFailures > limit.MaxAuthFails {
		return fmt.Errorf("%w: guard_max_auth_failures above %d", ErrConfig, limit.MaxAuthFails)
	}
	if c.GuardPrefixBans > limit.MaxPrefixBans {
		return fmt.Errorf("%w: guard_prefix_bans above %d", ErrConfig, limit.MaxPrefixBans)
	}
	if _, _, err := ParseMemoryLimit(c.MemoryLimit); err != nil {
		return err
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

// parseRelayInterfaces reads relay_interface entries, NAME/IP[!ADV] (the
// relay's syntax; ADV is the relay's business), into NAME by IP.
func parseRelayInterfaces(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range list {
		name, rest, ok := strings.Cut(strings.TrimSpace(v), "/")
		ip, _, _ := strings.Cut(rest, "!")
		a, err := netip.ParseAddr(ip)
		if !ok || name == "" || err != nil || a.IsUnspecified() {
			return nil, fmt.Errorf("%w: relay_interface %q: want NAME/IP", ErrConfig, v)
		}
		out[a.Unmap().String()] = name
	}
	return out, nil
}
