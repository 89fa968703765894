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
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/control/api"
)

// errExists is a file xtrunk init would overwrite without --force.
var errExists = fs.ErrExist

// Files and directories of a system install (the Debian package's).
const (
	systemConfigDir = "/etc/xtrunk"
	systemStateDir  = "/var/lib/xtrunk"
)

// Loopback addresses the generated file gives the control and metrics
// listeners: nothing outside the host reaches them.
const (
	initNG           = "127.0.0.1:2223"
	initAPI          = "127.0.0.1:8080"
	initRelayMetrics = "127.0.0.1:9101"
	initSIPMetrics   = "127.0.0.1:9102"
	initAPIMetrics   = "127.0.0.1:9103"
)

// processSection is a process's section of xtrunk.yaml: its name and its
// flag set, built by the same config function the process uses (so the
// generated file always has every flag). Add a row for a new process.
type processSection struct {
	name  string
	flags func() (*flag.FlagSet, error)
}

// noFile are the arguments that build a process's flags without reading
// a config file.
var noFile = []string{"--config", ""}

func processSections() []processSection {
	return []processSection{
		{"relay", func() (*flag.FlagSet, error) { _, c, err := relayConfig(noFile); return flagsOf(c, err) }},
		{"sip", func() (*flag.FlagSet, error) { _, c, err := sipConfig(noFile); return flagsOf(c, err) }},
		{"api", func() (*flag.FlagSet, error) { _, _, c, err := apiConfig(noFile); return flagsOf(c, err) }},
		{"up", func() (*flag.FlagSet, error) { _, c, err := upCommand(noFile); return flagsOf(c, err) }},
	}
}

func flagsOf(c *command, err error) (*flag.FlagSet, error) {
	if err != nil {
		return nil, err
	}
	return c.fs, nil
}

// initPlan is what xtrunk init writes: where, and the values set for
// this host per section (flag name to values; one value for a plain
// flag, several for a repeatable one).
type initPlan struct {
	dir, stateDir    string
	config, creds    string
	customer         hostAddr
	carrier          hostAddr
	values           map[string]map[string][]string
	warnings         []string
	keepCredentials  bool
	credentialsSaved api.Credentials
}

func runInit(args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", defaultInitDir(), "directory for xtrunk.yaml and the credentials file")
	stateDir := fs.String("state-dir", "", "directory for the SQLite store and recordings (default: "+systemStateDir+" when --dir is "+systemConfigDir+", else --dir)")
	force := fs.Bool("force", false, "replace an existing xtrunk.yaml (an existing credentials file is kept: the store's account is in it)")
	customer := fs.String("customer-ip", "", "this host's address toward customers' PBXs (default: the default route's interface's, else the first global address)")
	carrier := fs.String("carrier-ip", "", "this host's address toward carriers (default: the customer address)")
	domain := fs.String("domain", "", "base domain of the trunks' termination URIs {prefix}.pstn.DOMAIN, for sip and api (default: theirs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprint(os.Stdout, initUsage)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%w (see xtrunk init -h)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (see xtrunk init -h)", ErrConfig, fs.Arg(0))
	}
	p, err := planInit(*dir, *stateDir, *customer, *carrier, *force)
	if err != nil {
		return err
	}
	if *domain != "" {
		p.values["sip"]["domain"] = []string{*domain}
		p.values["api"]["domain"] = []string{*domain}
	}
	for _, w := range p.warnings {
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}
	if err := p.write(*force); err != nil {
		return err
	}
	p.report(os.Stdout)
	return nil
}

const initUsage = `usage: xtrunk init [--dir DIR] [--force] [--domain D] [--customer-ip IP] [--carrier-ip IP]

Writes DIR/xtrunk.yaml, every flag of every process with its usage as a
comment, filled in for this host, and DIR/credentials (mode 0600): the
operator account's SID and auth token, which xtrunk api creates the main
account from. Existing files are kept unless --force.

examples:
  xtrunk init --domain example.net     # as root: /etc/xtrunk, store in /var/lib/xtrunk
  xtrunk init --dir ./edge             # anywhere else: everything under ./edge
  xtrunk init --customer-ip 203.0.113.10 --carrier-ip 198.51.100.10
  xtrunk check-config /etc/xtrunk/xtrunk.yaml && xtrunk up --config /etc/xtrunk/xtrunk.yaml

flags:
`

