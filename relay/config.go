package relay

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/sockbuf"
)

// Dataplane modes.
const (
	DataplaneXDP       = "xdp"
	DataplaneUserspace = "userspace"
)

// Config is the relay's configuration (flags and xtrunk.yaml "relay:").
type Config struct {
	Interfaces   []Interface   `yaml:"interfaces"`
	ListenNG     string        `yaml:"listen-ng"`
	PortMin      int           `yaml:"port-min"`
	PortMax      int           `yaml:"port-max"`
	Timeout      time.Duration `yaml:"timeout"`       // media timeout: calls idle this long are timed out, then deleted
	FinalTimeout time.Duration `yaml:"final-timeout"` // calls older than this are deleted, active or not; 0 = never
	// TimeoutLinger is how long a timed-out call stays, reported as timed
	// out by query and list, before it is deleted (at least one janitor
	// period).
	TimeoutLinger time.Duration `yaml:"timeout-linger"`
	LearnWindow   time.Duration `yaml:"learning-window"` // latching window after offer/answer
	PinPath       string        `yaml:"pin-path"`
	Metrics       string        `yaml:"metrics"`
	Dataplane     string        `yaml:"dataplane"`
	XDPMode       string        `yaml:"xdp-mode"` // auto | native | generic
	// Socketless (xdp only, the default there): the relay binds no
	// socket per call; what needs userspace reaches it through AF_XDP
	// sockets (one per device and RX queue) and leaves through their TX
	// rings. false: bound sockets per call (the previous behaviour). The
	// userspace dataplane always binds sockets and ignores it.
	Socketless   bool          `yaml:"socketless"`
	DeleteDelay  time.Duration `yaml:"delete-delay"`
	RemoveOnExit bool          `yaml:"remove-on-exit"` // detach XDP and unpin on clean exit
	RecordingDir string        `yaml:"recording-dir"`  // where recordings are written
	// NGAllow are the sources (CIDRs) whose NG commands are served;
	// others are dropped unanswered (NG has no authentication).
	NGAllow []string `yaml:"ng-allow"`
	// JitterSample (xdp): the fast path times two consecutive arrivals in
	// every JitterSample RTP packets of a stream for its RFC 3550 jitter
	// (1: every packet); see bpf.Options.JitterSample.
	JitterSample int `yaml:"jitter-sample"`
	// NGReceiveBuffer is the receive buffer (bytes) asked for on the NG
	// socket (<= 0: the kernel's default, which a burst of commands
	// overflows while the reader is stalled; each dropped command costs
	// its call the client's retransmit, 500 ms with sip's).
	NGReceiveBuffer int `yaml:"ng-rcvbuf"`
	// PProf is the Go profiler's HTTP address (/debug/pprof/), loopback
	// only; empty: off.
	PProf string `yaml:"pprof"`
	// GCPercent is the Go garbage collector's target for the process
	// (GOGC; the environment variable wins; <= 0, the default, keeps
	// Go's 100). Each collection's mark phase delays the NG replies
	// queued behind it, and so call setup (BENCHMARKS.md, "The relay's
	// reply cache").
	GCPercent int `yaml:"gc-percent"`
}

// DefaultJitterSample is --jitter-sample's default, chosen by measurement
// (BENCHMARKS.md, "XDP at saturation, sampled clock").
const DefaultJitterSample = 8

// DefaultConfig is the relay's configuration without flags.
func DefaultConfig() Config {
	c := Config{
		ListenNG:      "127.0.0.1:2223",
		PortMin:       30000,
		PortMax:       39999,
		Timeout:       60 * time.Second,
		TimeoutLinger: 10 * time.Second,
		LearnWindow:   3 * time.Second,
		PinPath:       "/sys/fs/bpf/xtrunk/relay",
		Metrics:       "127.0.0.1:9101",
		Dataplane:     DataplaneXDP,
		XDPMode:       "auto",
		Socketless:    true,
		RecordingDir:  "/var/lib/xtrunk/recordings",
		NGAllow:       []string{"127.0.0.1/32", "::1/128"},
		JitterSample:  DefaultJitterSample,
	}
	c.NGReceiveBuffer = sockbuf.DefaultReceive
	return c
}

