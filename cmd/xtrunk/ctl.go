package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/signalling"
	"github.com/xtrunk/xtrunk/signalling/limit"
)

// xtrunk ctl talks to the /admin/ endpoints of sip and relay (admin.go)
// on their --metrics listeners: as they are from the edge itself, with
// the operator's credentials (HTTP Basic) from anywhere else.

const ctlUsage = `usage: xtrunk ctl [flags] COMMAND [ARG]

The operator's console: live calls, bans, carriers and the relay, from the
/admin/ endpoints of xtrunk sip and xtrunk relay on their --metrics
listeners. On the edge itself nothing else is needed; from another host
(--sip/--relay HOST:PORT of a metrics listener bound to a management
network) the operator's credentials are sent: --credentials FILE (the
file xtrunk init writes), else XTRUNK_ACCOUNT_SID and XTRUNK_AUTH_TOKEN.
Flags may come before or after the command.

commands:
  calls          live calls: trunk, numbers, state, per-leg packets/loss/jitter/MOS, XDP share
  call ID        one call (edge call ID or Call SID): details and its SIP ladder so far
  hangup ID      end a call: BYE to both legs, CDR hangup cause "system: administratively ended"
  bans           sources and prefixes the abuse guard bans now
  unban ADDR     lift the ban on an address or a /24 or /64 prefix
  carriers       carrier gateways' OPTIONS probe state
  relay          relay sessions, packets per second by path (XDP, userspace), drops by reason

flags:
`

// ctlFlags are ctl's and top's flags: where sip and relay serve /admin/.
type ctlFlags struct {
	sip, relay, config string
	credentials        string
	user, pass         string // the operator's AccountSid and AuthToken, when known
	json               bool
	timeout            time.Duration
}

func (f *ctlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.sip, "sip", "", "xtrunk sip's metrics listener, HOST:PORT or http://HOST:PORT (default: sip: metrics in the config file, else 127.0.0.1:9102)")
	fs.StringVar(&f.relay, "relay", "", "xtrunk relay's metrics listener (default: relay: metrics in the config file, else 127.0.0.1:9101)")
	fs.StringVar(&f.config, "config", os.Getenv("XTRUNK_CONFIG"), "the edge's config file, for the default addresses (default ./xtrunk.yaml)")
	fs.StringVar(&f.credentials, "credentials", "", "the operator's credentials file (KEY=value, as xtrunk init writes it), sent to a remote edge (default: XTRUNK_ACCOUNT_SID and XTRUNK_AUTH_TOKEN)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "give up on a request after this long")
}

// resolve fills in the addresses left empty from the config file, and
// the credentials.
func (f *ctlFlags) resolve() error {
	if f.credentials != "" {
		c, err := api.ReadCredentials(f.credentials)
		if err != nil {
			return fmt.Errorf("%w: --credentials: %w", ErrConfig, err)
		}
		f.user, f.pass = c.AccountSid, c.AuthToken
	} else {
		f.user, f.pass = os.Getenv("XTRUNK_ACCOUNT_SID"), os.Getenv("XTRUNK_AUTH_TOKEN")
	}
	args := []string{}
	if f.config != "" {
		args = append(args, "--config", f.config)
	}
	if f.sip != "" {
		f.sip = adminURL(f.sip, "")
	}
	if f.relay != "" {
		f.relay = adminURL(f.relay, "")
	}
	if f.sip == "" {
		cfg, _, err := sipConfig(args)
		if err != nil {
			return err
		}
		f.sip = adminURL(cfg.Metrics, "127.0.0.1:9102")
	}
	if f.relay == "" {
		cfg, _, err := relayConfig(args)
		if err != nil {
			return err
		}
		f.relay = adminURL(cfg.Metrics, "127.0.0.1:9101")
	}
	return nil
}

// adminURL is the base URL for a --metrics address: a wildcard host is
// reached on loopback (where the admin endpoints answer).
func adminURL(addr, def string) string {
	if addr == "" {
		addr = def
	}
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + addr
}

func runCtl(args []string) error {
	var f ctlFlags
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	f.register(fs)
	fs.BoolVar(&f.json, "json", false, "print the endpoint's JSON instead of a table")
	fs.Usage = func() { fmt.Fprint(fs.Output(), ctlUsage); fs.PrintDefaults() }
	// flags before and after the command (and its argument)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: ctl: a command is needed", ErrConfig)
	}
	if err := f.resolve(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	return ctl(ctx, &f, pos, os.Stdout)
}

