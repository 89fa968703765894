// Command xtrunk runs the parts of an xtrunk SIP trunking edge: the media
// relay, the signalling B2BUA, the control-plane API, and the benchmarks.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type subcommand struct {
	name, help string
	run        func(args []string) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"up", "run the whole edge: relay, api and sip as supervised child processes", upDaemon.run},
		{"relay", "run the media relay (XDP fast path + NG control)", relayDaemon.run},
		{"sip", "run the SIP signalling: the trunk B2BUA (termination)", sipDaemon.run},
		{"api", "run the control plane: Twilio-compatible REST API on SQLite or PostgreSQL", apiDaemon.run},
		{"bench", "benchmark the media relay: xtrunk XDP vs userspace vs rtpengine vs the XDP ceiling", runBench},
		{"demo", "bring up an edge in a namespace lab, provision it through the API and place real calls (TLS+SRTP too)", runDemo},
		{"ctl", "the operator's console: live calls, hangup, bans, carriers, relay stats (admin endpoints)", runCtl},
		{"top", "a full-screen live view of the edge: CPS, ASR, ACD, calls per trunk, relay pps, worst calls", runTop},
		{"version", "print the version, commit and Go version", func([]string) error { printVersion(os.Stdout); return nil }},
		{"init", "write a commented xtrunk.yaml for this host and the operator's credentials", runInit},
		{"check-config", "validate an xtrunk.yaml: unknown keys, bad values, with their line", runCheckConfig},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: xtrunk COMMAND [flags]\n\ncommands:")
	for _, c := range subcommands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.help)
	}
	fmt.Fprint(w, `
examples:
  xtrunk up --config /etc/xtrunk/xtrunk.yaml    # the whole edge: relay, api, sip
  xtrunk relay --interface customer/203.0.113.10 --interface carrier/198.51.100.10
  xtrunk api --domain example.net
  xtrunk sip --domain example.net --carrier sip:gw1.carrier.net --relay-ng 127.0.0.1:2223
  xtrunk relay --config /etc/xtrunk/xtrunk.yaml    # every flag as a key under relay:, sip:, api:
  xtrunk --version

environment:
  XTRUNK_CONFIG       the config file (default ./xtrunk.yaml)
  XTRUNK_<FLAG>       any flag of the command, e.g. XTRUNK_LOG_LEVEL=debug, XTRUNK_LISTEN_NG=...
  XTRUNK_ACCOUNT_SID, XTRUNK_AUTH_TOKEN   the main account xtrunk api creates on an empty store

Run 'xtrunk COMMAND -h' for a command's flags.
`)
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	case "-version", "--version", "-V":
		printVersion(os.Stdout)
		return
	}
	for _, c := range subcommands() {
		if c.name == os.Args[1] {
			// SIGHUP reloads (handleHUP); until that handler is in place a
			// SIGHUP must not kill the process (its default action), as one
			// forwarded by xtrunk up to a child still starting would.
			signal.Ignore(syscall.SIGHUP)
			err := c.run(os.Args[2:])
			switch {
			case errors.Is(err, flag.ErrHelp):
				return // -h: usage printed, not a failure
			case err != nil:
				fmt.Fprintf(os.Stderr, "xtrunk %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "xtrunk: unknown command %q\n", os.Args[1])
	usage(os.Stderr)
	os.Exit(2)
}