// defaultInitDir is /etc/xtrunk for root where it can write there, else
// the working directory.
func defaultInitDir() string {
	if os.Geteuid() == 0 {
		probe := systemConfigDir
		if _, err := os.Stat(probe); err != nil {
			probe = filepath.Dir(probe)
		}
		if unix.Access(probe, unix.W_OK) == nil {
			return systemConfigDir
		}
	}
	return "."
}

// planInit decides the file's values; nothing is written yet.
func planInit(dir, stateDir, customerIP, carrierIP string, force bool) (*initPlan, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	p := &initPlan{dir: abs, stateDir: stateDir, config: filepath.Join(abs, "xtrunk.yaml"), creds: filepath.Join(abs, "credentials")}
	if p.stateDir == "" {
		p.stateDir = abs
		if abs == systemConfigDir {
			p.stateDir = systemStateDir
		}
	}
	if p.stateDir, err = filepath.Abs(p.stateDir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(p.config); err == nil && !force {
		return nil, fmt.Errorf("%w: %s (xtrunk init --force replaces it; check it with xtrunk check-config %s)", errExists, p.config, p.config)
	}
	if _, err := os.Stat(p.creds); err == nil {
		if !force {
			return nil, fmt.Errorf("%w: %s (it may hold the only copy of the operator's token; with --force it is kept and xtrunk.yaml rewritten)", errExists, p.creds)
		}
		if p.credentialsSaved, err = api.ReadCredentials(p.creds); err != nil {
			return nil, fmt.Errorf("keeping %s: %w", p.creds, err)
		}
		p.keepCredentials = true
	}
	if p.customer, err = chooseAddr(customerIP, "--customer-ip"); err != nil {
		return nil, err
	}
	p.carrier = p.customer
	if carrierIP != "" {
		if p.carrier, err = chooseAddr(carrierIP, "--carrier-ip"); err != nil {
			return nil, err
		}
	}
	for _, a := range []hostAddr{p.customer, p.carrier} {
		if a.addr.IsLoopback() {
			p.warnings = append(p.warnings, fmt.Sprintf("no global address on this host: the SIP listener and media interfaces are on loopback (%s), which no PBX or carrier can reach; rerun with --customer-ip/--carrier-ip or edit %s", a.addr, p.config))
			break
		}
	}
	p.values = p.hostValues()
	return p, nil
}

func chooseAddr(given, flagName string) (hostAddr, error) {
	if given == "" {
		return pickHostAddress()
	}
	a, err := netip.ParseAddr(given)
	if err != nil || a.IsUnspecified() {
		return hostAddr{}, fmt.Errorf("%w: %s %q: want this host's IP address", ErrConfig, flagName, given)
	}
	return hostAddr{addr: a.Unmap(), how: flagName}, nil
}

// hostValues are the keys set (not commented out) in the generated file:
// this host's addresses, the cross-references between the sections
// (sip's relay-ng is the relay's listen-ng, one store for sip and api,
// the relay's recordings served by the api), and loopback listeners for
// the control and metrics ports.
func (p *initPlan) hostValues() map[string]map[string][]string {
	db := "sqlite:" + filepath.Join(p.stateDir, "xtrunk.db")
	rec := filepath.Join(p.stateDir, "recordings")
	cust, carr := p.customer.addr.String(), p.carrier.addr.String()
	v := map[string]map[string][]string{
		"relay": {
			"interface":     {"customer/" + cust, "carrier/" + carr},
			"listen-ng":     {initNG},
			"metrics":       {initRelayMetrics},
			"recording-dir": {rec},
		},
		"sip": {
			"listen-udp":           {net.JoinHostPort(cust, "5060")},
			"relay-ng":             {initNG},
			"relay-customer-iface": {"customer"},
			"relay-carrier-iface":  {"carrier"},
			"db":                   {db},
			"metrics":              {initSIPMetrics},
		},
		"api": {
			"listen":        {initAPI},
			"db":            {db},
			"metrics":       {initAPIMetrics},
			"credentials":   {p.creds},
			"recording-dir": {rec},
		},
	}
	if cust != carr {
		// two addresses: listen on both, and a leg takes the relay
		// interface of the address its signalling came in on
		v["sip"]["listen-udp"] = []string{"0.0.0.0:5060"}
		v["sip"]["relay-interface"] = []string{"customer/" + cust, "carrier/" + carr}
	}
	return v
}

// write writes the credentials (unless kept) and the config file. The
// config is written last, through a temporary file, so a failed init
// leaves no config naming credentials that are not there.
func (p *initPlan) write(force bool) error {
	body, err := p.render()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	if !p.keepCredentials {
		p.credentialsSaved = api.NewCredentials()
		if _, err := api.WriteCredentials(p.creds, p.credentialsSaved, false); err != nil {
			return fmt.Errorf("credentials: %w", err)
		}
	}
	tmp, err := os.CreateTemp(p.dir, ".xtrunk.yaml-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if force {
		return os.Rename(tmp.Name(), p.config)
	}
	if err := os.Link(tmp.Name(), p.config); err != nil {
		return fmt.Errorf("%w (see xtrunk init --force)", err)
	}
	return nil
}

func (p *initPlan) report(w io.Writer) {
	fmt.Fprintf(w, "wrote %s\n", p.config)
	fmt.Fprintf(w, "  customer side %s, carrier side %s\n", describeAddr(p.customer), describeAddr(p.carrier))
	fmt.Fprintf(w, "  store %s\n", p.values["api"]["db"][0])
	if p.keepCredentials {
		fmt.Fprintf(w, "kept %s: the operator account %s\n", p.creds, p.credentialsSaved.AccountSid)
	} else {
		fmt.Fprintf(w, "wrote %s (mode 0600): the operator account %s and its auth token\n", p.creds, p.credentialsSaved.AccountSid)
	}
	fmt.Fprintf(w, "\nnext:\n  xtrunk up --config %s\n", p.config)
	fmt.Fprintf(w, "then provision with the credentials in %s:\n  . %s && curl -u \"$XTRUNK_ACCOUNT_SID:$XTRUNK_AUTH_TOKEN\" http://%s/v1/Trunks\n", p.creds, p.creds, initAPI)
}

func describeAddr(a hostAddr) string {
	if a.iface == "" {
		return fmt.Sprintf("%s (%s)", a.addr, a.how)
	}
	return fmt.Sprintf("%s on %s (%s)", a.addr, a.iface, a.how)
}

// render is the commented YAML: per section, every flag with its usage
// as a comment, set when hostValues has it, else commented out with its
// default.
func (p *initPlan) render() ([]byte, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `# xtrunk.yaml, written by xtrunk init for this host (%s).
#
# One file for the box, one section per process; the keys are the flag
# names (xtrunk relay -h, xtrunk sip -h, xtrunk api -h). Set keys are this
# host's values; the others are commented out with their defaults.
# Flags and XTRUNK_<FLAG> variables override the file.
#
# Check it:  xtrunk check-config %s
# Start it:  xtrunk up --config %s
`, describeAddr(p.customer), p.config, p.config)
	for _, s := range processSections() {
		fs, err := s.flags()
		if err != nil {
			return nil, fmt.Errorf("%s flags: %w", s.name, err)
		}
		fmt.Fprintf(&b, "\n%s:\n", s.name)
		writeSection(&b, fs, p.values[s.name])
	}
	return []byte(b.String()), nil
}

