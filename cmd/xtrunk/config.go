package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// sections are xtrunk.yaml's top-level keys, one per process (up: is
// xtrunk up's own, the supervisor of the other three). A file may
// hold every section: each process reads its own and checks only the
// top-level keys of the others.
var sections = []string{"relay", "sip", "api", "up"}

// loadFile applies section c.name of the YAML file at path to c's flags
// and, for keys that are no flag (yaml-only tuning such as the relay's
// timeout-linger), to cfg's fields by their yaml tags. Flags named in
// given (set on the command line or in the environment) keep their
// value: flags win over the environment, which wins over the file. A
// missing file is an error only when explicit.
//
// Keys are the flag names. For configs written before that rule, a key
// in snake_case (listen_udp) or the plural of a repeatable flag
// (interfaces) is accepted with a deprecation note in c.notes. Errors
// name the file and line; every bad key of the section is reported (the
// errors joined), not only the first.
func (c *command) loadFile(path string, explicit bool, given map[string]bool, cfg any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	sec, err := findSection(path, b, c.name)
	if err != nil || sec == nil {
		return err
	}
	var rest []*yaml.Node // key, value pairs for cfg's yaml-only fields
	var errs []error
	seen := map[string]int{}
	for i := 0; i+1 < len(sec.Content); i += 2 {
		k, v := sec.Content[i], sec.Content[i+1]
		at := fmt.Sprintf("%s:%d: %s: %s", path, k.Line, c.name, k.Value)
		name, note := c.flagName(k.Value)
		if name == "" {
			if hasYAMLField(cfg, k.Value) {
				rest = append(rest, k, v)
				continue
			}
			errs = append(errs, fmt.Errorf("%w: %s: unknown key (the keys are the flags of 'xtrunk %s', see xtrunk %s -h)", ErrUnknownKey, at, c.name, c.name))
			continue
		}
		if name == "config" {
			errs = append(errs, fmt.Errorf("%w: %s: the config file cannot name another one", ErrConfig, at))
			continue
		}
		if line, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("%w: %s: already set on line %d", ErrConfig, at, line))
			continue
		}
		seen[name] = k.Line
		if note != "" {
			c.notes = append(c.notes, fmt.Sprintf("%s:%d: %s: %q is deprecated, use %q (%s)", path, k.Line, c.name, k.Value, name, note))
		}
		if given[name] {
			continue
		}
		if err := c.setFromYAML(name, v); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s:%d: %s: %s: %w", ErrConfig, path, v.Line, c.name, k.Value, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(rest) > 0 {
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: rest}
		if err := m.Decode(cfg); err != nil {
			return fmt.Errorf("%w: %s: %s: %w", ErrConfig, path, c.name, err)
		}
	}
	return nil
}

// findSection parses the file and returns the mapping of section name,
// or nil when the file does not have it. Unknown sections are errors.
func findSection(path string, b []byte, name string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		// "yaml: line N: msg" as "path:N: msg", like every other error
		if rest, ok := strings.CutPrefix(err.Error(), "yaml: line "); ok {
			if n, msg, ok := strings.Cut(rest, ": "); ok {
				return nil, fmt.Errorf("%w: %s:%s: %s", ErrConfig, path, n, msg)
			}
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // an empty file
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: %s:%d: want sections (relay:, sip:, api:, up:)", ErrConfig, path, top.Line)
	}
	var sec *yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if !slices.Contains(sections, k.Value) {
			return nil, fmt.Errorf("%w: %s:%d: unknown section %q (want one of %s)", ErrUnknownKey, path, k.Line, k.Value, strings.Join(sections, ", "))
		}
		if line, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("%w: %s:%d: section %s: already on line %d", ErrConfig, path, k.Line, k.Value, line)
		}
		seen[k.Value] = k.Line
		if k.Value != name {
			continue
		}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			return nil, nil
		case v.Kind != yaml.MappingNode:
			return nil, fmt.Errorf("%w: %s:%d: %s: want a mapping of flag names to values", ErrConfig, path, v.Line, name)
		}
		sec = v
	}
	return sec, nil
}

// flagName maps a YAML key to c's flag: the flag of that name, or for
// older configs the flag the snake_case spelling or the plural stands for
// (with a note saying so). "" if there is none.
func (c *command) flagName(key string) (name, note string) {
	if c.fs.Lookup(key) != nil {
		return key, ""
	}
	if k := strings.ReplaceAll(key, "_", "-"); k != key && c.fs.Lookup(k) != nil {
		return k, "keys are the flag names"
	}
	k := strings.ReplaceAll(key, "_", "-")
	if s, ok := strings.CutSuffix(k, "s"); ok {
		if f := c.fs.Lookup(s); f != nil {
			if _, list := f.Value.(repeatable); list {
				return s, "a repeatable flag's key is its flag name; give a list"
			}
		}
	}
	return "", ""
}

// setFromYAML sets flag name from a YAML value: a scalar is one value, a
// sequence sets a repeatable flag once per item, and an empty value
// clears a repeatable flag.
func (c *command) setFromYAML(name string, v *yaml.Node) error {
	f := c.fs.Lookup(name)
	list, isList := f.Value.(repeatable)
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			if isList {
				list.clear()
				return nil
			}
			return f.Value.Set("")
		}
		if err := f.Value.Set(v.Value); err != nil {
			return fmt.Errorf("invalid value %q: %w", v.Value, err)
		}
		return nil
	case yaml.SequenceNode:
		if !isList {
			return fmt.Errorf("takes one value, not a list")
		}
		list.clear()
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a list of values", it.Line)
			}
			if err := f.Value.Set(it.Value); err != nil {
				return fmt.Errorf("line %d: invalid value %q: %w", it.Line, it.Value, err)
			}
		}
		return nil
	}
	return fmt.Errorf("want a value or a list of values")
}

// hasYAMLField says whether cfg (a pointer to a struct) has a field
// tagged yaml:"key".
func hasYAMLField(cfg any, key string) bool {
	if cfg == nil {
		return false
	}
	t := reflect.TypeOf(cfg)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == key && tag != "-" {
			return true
		}
	}
	return false
}

// envName is the environment variable standing for a flag.
func envName(flagName string) string {
	return "XTRUNK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag not in given from XTRUNK_<FLAG> and adds it
// to given, so env overrides the file and flags override env.
func applyEnv(fs *flag.FlagSet, given map[string]bool) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		key := envName(f.Name)
		if v, ok := os.LookupEnv(key); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: %w", ErrConfig, key, err))
			}
			given[f.Name] = true
		}
	})
	return errors.Join(errs...)
}

// repeatable is a flag that may be given several times (a list).
type repeatable interface {
	flag.Value
	clear()
}

// listFlag is a repeatable string flag. The first value given replaces
// the default (or what a lower-precedence source said); later ones add.
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
		*l.vals = nil
		l.reset = true
	}
	*l.vals = append(*l.vals, v)
	return nil
}

func (l *listFlag) clear() { *l.vals, l.reset = nil, true }
