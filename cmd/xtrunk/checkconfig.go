package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/relay"
)

// sectionCheck loads a section through the process's own config function
// and runs its semantic validation. Add a row for a new process.
type sectionCheck struct {
	name  string
	check func(path string) error
}

func sectionChecks() []sectionCheck {
	return []sectionCheck{
		{"relay", func(path string) error {
			cfg, _, err := relayConfig([]string{"--config", path})
			if err != nil {
				return err
			}
			return cfg.Validate()
		}},
		{"sip", func(path string) error {
			cfg, _, err := sipConfig([]string{"--config", path})
			if err != nil {
				return err
			}
			return cfg.Validate()
		}},
		{"api", func(path string) error {
			cfg, _, _, err := apiConfig([]string{"--config", path})
			if err != nil {
				return err
			}
			if _, err := api.ParseEdgeAddresses(cfg.EdgeAddresses); err != nil {
				return err
			}
			// the process reads the credentials file at start: check it now
			if _, err := api.ReadCredentials(cfg.CredentialsPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}},
		{"up", func(path string) error {
			_, _, err := upCommand([]string{"--config", path})
			return err
		}},
	}
}

// valueChecks check single values where the line is known (the process's
// own checks of them, run later, report no line): addresses and
// interface specs.
var valueChecks = map[string]map[string]func(string) error{
	"relay": {
		"interface": func(v string) error { _, err := relay.ParseInterface(v); return err },
		"listen-ng": checkHostPort, "metrics": checkHostPortOrEmpty, "ng-allow": checkPrefix,
	},
	"sip": {
		"listen-udp": checkListen, "listen-tcp": checkListen, "listen-tls": checkListen,
		"relay-ng": checkHostPort, "metrics": checkHostPortOrEmpty, "carrier-source": checkPrefix,
		"relay-interface": checkRelayInterface, "db": checkDSN,
	},
	"up": {"metrics": checkHostPortOrEmpty},
	"api": {
		"listen": checkAPIListen, "metrics": checkHostPortOrEmpty, "db": checkDSN,
		"edge-address":  func(v string) error { _, err := api.ParseEdgeAddresses([]string{v}); return err },
		"trusted-proxy": func(v string) error { _, err := api.ParseTrustedProxies([]string{v}); return err },
	},
}

func runCheckConfig(args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Print(checkConfigUsage)
			return err
		}
		return fmt.Errorf("%w (see xtrunk check-config -h)", err)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: one file at a time (see xtrunk check-config -h)", ErrConfig)
	}
	path := fs.Arg(0)
	if path == "" {
		path = os.Getenv("XTRUNK_CONFIG")
	}
	if path == "" {
		path = "xtrunk.yaml"
	}
	errs := checkConfigFile(path)
	for _, err := range errs {
		fmt.Fprintln(os.Stderr, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s: %d error(s)", errCheckFailed, path, len(errs))
	}
	fmt.Printf("%s: ok\n", path)
	return nil
}

const checkConfigUsage = `usage: xtrunk check-config [FILE]

Validates FILE (default: $XTRUNK_CONFIG, else ./xtrunk.yaml) as the
processes would load it: unknown sections and keys, duplicate keys, bad
values (durations, numbers, booleans, addresses, interface specs) and each
process's own consistency checks. Every error is printed with its line;
exit status 1 on any, 0 and "ok" otherwise. XTRUNK_* variables in the
environment apply, as they would to the processes.

examples:
  xtrunk check-config /etc/xtrunk/xtrunk.yaml
  XTRUNK_CONFIG=./edge/xtrunk.yaml xtrunk check-config
`

// checkConfigFile is every error found in the file at path.
func checkConfigFile(path string) []error {
	b, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("%w: %w", ErrConfig, err)}
	}
	// the file's structure: YAML syntax, sections known and not repeated
	if _, err := findSection(path, b, ""); err != nil {
		return []error{err}
	}
	var errs []error
	for _, s := range sectionChecks() {
		sec, err := findSection(path, b, s.name)
		if err != nil {
			return []error{err}
		}
		if sec == nil {
			continue // this host does not run the process
		}
		valueErrs := checkValues(path, s.name, sec)
		errs = append(errs, valueErrs...)
		err = s.check(path)
		switch {
		case err == nil:
		case strings.Contains(err.Error(), path+":"):
			// the loader's errors carry their lines, one per bad key
			errs = append(errs, unjoin(err)...)
		case len(valueErrs) == 0:
			// a check of the whole section: give the section's line
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", path, sectionLine(b, s.name), s.name, err))
		}
	}
	return errs
}

// unjoin splits errors.Join's result into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// checkValues runs valueChecks on the section's values, with their lines.
func checkValues(path, section string, sec *yaml.Node) []error {
	var errs []error
	checks := valueChecks[section]
	for i := 0; i+1 < len(sec.Content); i += 2 {
		k, v := sec.Content[i], sec.Content[i+1]
		fn := checks[k.Value]
		if fn == nil {
			continue
		}
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		for _, it := range items {
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				continue // the loader reports the shape
			}
			if err := fn(it.Value); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s:%d: %s: %s: %q: %w", ErrConfig, path, it.Line, section, k.Value, it.Value, err))
			}
		}
	}
	return errs
}

func sectionLine(b []byte, name string) int {
	for i, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+":") {
			return i + 1
		}
	}
	return 1
}

// checkHostPort: HOST:PORT with a numeric port and HOST an IP address or
// a host name.
func checkHostPort(v string) error {
	h, p, err := net.SplitHostPort(v)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	if h == "" || strings.Contains(h, ":") {
		if _, err := netip.ParseAddr(h); h != "" && err != nil {
			return err
		}
		return nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("host %q is neither an IP address nor a host name", h)
		}
	}
	return nil
}

func checkHostPortOrEmpty(v string) error {
	if v == "" {
		return nil
	}
	return checkHostPort(v)
}

// checkListen: a SIP listener is HOST:PORT, auto, or empty (off).
func checkListen(v string) error {
	if v == "auto" {
		return nil
	}
	return checkHostPortOrEmpty(v)
}

func checkAPIListen(v string) error {
	if p, ok := strings.CutPrefix(v, "unix:"); ok {
		if p == "" {
			return errors.New("unix: needs a path")
		}
		return nil
	}
	return checkHostPort(v)
}

// checkPrefix: a CIDR or a single address (comma-separated lists allowed,
// as in XTRUNK_NG_ALLOW).
func checkPrefix(v string) error {
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if _, err := netip.ParsePrefix(s); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("%q is not a CIDR or an address", s)
		}
	}
	return nil
}

func checkRelayInterface(v string) error {
	name, rest, ok := strings.Cut(v, "/")
	ip, _, _ := strings.Cut(rest, "!")
	a, err := netip.ParseAddr(ip)
	if !ok || name == "" || err != nil || a.IsUnspecified() {
		return errors.New("want NAME/IP, as the relay's --interface")
	}
	return nil
}

// checkDSN: the store's DSNs (store.Open's forms).
func checkDSN(v string) error {
	switch {
	case strings.HasPrefix(v, "sqlite:") && len(v) > len("sqlite:"),
		strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"), strings.HasSuffix(v, ".db"):
		return nil
	}
	return errors.New("want sqlite:PATH or postgres://...")
}