func writeSection(b *strings.Builder, fs *flag.FlagSet, set map[string][]string) {
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" || strings.HasPrefix(f.Usage, "deprecated") {
			return
		}
		b.WriteString("\n")
		for _, l := range wrap(f.Usage, 72) {
			fmt.Fprintf(b, "  # %s\n", l)
		}
		vals, ok := set[f.Name]
		prefix := "  "
		if !ok {
			prefix = "  # "
			vals = defaultValues(f)
		}
		_, list := f.Value.(repeatable)
		switch {
		case list && len(vals) == 0:
			fmt.Fprintf(b, "%s%s: []\n", prefix, f.Name)
		case list:
			fmt.Fprintf(b, "%s%s:\n", prefix, f.Name)
			for _, v := range vals {
				fmt.Fprintf(b, "%s  - %s\n", prefix, yamlScalar(v))
			}
		default:
			fmt.Fprintf(b, "%s%s: %s\n", prefix, f.Name, yamlScalar(vals[0]))
		}
	})
}

// defaultValues is a flag's default as YAML values: a repeatable flag's
// default list (comma-joined in DefValue) item by item.
func defaultValues(f *flag.Flag) []string {
	if _, list := f.Value.(repeatable); list {
		if f.DefValue == "" {
			return nil
		}
		return strings.Split(f.DefValue, ",")
	}
	return []string{f.DefValue}
}

// yamlScalar is s as a YAML scalar: plain where YAML reads it back as
// written, quoted otherwise (the loaders take the text either way).
func yamlScalar(s string) string {
	if s == "" {
		return `""`
	}
	out, err := yaml.Marshal(&yaml.Node{Kind: yaml.ScalarNode, Value: s})
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}
