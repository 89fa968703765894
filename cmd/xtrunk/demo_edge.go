package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// The demo's lab is testbed's Triangle with the roles of an edge:
//
//	pbx ns 198.18.1.2  ⇄  198.18.1.1 edge ns 198.18.2.1  ⇄  198.18.2.2 carrier ns
//	SIPp, baresip          relay (XDP), api, sip           SIPp
//
// The edge's processes read one xtrunk.yaml written into a temporary
// directory with everything else they keep (SQLite store, TLS
// certificate); the relay's pins go on a bpffs of their own under /run.
const (
	demoDomain  = "demo.test" // RFC 2606: never a real host
	demoEdge    = "demo"
	demoDID     = "+14155550100" // the customer's number: caller ID on termination, called on origination
	demoFrom    = "+12125550100" // the carrier's caller on origination
	demoUser    = "pbx"          // the credential list's user
	demoSIPPort = 5060
	demoTLSPort = 5061
	demoNGAddr  = "127.0.0.1:2223"
	demoAPIAddr = "127.0.0.1:8080"
)

// demoProcs are the edge's processes and their readiness endpoints, in
// the order they start (and the reverse of the order they stop).
var demoProcs = []struct{ name, health string }{
	{"relay", "127.0.0.1:9101"},
	{"api", "127.0.0.1:9103"},
	{"sip", "127.0.0.1:9102"},
}

// demoUpHealth is xtrunk up's /readyz (all children ready), when the
// edge runs under it.
const demoUpHealth = "127.0.0.1:9110"

// hasUp: this binary has `xtrunk up` (the supervisor of issue 11).
func hasUp() bool {
	return slices.ContainsFunc(subcommands(), func(c subcommand) bool { return c.name == "up" })
}

// demoLab is the lab and what runs in it.
type demoLab struct {
	tri      *testbed.Triangle
	dir      string // temporary: config, store, certificate, peers' files
	bin      string // this binary, for the edge's processes
	config   string
	pins     string // bpffs mount for the relay's pins (testbed.MountBPFFS)
	account  string // the operator's account SID and token, given to xtrunk api
	token    string
	password string // the PBX's digest password
	certFile string
	keyFile  string
	certPool *x509.CertPool // trusts certFile only
	edge     *http.Client   // reaches HTTP listeners inside the edge namespace
	procs    []*testbed.Process
}

// newDemoLab builds the namespaces and the temporary directory, and
// mounts a bpffs for the relay's pins. close undoes all of it, also after
// an error half way.
func newDemoLab() (d *demoLab, err error) {
	d = &demoLab{}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.close())
			d = nil
		}
	}()
	if d.bin, err = os.Executable(); err != nil {
		return d, err
	}
	if d.dir, err = os.MkdirTemp("", "xtrunk-demo-"); err != nil {
		return d, err
	}
	if d.pins, err = testbed.MountBPFFS("xtrunk-demo-bpffs-"); err != nil {
		return d, err
	}
	if d.tri, err = testbed.NewTriangleLab(testbed.WithoutIPv6()); err != nil {
		return d, err
	}
	// The kernel's ephemeral ports (32768-60999) overlap the relay's media
	// ports (30000-39999 by default). xtrunk sip sends UDP from its
	// listening socket, so this is belt and braces for a one-box edge: an
	// answer to an ephemeral port in the relay's range would reach XDP
	// first (which passes what has no session to the host).
	if err := d.tri.Relay.SetSysctl("net.ipv4.ip_local_port_range", "40000 60999"); err != nil {
		return d, err
	}
	d.edge = nsHTTPClient(d.tri.Relay)
	// The password: upper, lower case and a digit, as the API requires.
	d.account, d.token, d.password = "AC"+randHex(16), randHex(16), "Pbx7"+randHex(8)
	return d, nil
}

