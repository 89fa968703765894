package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// fileConfig is xtrunk.yaml: one section per process. Unknown keys are
// errors.
type fileConfig struct {
	Relay yaml.Node `yaml:"relay"`
	SIP   yaml.Node `yaml:"sip"`
	API   yaml.Node `yaml:"api"`
}

// loadSection reads section name of the YAML file at path into out
// (strictly). A missing default file is not an error.
func loadSection(path string, explicit bool, name string, out any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return nil
		}
		return err
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	var node *yaml.Node
	switch name {
	case "relay":
		node = &fc.Relay
	case "sip":
		node = &fc.SIP
	case "api":
		node = &fc.API
	}
	if node.Kind == 0 {
		return nil
	}
	// yaml.Node.Decode has no KnownFields; re-encode and decode strictly
	sub, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	d := yaml.NewDecoder(bytes.NewReader(sub))
	d.KnownFields(true)
	if err := d.Decode(out); err != nil {
		return fmt.Errorf("%s: %s: %w", path, name, err)
	}
	return nil
}

// applyEnv sets every flag not given on the command line from
// XTRUNK_<FLAG> (dashes as underscores), so env overrides the file and
// flags override env.
func applyEnv(fs *flag.FlagSet, set map[string]bool) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		key := "XTRUNK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
		}
	})
	return errors.Join(errs...)
}

// listFlag is a repeatable string flag.
type listFlag struct {
	vals  *[]string
	reset bool
}

func (l *listFlag) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.reset {
		*l.vals = nil // the first flag replaces what the file said
		l.reset = true
	}
	*l.vals = append(*l.vals, v)
	return nil
}

// configPath is the --config flag's value, or XTRUNK_CONFIG, or
// ./xtrunk.yaml; explicit says whether it was asked for.
func configPath(args []string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--config=", "-config="} {
			if strings.HasPrefix(a, p) {
				return strings.TrimPrefix(a, p), true
			}
		}
		if (a == "--config" || a == "-config") && i+1 < len(args) {
			return args[i+1], true
		}
	}
	if v := os.Getenv("XTRUNK_CONFIG"); v != "" {
		return v, true
	}
	return "xtrunk.yaml", false
}

// parseFlags parses args, then fills every flag not given from its
// XTRUNK_* environment variable (flags win over env, env over the file).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return applyEnv(fs, set)
}

// newLogger is a process's zerolog JSON logger on stderr.
func newLogger(level, proc string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("--log-level: %w", err)
	}
	return zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Str("proc", proc).Logger(), nil
}
