package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/ng"
)

// xtrunk demo: a whole edge in a namespace lab. It builds the lab (PBX,
// edge, carrier; no default route, addresses in 198.18.0.0/15), starts
// the edge from one xtrunk.yaml, provisions a customer through the REST
// API, places three calls with media both ways — termination with digest
// auth, origination to the DID, and a Secure (TLS + SRTP) call from
// baresip — and prints per call the SIP result, packets each way, the
// XDP fast path's share, loss and jitter, and the CDR. Everything it
// made is removed at the end, also on Ctrl-C or SIGTERM.

// The bar every call must meet (the "done when").
const (
	barDelivered = 0.99 // of the packets sent, each way
	barFastPath  = 0.90 // share on XDP, each way, plain RTP calls
)

// demoCall is one call's result; the JSON of --json. Maps are keyed by
// direction: "pbx_to_carrier" and "carrier_to_pbx".
type demoCall struct {
	Name      string `json:"name"`
	Direction string `json:"direction"` // termination (PBX → carrier) or origination (carrier → PBX)
	Secure    bool   `json:"secure"`    // TLS + SRTP on the PBX side
	From      string `json:"from"`
	To        string `json:"to"`
	SIPStatus int    `json:"sip_status"` // the final response the caller got (0: none)
	// TLSVerified: the edge's certificate verified from the PBX's side
	// (secure call only).
	TLSVerified bool `json:"tls_verified,omitempty"`
	// Sent: packets the sending peer put on the wire; Received: packets
	// that arrived at the other peer (see README for the secure call).
	Sent     map[string]int `json:"sent"`
	Received map[string]int `json:"received"`
	// FastPath: of the packets the relay received from the sender, the
	// share its XDP program forwarded (0-1).
	FastPath map[string]float64     `json:"fast_path"`
	Relay    map[string]relayCounts `json:"relay"`
	// Loss and JitterMs: the relay's measure of each incoming stream, from
	// the CDR.
	Loss       map[string]int64   `json:"loss"`
	JitterMs   map[string]float64 `json:"jitter_ms"`
	CDRSid     string             `json:"cdr_sid"`
	CDRStatus  string             `json:"cdr_status"`
	CDRSIPCode int                `json:"cdr_sip_response_code"`
	Pass       bool               `json:"pass"`
	Failures   []string           `json:"failures,omitempty"` // the bar's checks that failed
	Errors     []string           `json:"errors,omitempty"`   // what went wrong on the way
	Seconds    float64            `json:"seconds"`
}

// relayCounts are the relay's packets from one sender.
type relayCounts struct {
	Packets   int64 `json:"packets"`
	FastPath  int64 `json:"fast_path"`
	Userspace int64 `json:"userspace"`
}

// demoStep is one timed step.
type demoStep struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// demoReport is the whole of --json.
type demoReport struct {
	Calls []*demoCall `json:"calls"`
	Steps []demoStep  `json:"steps"`
	Pass  bool        `json:"pass"`
}

// check applies the bar and fills Pass and Failures.
func (c *demoCall) check() {
	c.Failures = nil
	if c.SIPStatus != 200 {
		c.Failures = append(c.Failures, fmt.Sprintf("not answered (SIP %d)", c.SIPStatus))
	}
	for _, dir := range []string{dirPBXToCarrier, dirCarrierToPBX} {
		sent, got := c.Sent[dir], c.Received[dir]
		if sent == 0 || float64(got) < barDelivered*float64(sent) {
			c.Failures = append(c.Failures, fmt.Sprintf("%s: %d of %d packets delivered (want ≥ %.0f %%)", dir, got, sent, 100*barDelivered))
		}
		if f, ok := c.FastPath[dir]; !c.Secure && sent > 0 && (!ok || f <= barFastPath) {
			c.Failures = append(c.Failures, fmt.Sprintf("%s: %.1f %% on the fast path (want > %.0f %%)", dir, 100*f, 100*barFastPath))
		}
	}
	if c.CDRSid == "" {
		c.Failures = append(c.Failures, "no CDR through the API")
	}
	c.Pass = len(c.Failures) == 0 && len(c.Errors) == 0
}

