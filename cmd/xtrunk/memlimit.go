package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/signalling"
)

// setMemoryLimit sets the process's soft memory limit from spec (a
// validated signalling.Config.MemoryLimit), unless GOMEMLIMIT is in the
// environment (it wins), and logs the limit and GC target in force. A
// spec that does not parse changes nothing: sip's validation refuses it.
func setMemoryLimit(log zerolog.Logger, spec string) {
	from := "memory-limit"
	if os.Getenv("GOMEMLIMIT") != "" {
		from = "GOMEMLIMIT"
	} else if limit, auto, err := signalling.ParseMemoryLimit(spec); err != nil {
		return // the configuration's validation refuses it, with the reason
	} else {
		if auto {
			limit, from = autoMemoryLimit(memTotal(), cgroupMemoryMax())
		}
		debug.SetMemoryLimit(limit)
	}
	in := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(in)
	pct, limit := int(in[0].Value.Uint64()), int64(in[1].Value.Uint64())
	ev := log.Info().Int("gc_percent", pct).Str("memory_limit_from", from)
	if limit == math.MaxInt64 {
		ev = ev.Str("memory_limit", "off")
	} else {
		ev = ev.Int64("memory_limit_bytes", limit)
	}
	ev.Msg("Go memory limit")
}

// autoMemoryLimit is "auto": a quarter of the machine's memory (an edge
// also runs the relay, the API and a database), or 90 % of the cgroup's
// memory.max when that is lower (systemd's MemoryMax=: the operator
// sized the service, and the soft limit keeps it off the OOM killer),
// never under signalling.MinMemoryLimit. Neither known: no limit.
func autoMemoryLimit(total, cgroupMax int64) (int64, string) {
	limit, from := int64(math.MaxInt64), "auto: memory unknown"
	if total > 0 {
		limit, from = total/4, "auto: a quarter of MemTotal"
	}
	if cgroupMax > 0 && cgroupMax/10*9 < limit {
		limit, from = cgroupMax/10*9, "auto: 90 % of the cgroup's memory.max"
	}
	return max(limit, signalling.MinMemoryLimit), from
}

// memTotal is the machine's memory in bytes (0: unknown).
func memTotal() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// cgroupMemoryMax is the lowest memory.max (bytes) on the process's
// cgroup v2 path, from its own group up to the root (0: none, or not
// cgroup v2).
func cgroupMemoryMax() int64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	return lowestMemoryMax("/sys/fs/cgroup", b, os.ReadFile)
}

// lowestMemoryMax reads memory.max under root for the "0::<path>" line of
// a /proc/self/cgroup and every ancestor of path.
func lowestMemoryMax(root string, self []byte, read func(string) ([]byte, error)) int64 {
	var path string
	for line := range strings.SplitSeq(string(self), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
			break
		}
	}
	if !strings.HasPrefix(path, "/") {
		return 0
	}
	var lowest int64
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if b, err := read(filepath.Join(root, p, "memory.max")); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (lowest == 0 || n < lowest) {
				lowest = n // "max" is no limit
			}
		}
		if p == "/" {
			return lowest
		}
	}
}