// close stops the edge, removes the lab (namespaces, links, every process
// started in it), unmounts the bpffs and removes the directory.
func (d *demoLab) close() error {
	var errs []error
	errs = append(errs, d.stopEdge())
	if d.tri != nil {
		errs = append(errs, d.tri.Lab.Close())
	}
	if d.pins != "" {
		errs = append(errs, testbed.UnmountBPFFS(d.pins))
	}
	if d.dir != "" {
		errs = append(errs, os.RemoveAll(d.dir))
	}
	return errors.Join(errs...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (Go 1.24)
	return hex.EncodeToString(b)
}

// nsHTTPClient dials from inside ns: the demo reaches the edge's API and
// health endpoints as a curl run there would (ip netns exec … curl).
func nsHTTPClient(ns *testbed.NS) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// writeConfig writes the edge's xtrunk.yaml: one file, a section per
// process, keys as the flags. sip listens on the wildcard address as a
// newcomer would configure it; the relay needs its interfaces' addresses.
func (d *demoLab) writeConfig() error {
	t := d.tri
	db := "sqlite:" + filepath.Join(d.dir, "xtrunk.db")
	ifaces := fmt.Sprintf("[customer/%s, carrier/%s]", t.RelayCallerIP, t.RelayCalleeIP)
	y := fmt.Sprintf(`# xtrunk demo edge, written by xtrunk demo
relay:
  interface: %[1]s
  listen-ng: %[2]s
  dataplane: xdp
  pin-path: %[3]s
  remove-on-exit: true
  metrics: %[4]s
  log-level: warn
api:
  listen: %[5]s
  db: %[6]s
  domain: %[7]s
  edges: [%[8]s]
  metrics: %[9]s
  log-level: warn
sip:
  listen-udp: 0.0.0.0:%[10]d
  listen-tls: 0.0.0.0:%[11]d
  tls-cert: %[12]s
  tls-key: %[13]s
  domain: %[7]s
  edge: %[8]s
  carrier: [sip:%[14]s:%[10]d]
  carrier-source: [%[14]s/32]
  carrier-probe-interval: 0s # the demo's SIPp carrier answers calls, not OPTIONS probes
  relay-ng: %[2]s
  relay-customer-iface: customer
  relay-carrier-iface: carrier
  relay-interface: %[1]s
  db: %[6]s
  metrics: %[15]s
  default-cps: 0
  drain-timeout: 2s
  log-level: info
`, ifaces, demoNGAddr, filepath.Join(d.pins, "relay"), demoProcs[0].health,
		demoAPIAddr, db, demoDomain, demoEdge, demoProcs[1].health,
		demoSIPPort, demoTLSPort, d.certFile, d.keyFile, t.CalleeIP, demoProcs[2].health)
	d.config = filepath.Join(d.dir, "xtrunk.yaml")
	return os.WriteFile(d.config, []byte(y), 0o600)
}

// startEdge starts the edge from cfgPath in the edge namespace and waits
// until it is ready: `xtrunk up` when this binary has it (one supervisor,
// its /readyz on demoUpHealth ready once every child is), else the three
// subcommands it would supervise, each reading its section and waited
// for on its /readyz. stop ends them (sip drains first).
func (d *demoLab) startEdge(ctx context.Context, cfgPath string) (stop func() error, err error) {
	stop = d.stopEdge
	type step struct {
		args         []string
		health, name string
	}
	steps := []step{{[]string{"up", "--metrics", demoUpHealth, "--data-dir", d.dir}, demoUpHealth, "up"}}
	if !hasUp() {
		steps = steps[:0]
		for _, p := range demoProcs {
			steps = append(steps, step{[]string{p.name}, p.health, p.name})
		}
	}
	for _, st := range steps {
		// Not ctx: on Ctrl-C the edge gets SIGTERM from stop (sip drains,
		// the relay detaches XDP and unpins), not SIGKILL.
		cmd := d.tri.Relay.Command(context.WithoutCancel(ctx), d.bin, append(st.args, "--config", cfgPath, "--log-format", "json")...)
		cmd.Env = append(os.Environ(), "XTRUNK_ACCOUNT_SID="+d.account, "XTRUNK_AUTH_TOKEN="+d.token)
		proc, err := d.tri.Relay.StartCmd(cmd)
		if err != nil {
			return stop, err
		}
		d.procs = append(d.procs, proc)
		if err := d.waitReady(ctx, st.name, st.health, proc); err != nil {
			return stop, err
		}
	}
	return stop, nil
}

// stopEdge stops what startEdge started, newest first.
func (d *demoLab) stopEdge() error {
	var errs []error
	for i := len(d.procs) - 1; i >= 0; i-- {
		if err := stopGracefully(d.procs[i], demoStopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	d.procs = nil
	return errors.Join(errs...)
}

// demoStopGrace is how long an edge process may take to exit after
// SIGTERM: sip drains live calls (drain-timeout 2s) and hangs up the
// rest; under xtrunk up, the others stop after it.
const demoStopGrace = 20 * time.Second

// stopGracefully sends SIGTERM and waits up to grace before SIGKILL
// (testbed's Stop waits 3 s only).
func stopGracefully(p *testbed.Process, grace time.Duration) error {
	select {
	case <-p.Done():
		return nil // exited already; a failure was reported where it happened
	default:
	}
	if err := p.Cmd.Process.Signal(unix.SIGTERM); err != nil {
		return fmt.Errorf("stopping %s: %w", p, err)
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(grace):
		_ = p.Kill()
		return fmt.Errorf("%s did not exit %v after SIGTERM: killed", p, grace)
	}
}

// waitReady polls http://addr/readyz until it answers 200.
func (d *demoLab) waitReady(ctx context.Context, name, addr string, p *testbed.Process) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := d.edge.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.Done():
			return fmt.Errorf("xtrunk %s exited: %w\n%s", name, p.Wait(), lastLines(p.Output(), 30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("xtrunk %s not ready on %s/readyz after 20 s:\n%s", name, addr, lastLines(p.Output(), 30))
		}
	}
}

// edgeLogs is the tail of every edge process's output, for a failure.
func (d *demoLab) edgeLogs(n int) string {
	var b strings.Builder
	for _, p := range d.procs {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", p, lastLines(p.Output(), n))
	}
	return b.String()
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// selfSigned writes a self-signed certificate for the edge's
// customer-side address and the secure trunk's host into the lab
// directory, for xtrunk sip's TLS listener.
func (d *demoLab) selfSigned(ip netip.Addr, names ...string) error {
	dir := filepath.Join(d.dir, "tls")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	var err error
	d.certFile, d.keyFile, d.certPool, err = testbed.SelfSigned(dir, ip, names...)
	return err
}
