package signalling

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MemoryLimitAuto is Config.MemoryLimit's default: a quarter of the
// machine's memory, or 90 % of the cgroup's memory.max when sip runs
// under a lower one (the process's command works it out at start).
const MemoryLimitAuto = "auto"

// MinMemoryLimit is the smallest limit taken: an idle sip holds ~40 MB,
// and under a limit close to that the collector would run without pause.
const MinMemoryLimit = 64 << 20

// ParseMemoryLimit reads a memory limit: "auto" (auto true), "off"
// (math.MaxInt64, Go's "no limit") or a size in GOMEMLIMIT's syntax, a
// whole number of bytes with an optional B, KiB, MiB, GiB or TiB suffix.
func ParseMemoryLimit(s string) (limit int64, auto bool, err error) {
	v := strings.TrimSpace(s)
	switch v {
	case "", MemoryLimitAuto:
		return 0, true, nil
	case "off":
		return math.MaxInt64, false, nil
	}
	num, unit := v, int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, unit = n, u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/unit {
		return 0, false, fmt.Errorf("%w: memory-limit %q: want auto, off or a size such as 1536MiB or 2GiB (B, KiB, MiB, GiB, TiB)", ErrConfig, s)
	}
	if n*unit < MinMemoryLimit {
		return 0, false, fmt.Errorf("%w: memory-limit %q is below 64MiB: an idle sip holds ~40 MB, and the collector would run without pause", ErrConfig, s)
	}
	return n * unit, false, nil
}
