package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Log formats (--log-format).
const (
	logFormatAuto    = "auto"
	logFormatJSON    = "json"
	logFormatConsole = "console"
)

// timeFormat is RFC 3339 with milliseconds: whole seconds cannot order
// the lines of one SIP transaction.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// logger is the process's logger: zerolog on stderr, JSON or console,
// millisecond timestamps, the level from --log-level (process-wide, so
// SIGHUP can change it), and slog — which sipgo logs through — routed
// into it. The notes the config file left (deprecated keys) are logged
// as warnings.
func (c *command) logger() (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(c.logLevel)
	if err != nil || c.logLevel == "" {
		return zerolog.Logger{}, fmt.Errorf("%w: --log-level %q: want trace, debug, info, warn or error", ErrConfig, c.logLevel)
	}
	w, err := logWriter(os.Stderr, c.logFormat)
	if err != nil {
		return zerolog.Logger{}, err
	}
	zerolog.TimeFieldFormat = timeFormat
	zerolog.SetGlobalLevel(lvl)
	log := zerolog.New(w).With().Timestamp().Str("proc", c.name).Logger()
	slog.SetDefault(slog.New(&slogHandler{log: log.With().Str("via", "slog").Logger()}))
	for _, n := range c.notes {
		log.Warn().Msg(n)
	}
	return log, nil
}

// logWriter is stderr in the chosen format. Console output is coloured
// only on a terminal.
func logWriter(f *os.File, format string) (io.Writer, error) {
	tty := isTerminal(f)
	switch format {
	case logFormatJSON:
		return f, nil
	case logFormatConsole:
	case logFormatAuto, "":
		if !tty {
			return f, nil
		}
	default:
		return nil, fmt.Errorf("%w: --log-format %q: want json or console", ErrConfig, format)
	}
	return zerolog.ConsoleWriter{Out: f, NoColor: !tty, TimeFormat: "15:04:05.000"}, nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// slogHandler is an slog.Handler writing into a zerolog logger, so that
// libraries logging through slog (sipgo) end up in the same JSON stream
// with the same level.
type slogHandler struct {
	log    zerolog.Logger
	prefix string // open groups, "a.b."
}

func zerologLevel(l slog.Level) zerolog.Level {
	switch {
	case l < slog.LevelDebug:
		return zerolog.TraceLevel
	case l < slog.LevelInfo:
		return zerolog.DebugLevel
	case l < slog.LevelWarn:
		return zerolog.InfoLevel
	case l < slog.LevelError:
		return zerolog.WarnLevel
	}
	return zerolog.ErrorLevel
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return zerologLevel(l) >= zerolog.GlobalLevel() && zerologLevel(l) >= h.log.GetLevel()
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	kv := make([]any, 0, 2*r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		kv = attrFields(kv, h.prefix, a)
		return true
	})
	h.log.WithLevel(zerologLevel(r.Level)).Fields(kv).Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var kv []any
	for _, a := range attrs {
		kv = attrFields(kv, h.prefix, a)
	}
	return &slogHandler{log: h.log.With().Fields(kv).Logger(), prefix: h.prefix}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogHandler{log: h.log, prefix: h.prefix + name + "."}
}

// attrFields appends one slog attribute to kv as key/value pairs for
// zerolog's Fields (groups flattened to dotted keys; zerolog renders
// durations, times and errors as its own Dur, Time and Err do).
func attrFields(kv []any, prefix string, a slog.Attr) []any {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, g := range v.Group() {
			kv = attrFields(kv, p, g)
		}
		return kv
	}
	if a.Key == "" {
		return kv
	}
	return append(kv, prefix+a.Key, v.Any())
}

// timeSince is a duration rounded for log lines.
func timeSince(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
