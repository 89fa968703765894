// Package report holds what the benchmarks' results (bench/media,
// bench/sip) share: the JSON file and the table's number formats.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// WriteJSON writes v to path, indented, with a final newline.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads a file WriteJSON wrote into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Save is WriteJSON with the errors prefixed by who (the benchmark's
// package), as the benchmarks' Results.WriteJSON report them.
func Save(who, path string, v any) error {
	if err := WriteJSON(path, v); err != nil {
		return fmt.Errorf("%s: %w", who, err)
	}
	return nil
}

// Load reads a file Save wrote as a T, the errors prefixed by who: the
// benchmarks' ReadJSON, one for each results type.
func Load[T any](who, path string) (*T, error) {
	var v T
	if err := ReadJSON(path, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	return &v, nil
}

// FirstLine is s up to its first newline.
func FirstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// Pct formats a share in percent (loss, failed calls): 0, <0.001, three
// decimals below 1, one above.
func Pct(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 0.001:
		return "<0.001"
	case v < 1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// CountOrNone formats a headline count (the most calls, the highest CPS):
// "none" for 0.
func CountOrNone(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d", n)
}