// ctlCommands are ctl's commands: method, process, path and how many
// arguments (0 or 1) they take, and the table printer.
type ctlCommand struct {
	method, path string
	toRelay      bool
	arg          bool
	print        func(w io.Writer, body []byte) error
}

var ctlCommands = map[string]ctlCommand{
	"calls":    {method: http.MethodGet, path: "/admin/calls", print: printCalls},
	"call":     {method: http.MethodGet, path: "/admin/calls/%s", arg: true, print: printCall},
	"hangup":   {method: http.MethodPost, path: "/admin/calls/%s/hangup", arg: true, print: printStatus},
	"bans":     {method: http.MethodGet, path: "/admin/bans", print: printBans},
	"unban":    {method: http.MethodDelete, path: "/admin/bans/%s", arg: true, print: printStatus},
	"carriers": {method: http.MethodGet, path: "/admin/carriers", print: printCarriers},
	"relay":    {method: http.MethodGet, path: "/admin/relay", toRelay: true, print: printRelay},
}

func ctl(ctx context.Context, f *ctlFlags, args []string, w io.Writer) error {
	c, ok := ctlCommands[args[0]]
	if !ok {
		return fmt.Errorf("%w: ctl: unknown command %q (see xtrunk ctl -h)", ErrConfig, args[0])
	}
	path := c.path
	switch {
	case c.arg && len(args) != 2:
		return fmt.Errorf("%w: ctl %s: takes one argument", ErrConfig, args[0])
	case !c.arg && len(args) != 1:
		return fmt.Errorf("%w: ctl %s: takes no argument", ErrConfig, args[0])
	case c.arg:
		path = fmt.Sprintf(path, url.PathEscape(args[1]))
	}
	base := f.sip
	if c.toRelay {
		base = f.relay
	}
	body, err := f.adminDo(ctx, c.method, base+path)
	if err != nil {
		return err
	}
	if args[0] == "relay" && !f.json {
		// two readings a second apart: rates, not counters since start
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		second, err := f.adminDo(ctx, c.method, base+path)
		if err != nil {
			return err
		}
		return printRelayRates(w, body, second, time.Second)
	}
	if f.json {
		_, err := w.Write(body)
		return err
	}
	return c.print(w, body)
}

// adminDo sends one admin request, with the operator's credentials when
// known (a local edge ignores them); a non-2xx answer is an error
// carrying the endpoint's message.
func (f *ctlFlags) adminDo(ctx context.Context, method, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCtl, err)
	}
	if f.user != "" && f.pass != "" {
		req.SetBasicAuth(f.user, f.pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCtl, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCtl, u, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%w: %s: %s", ErrCtl, res.Status, e.Error)
		}
		return nil, fmt.Errorf("%w: %s %s: %s", ErrCtl, method, u, res.Status)
	}
	return body, nil
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func printCalls(w io.Writer, body []byte) error {
	var calls []signalling.LiveCall
	if err := json.Unmarshal(body, &calls); err != nil {
		return fmt.Errorf("%w: calls: %w", ErrCtl, err)
	}
	t := table(w)
	fmt.Fprintln(t, "ID\tTRUNK\tDIR\tFROM\tTO\tSTATUS\tAGE\tLEG\tPKTS\tLOSS%\tJITTER ms\tMOS\tXDP%")
	for _, c := range calls {
		age := time.Since(c.Start).Round(time.Second)
		legs := c.Legs
		if len(legs) == 0 {
			legs = []signalling.LiveLeg{{Leg: "-"}}
		}
		for i, l := range legs {
			if i == 0 {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t", c.ID, c.Trunk, shortDir(c.Direction), c.From, c.To, c.Status, age)
			} else {
				fmt.Fprint(t, "\t\t\t\t\t\t\t")
			}
			fmt.Fprintf(t, "%s\t%d\t%.1f\t%.1f\t%.2f\t%.0f\n", l.Leg, l.Packets, l.LossPct, l.JitterMs, l.MOS, 100*l.XDPShare)
		}
	}
	return t.Flush()
}

func shortDir(d string) string {
	switch {
	case strings.HasSuffix(d, "terminating"):
		return "term"
	case strings.HasSuffix(d, "originating"):
		return "orig"
	}
	return d
}

