package signalling

import (
	"errors"
	"math"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		auto bool
		bad  bool
	}{
		{in: "", auto: true},
		{in: "auto", auto: true},
		{in: "off", want: math.MaxInt64},
		{in: "2GiB", want: 2 << 30},
		{in: "1536MiB", want: 1536 << 20},
		{in: "67108864", want: 64 << 20},
		{in: "65536KiB", want: 64 << 20},
		{in: "1TiB", want: 1 << 40},
		{in: "100B", bad: true},                    // under the floor
		{in: "63MiB", bad: true},                   // under the floor
		{in: "1.5GiB", bad: true},                  // GOMEMLIMIT takes whole numbers
		{in: "2GB", bad: true},                     // not one of GOMEMLIMIT's units
		{in: "-1GiB", bad: true},                   //
		{in: "9999999999TiB", bad: true},           // overflows
		{in: "lots", bad: true},                    //
		{in: "99999999999999999999999", bad: true}, //
	} {
		got, auto, err := ParseMemoryLimit(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%q: %d, %v; want a config error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || auto != tc.auto {
			t.Errorf("%q: %d auto %v err %v; want %d auto %v", tc.in, got, auto, err, tc.want, tc.auto)
		}
	}
	cfg := DefaultConfig()
	cfg.MemoryLimit = "32MiB"
	if err := cfg.Validate(); err == nil {
		t.Error("a config with memory-limit 32MiB validates")
	}
}

// FuzzParseMemoryLimit: any text parses to a limit at or above the floor
// (or auto) or is a config error; nothing panics.
func FuzzParseMemoryLimit(f *testing.F) {
	for _, s := range []string{"auto", "off", "2GiB", "1.5GiB", "64MiB", "9223372036854775807", "9999999999TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, auto, err := ParseMemoryLimit(s)
		switch {
		case err != nil:
			if !errors.Is(err, ErrConfig) || n != 0 || auto {
				t.Fatalf("%q: %d %v %v", s, n, auto, err)
			}
		case auto:
			if n != 0 {
				t.Fatalf("%q: auto with %d", s, n)
			}
		case n < MinMemoryLimit:
			t.Fatalf("%q: %d under the floor", s, n)
		}
	})
}