func runDemo(args []string) error {
	if i := slices.IndexFunc(args, func(a string) bool { return a == "--relay-only" || a == "-relay-only" }); i >= 0 {
		return runRelayDemo(slices.Delete(slices.Clone(args), i, i+1))
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	fs.Bool("relay-only", false, "the relay alone over NG (no SIP): the older demo; takes --duration and --dataplane")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: xtrunk demo [--json FILE] | xtrunk demo --relay-only [--duration D] [--dataplane xdp|userspace]

Brings up an edge (xtrunk relay with XDP, api, sip from one xtrunk.yaml) in
a namespace lab (PBX, edge, carrier; 198.18.0.0/15, no default route),
provisions a customer through the REST API and places three calls with RTP
both ways: termination with digest auth (SIPp), origination to the DID
(SIPp), and a Secure TLS + SRTP call (baresip). Needs root, SIPp
(sip-tester) and baresip: make demo installs them. Exits 1 unless every
call is answered, delivers ≥ 99 % of its packets each way, plain calls
go > 90 % through the XDP fast path, and the CDRs are in the API.

examples:
  make demo                                  # installs SIPp and baresip, builds, runs this
  xtrunk demo --json demo.json
  xtrunk demo --relay-only --duration 10s

flags:
`)
		fs.PrintDefaults()
	}
	fs.SetOutput(io.Discard) // the error is returned, the usage printed once for -h
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.Usage()
			return err
		}
		return fmt.Errorf("%w (see xtrunk demo -h)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see xtrunk demo -h)", fs.Arg(0))
	}
	if err := testbed.Privileged(); err != nil {
		return fmt.Errorf("the demo builds network namespaces and loads XDP: run it as root (%w)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := demo(ctx, os.Stdout)
	if *jsonOut != "" && rep != nil {
		b, _ := json.MarshalIndent(rep, "", "  ") // plain structs: no error
		if werr := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if ctx.Err() != nil {
		return errors.Join(errors.New("interrupted; everything the demo made is removed"), err)
	}
	return err
}

// timer prints and records how long each step took.
type timer struct {
	w     io.Writer
	steps *[]demoStep
	start time.Time
}

func (t *timer) step(name string, fn func() error) error {
	fmt.Fprintf(t.w, "▸ %s\n", name)
	s := time.Now()
	err := fn()
	d := time.Since(s)
	*t.steps = append(*t.steps, demoStep{Name: name, Seconds: d.Seconds()})
	status := "done"
	if err != nil {
		status = "FAILED"
	}
	fmt.Fprintf(t.w, "  %s in %.1f s\n", status, d.Seconds())
	return err
}

// demo runs the whole demo; the report is nil only when nothing ran.
func demo(ctx context.Context, w io.Writer) (rep *demoReport, err error) {
	rep = &demoReport{}
	t := &timer{w: w, steps: &rep.Steps, start: time.Now()}
	var d *demoLab
	defer func() {
		if d == nil {
			return
		}
		cerr := t.step("tear down: edge processes, namespaces, bpffs, temporary files", d.close)
		err = errors.Join(err, cerr)
		fmt.Fprintf(w, "total %.1f s\n", time.Since(t.start).Seconds())
	}()
	if err := t.step("build the lab: pbx ⇄ edge ⇄ carrier namespaces", func() error {
		var err error
		d, err = newDemoLab()
		if err == nil {
			tr := d.tri
			fmt.Fprintf(w, "  pbx     %-20s %s\n  edge    %-20s %s | %s\n  carrier %-20s %s\n  files in %s\n",
				tr.Caller.NetnsName, tr.CallerIP, tr.Relay.NetnsName, tr.RelayCallerIP, tr.RelayCalleeIP,
				tr.Callee.NetnsName, tr.CalleeIP, d.dir)
		}
		return err
	}); err != nil {
		return rep, err
	}
	pe, err := d.lookPeers()
	if err != nil {
		return rep, err
	}
	how := "xtrunk relay (XDP), api, sip"
	if hasUp() {
		how = "xtrunk up: relay (XDP), api, sip"
	}
	if err := t.step("start the edge: "+how+" from one xtrunk.yaml", func() error {
		return d.bringUp(ctx, w, pe)
	}); err != nil {
		return rep, err
	}
	if err := t.step("provision through the REST API", func() error {
		fmt.Fprintf(w, "  (each line: curl -u $SID:$TOKEN http://%s<path> -d …, from the edge namespace: ip netns exec %s …)\n",
			demoAPIAddr, d.tri.Relay.NetnsName)
		var err error
		pe.trunks, err = d.provision(ctx, "sip:"+netip.AddrPortFrom(d.tri.CallerIP, pbxSIPPort).String())
		return err
	}); err != nil {
		return rep, err
	}
	for _, c := range []struct {
		name string
		fn   func(context.Context, *demoPeers) *demoCall
	}{
		{"call 1: termination, PBX → edge → carrier, digest auth", d.terminationCall},
		{"call 2: origination, carrier → edge → PBX (the DID)", d.originationCall},
		{"call 3: secure, baresip over TLS + SRTP → edge → carrier", d.secureCall},
	} {
		var res *demoCall
		_ = t.step(c.name, func() error {
			s := time.Now()
			res = c.fn(ctx, pe)
			res.Seconds = time.Since(s).Seconds()
			res.check()
			if !res.Pass {
				return ErrDemoFailed
			}
			return nil
		})
		rep.Calls = append(rep.Calls, res)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	printSummary(w, rep.Calls)
	rep.Pass = !slices.ContainsFunc(rep.Calls, func(c *demoCall) bool { return !c.Pass })
	if !rep.Pass {
		fmt.Fprintf(w, "\nedge logs (tail):\n%s", d.edgeLogs(20))
		return rep, ErrDemoFailed
	}
	return rep, nil
}

// bringUp writes the certificate and the config, starts the edge and
// connects to the relay's NG port (the demo reads each call's counters
// there).
func (d *demoLab) bringUp(ctx context.Context, w io.Writer, pe *demoPeers) error {
	if err := d.selfSigned(d.tri.RelayCallerIP, "secure.pstn."+demoDomain); err != nil {
		return err
	}
	if err := d.writeConfig(); err != nil {
		return err
	}
	if _, err := d.startEdge(ctx, d.config); err != nil {
		return fmt.Errorf("%w\n%s", err, d.edgeLogs(20))
	}
	if err := d.tri.Relay.Do(func() error {
		var err error
		pe.ng, err = ng.Dial(demoNGAddr, ng.WithTimeout(time.Second))
		return err
	}); err != nil {
		return err
	}
	ready := fmt.Sprintf("relay %s, api %s, sip %s", demoProcs[0].health, demoProcs[1].health, demoProcs[2].health)
	if hasUp() {
		ready = "up " + demoUpHealth + ", " + ready
	}
	fmt.Fprintf(w, "  config %s\n  SIP udp 0.0.0.0:%d, tls 0.0.0.0:%d; API http://%s (account %s); NG %s\n  /readyz: %s\n",
		d.config, demoSIPPort, demoTLSPort, demoAPIAddr, d.account, demoNGAddr, ready)
	return nil
}

// printSummary is the table of calls, then what failed.
func printSummary(w io.Writer, calls []*demoCall) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "call\tSIP\tdirection\tsent\treceived\tdelivered\tXDP fast path\tlost\tjitter\tCDR\tresult")
	for _, c := range calls {
		for i, dir := range []string{dirPBXToCarrier, dirCarrierToPBX} {
			name, sip, cdr, result := "", "", "", ""
			if i == 0 {
				name, sip, cdr, result = c.Name, fmt.Sprint(c.SIPStatus), c.CDRSid, "PASS"
				if cdr == "" {
					cdr = "-"
				}
				if !c.Pass {
					result = "FAIL"
				}
			}
			fast := "-"
			if f, ok := c.FastPath[dir]; ok {
				fast = fmt.Sprintf("%.1f %%", 100*f)
				if c.Secure {
					fast += " (SRTP)" // the relay crypts in userspace
				}
			}
			deliv := "-"
			if c.Sent[dir] > 0 {
				deliv = fmt.Sprintf("%.1f %%", 100*float64(c.Received[dir])/float64(c.Sent[dir]))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%d\t%.1f ms\t%s\t%s\n", name, sip, strings.ReplaceAll(dir, "_", " "),
				c.Sent[dir], c.Received[dir], deliv, fast, c.Loss[dir], c.JitterMs[dir], cdr, result)
		}
	}
	tw.Flush()
	for _, c := range calls {
		for _, f := range append(c.Failures, c.Errors...) {
			fmt.Fprintf(w, "%s: %s\n", c.Name, f)
		}
	}
}