func printCall(w io.Writer, body []byte) error {
	var c signalling.LiveCall
	if err := json.Unmarshal(body, &c); err != nil {
		return fmt.Errorf("%w: call: %w", ErrCtl, err)
	}
	t := table(w)
	fmt.Fprintf(t, "call\t%s\nsid\t%s\ntrunk\t%s\ndirection\t%s\nfrom\t%s\nto\t%s\nstatus\t%s\nstart\t%s\n",
		c.ID, c.Sid, c.Trunk, c.Direction, c.From, c.To, c.Status, c.Start.Format(time.RFC3339))
	if c.Answer != nil {
		fmt.Fprintf(t, "answer\t%s\n", c.Answer.Format(time.RFC3339))
	}
	if c.Codec != "" {
		fmt.Fprintf(t, "codec\t%s\n", c.Codec)
	}
	for _, l := range c.Legs {
		fmt.Fprintf(t, "%s leg\t%d packets, %.1f%% lost, jitter %.1f ms, MOS %.2f, XDP %.0f%%\n", l.Leg, l.Packets, l.LossPct, l.JitterMs, l.MOS, 100*l.XDPShare)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSIP ladder:")
	t = table(w)
	for _, e := range c.Ladder {
		arrow := "→ edge"
		if e.Dir == "out" {
			arrow = "edge →"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", e.At.Format("15:04:05.000"), e.Leg, arrow, e.Line)
	}
	return t.Flush()
}

func printStatus(w io.Writer, body []byte) error {
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("%w: %w", ErrCtl, err)
	}
	if m["id"] != "" {
		fmt.Fprintf(w, "%s: %s\n", m["id"], m["status"])
	} else {
		fmt.Fprintf(w, "%s: %s\n", m["source"], m["status"])
	}
	return nil
}

func printBans(w io.Writer, body []byte) error {
	var bans []limit.Ban
	if err := json.Unmarshal(body, &bans); err != nil {
		return fmt.Errorf("%w: bans: %w", ErrCtl, err)
	}
	t := table(w)
	fmt.Fprintln(t, "SOURCE\tKIND\tUNTIL\tLEFT")
	for _, b := range bans {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", b.Source, b.Kind, b.Until.Format(time.RFC3339), time.Until(b.Until).Round(time.Second))
	}
	return t.Flush()
}

func printCarriers(w io.Writer, body []byte) error {
	var cs []signalling.CarrierState
	if err := json.Unmarshal(body, &cs); err != nil {
		return fmt.Errorf("%w: carriers: %w", ErrCtl, err)
	}
	t := table(w)
	fmt.Fprintln(t, "GATEWAY\tSTATE\tMISSES\tANSWERS")
	for _, c := range cs {
		state := "down"
		switch {
		case !c.Probed:
			state = "up (not probed)"
		case c.Up:
			state = "up"
		}
		fmt.Fprintf(t, "%s\t%s\t%d\t%d\n", c.Gateway, state, c.Misses, c.Answers)
	}
	return t.Flush()
}

func printRelay(w io.Writer, body []byte) error {
	return printRelayRates(w, body, body, 0)
}

// printRelayRates prints the relay's state at b and, when every > 0, the
// packet and drop rates between readings a and b.
func printRelayRates(w io.Writer, a, b []byte, every time.Duration) error {
	var ra, rb RelayStats
	if err := errors.Join(json.Unmarshal(a, &ra), json.Unmarshal(b, &rb)); err != nil {
		return fmt.Errorf("%w: relay: %w", ErrCtl, err)
	}
	t := table(w)
	fmt.Fprintln(t, "WHAT\tNAME\tNOW\tPER SECOND")
	for _, k := range sortedKeys(rb.Sessions) {
		fmt.Fprintf(t, "sessions\t%s\t%.0f\t\n", k, rb.Sessions[k])
	}
	fmt.Fprintf(t, "port pairs\tin use\t%.0f of %.0f\t\n", rb.PortPairsUsed, rb.PortPairs)
	rate := func(m, n map[string]float64, k string) string {
		if every <= 0 {
			return ""
		}
		return fmt.Sprintf("%.0f", (n[k]-m[k])/every.Seconds())
	}
	for _, k := range sortedKeys(rb.Packets) {
		fmt.Fprintf(t, "packets\t%s\t%.0f\t%s\n", k, rb.Packets[k], rate(ra.Packets, rb.Packets, k))
	}
	for _, k := range sortedKeys(rb.Drops) {
		if rb.Drops[k] == 0 {
			continue
		}
		fmt.Fprintf(t, "drops\t%s\t%.0f\t%s\n", k, rb.Drops[k], rate(ra.Drops, rb.Drops, k))
	}
	return t.Flush()
}

func sortedKeys(m map[string]float64) []string { return slices.Sorted(maps.Keys(m)) }