// Validate checks the configuration and resolves interface devices.
func (c *Config) Validate() error {
	if len(c.Interfaces) == 0 {
		return fmt.Errorf("%w: at least one --interface NAME/IP is required", ErrConfig)
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMin >= c.PortMax {
		return fmt.Errorf("%w: port range %d-%d (need 1024 <= min < max <= 65535)", ErrConfig, c.PortMin, c.PortMax)
	}
	if c.PortMax-c.PortMin < 3 {
		return fmt.Errorf("%w: port range %d-%d holds no RTP/RTCP pair", ErrConfig, c.PortMin, c.PortMax)
	}
	switch c.Dataplane {
	case DataplaneXDP, DataplaneUserspace:
	default:
		return fmt.Errorf("%w: --dataplane %q (want xdp or userspace)", ErrConfig, c.Dataplane)
	}
	switch c.XDPMode {
	case "auto", "native", "generic":
	default:
		return fmt.Errorf("%w: --xdp-mode %q (want auto, native or generic)", ErrConfig, c.XDPMode)
	}
	if c.Timeout <= 0 || c.LearnWindow <= 0 {
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	}
	if c.FinalTimeout < 0 || c.TimeoutLinger < 0 {
		return fmt.Errorf("%w: final-timeout and timeout-linger cannot be negative (0: final timeout off, linger one janitor period)", ErrConfig)
	}
	if _, err := c.NGAllowPrefixes(); err != nil {
		return err
	}
	if n := c.JitterSample; n < 1 || n > bpf.MaxJitterSample || n&(n-1) != 0 {
		return fmt.Errorf("%w: --jitter-sample %d (want 1, every packet, or a power of two up to %d)", ErrConfig, n, bpf.MaxJitterSample)
	}
	if c.Dataplane != DataplaneXDP {
		// The default is socketless; without the XDP program no AF_XDP
		// socket gets a packet, so the userspace dataplane binds sockets
		// whatever this says (xtrunk relay refuses an explicit
		// --socketless with it).
		c.Socketless = false
	}
	if c.PinPath == "" && c.Dataplane == DataplaneXDP {
		return fmt.Errorf("%w: --pin-path is required with the xdp dataplane", ErrConfig)
	}
	return nil
}

// NGAllowPrefixes parses NGAllow. An empty list is refused: a relay that
// takes commands from anyone is never what an operator means (to allow
// every source, say 0.0.0.0/0 and ::/0 explicitly).
func (c *Config) NGAllowPrefixes() ([]netip.Prefix, error) {
	if len(c.NGAllow) == 0 {
		return nil, fmt.Errorf("%w: --ng-allow is empty (give the signalling hosts' CIDRs)", ErrConfig)
	}
	out := make([]netip.Prefix, 0, len(c.NGAllow))
	var entries []string
	for _, e := range c.NGAllow {
		entries = append(entries, strings.Split(e, ",")...) // XTRUNK_NG_ALLOW=a,b
	}
	for _, s := range entries {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return nil, fmt.Errorf("%w: --ng-allow %q: %w", ErrConfig, s, err)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Interface is a logical interface: a name NG commands select with
// "direction", a local address, and the address advertised in SDP.
type Interface struct {
	Name       string
	Addr       netip.Addr
	Advertised netip.Addr
	Device     string // resolved: the device carrying Addr
}

// ParseInterface parses rtpengine's NAME/IP[!ADVERTISED_IP] syntax. A bare
// IP gets the name "default".
func ParseInterface(s string) (Interface, error) {
	var ifc Interface
	name, rest, ok := strings.Cut(s, "/")
	if !ok {
		name, rest = "default", s
	}
	if name == "" {
		return ifc, fmt.Errorf("%w: interface %q: empty name", ErrConfig, s)
	}
	addr, adv, hasAdv := strings.Cut(rest, "!")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return ifc, fmt.Errorf("%w: interface %q: %w", ErrConfig, s, err)
	}
	ifc.Name, ifc.Addr, ifc.Advertised = name, a.Unmap(), a.Unmap()
	if hasAdv {
		b, err := netip.ParseAddr(adv)
		if err != nil {
			return ifc, fmt.Errorf("%w: interface %q advertised address: %w", ErrConfig, s, err)
		}
		ifc.Advertised = b.Unmap()
	}
	return ifc, nil
}

func (i Interface) String() string {
	if i.Advertised != i.Addr {
		return i.Name + "/" + i.Addr.String() + "!" + i.Advertised.String()
	}
	return i.Name + "/" + i.Addr.String()
}

// UnmarshalText lets YAML carry interfaces in the flag syntax.
func (i *Interface) UnmarshalText(b []byte) error {
	v, err := ParseInterface(string(b))
	if err != nil {
		return err
	}
	*i = v
	return nil
}

// deviceFor finds the network device that carries addr in the current
// network namespace.
func deviceFor(addr netip.Addr) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
					return ifc.Name, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%w: no device carries %s", ErrConfig, addr)
}
