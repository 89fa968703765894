package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// command is the setup the long-running subcommands (relay, sip, api)
// share: flags with --config, --log-level and --log-format, the YAML file
// and XTRUNK_* environment behind them, -h with examples, the logger, and
// SIGHUP.
type command struct {
	name, summary, examples string
	env                     []string // extra environment variables for -h: "NAME  meaning"
	fs                      *flag.FlagSet

	config    string
	logLevel  string
	logFormat string

	path     string          // the config file read
	explicit bool            // the file was asked for (--config or XTRUNK_CONFIG)
	given    map[string]bool // flags set on the command line or in the environment
	notes    []string        // deprecations found in the file, logged once the logger is up
	cfg      any             // the config struct, for yaml-only keys
}

// newCommand is a subcommand's flag set with the shared flags.
func newCommand(name, summary, examples string) *command {
	c := &command{name: name, summary: summary, examples: examples, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.config, "config", "xtrunk.yaml", "YAML config file; this command reads its section "+name+": (keys are the flag names)")
	c.fs.StringVar(&c.logLevel, "log-level", "info", "trace, debug, info, warn or error (SIGHUP re-reads it from the config file)")
	c.fs.StringVar(&c.logFormat, "log-format", logFormatAuto, "json, console, or auto: console when stderr is a terminal, else json (colours only on a terminal)")
	c.fs.Usage = func() { c.usage(c.fs.Output()) }
	return c
}

// parse reads args, then the environment, then the config file: flags
// win over XTRUNK_* variables, which win over the file. cfg is the config
// struct the flags are bound to; keys of the file that are no flag go to
// its yaml-tagged fields. -h returns flag.ErrHelp after printing usage.
func (c *command) parse(args []string, cfg any) error {
	c.fs.SetOutput(io.Discard) // errors are returned, usage printed once below
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(os.Stdout)
			return err
		}
		return fmt.Errorf("%w (see xtrunk %s -h)", err, c.name)
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (see xtrunk %s -h)", ErrConfig, c.fs.Arg(0), c.name)
	}
	c.given = map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	if err := applyEnv(c.fs, c.given); err != nil {
		return err
	}
	// An empty --config or XTRUNK_CONFIG= means no file at all.
	c.path, c.explicit, c.cfg = c.config, c.given["config"] && c.config != "", cfg
	return c.loadFile(c.path, c.explicit, c.given, cfg)
}

// usage prints the command's help: flags with their XTRUNK_* variable,
// the examples, and how the file and environment work.
func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: xtrunk %s [flags]\n\n%s\n\nflags (each also XTRUNK_<FLAG> in the environment, and key <flag> under %s: in the config file):\n", c.name, c.summary, c.name)
	c.fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s %s\n        %s%s  [%s]\n", f.Name, name, help, def, envName(f.Name))
	})
	if c.examples != "" {
		fmt.Fprintf(w, "\nexamples:\n%s\n", indent(c.examples))
	}
	fmt.Fprintf(w, "\nenvironment:\n  XTRUNK_CONFIG  the config file (like --config)\n  XTRUNK_<FLAG>  any flag, upper case with underscores (XTRUNK_LOG_LEVEL=debug)\n")
	for _, e := range c.env {
		fmt.Fprintf(w, "  %s\n", e)
	}
	fmt.Fprintf(w, "\nPrecedence: flags, then the environment, then %s: in the config file, then the defaults.\n", c.name)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}
