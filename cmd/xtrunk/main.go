// Command xtrunk runs the parts of an xtrunk SIP trunking edge: the media
// relay, the signalling B2BUA, the control-plane API, and the benchmarks.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

type subcommand struct {
	name, help string
	run        func(args []string) error
}

func subcommands() []subcommand {
	return []subcommand{
		{"relay", "run the media relay (XDP fast path + NG control)", runRelay},
		{"sip", "run the SIP signalling: the trunk B2BUA (termination)", runSIP},
		{"api", "run the control plane: Twilio-compatible REST API on SQLite or PostgreSQL", runAPI},
		{"bench", "benchmark the media relay: xtrunk XDP vs userspace vs rtpengine vs the XDP ceiling", runBench},
		{"demo", "place a test call through the relay in a namespace lab and show what XDP forwarded", runDemo},
		{"version", "print the version", func([]string) error { fmt.Println("xtrunk", version); return nil }},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: xtrunk COMMAND [flags]\n\ncommands:")
	for _, c := range subcommands() {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.help)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'xtrunk COMMAND -h' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	for _, c := range subcommands() {
		if c.name == os.Args[1] {
			if err := c.run(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "xtrunk %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		return
	}
	fmt.Fprintf(os.Stderr, "xtrunk: unknown command %q\n", os.Args[1])
	usage()
	os.Exit(2)
}
