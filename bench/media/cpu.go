package media

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of /proc/stat and /proc/PID/stat times
// (100 on every Linux ABI Go supports).
const clkTck = 100

// cpuSnap is a reading of the machine's and some processes' CPU time.
type cpuSnap struct {
	at      time.Time
	softirq uint64         // ticks, all CPUs
	busy    uint64         // ticks not idle or iowait, all CPUs
	procs   map[int]uint64 // PID → utime+stime ticks (all threads)
}

// readCPU reads /proc/stat and /proc/PID/stat of pids. A process that is
// gone reads as zero.
func readCPU(pids []int) (cpuSnap, error) {
	s := cpuSnap{at: time.Now(), procs: map[int]uint64{}}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s, fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[0] != "cpu" {
			continue
		}
		// cpu user nice system idle iowait irq softirq steal ...
		for i, v := range fs[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			switch i {
			case 3, 4: // idle, iowait
			case 8, 9: // guest, guest_nice: already in user, nice
			default:
				s.busy += n
			}
			if i == 6 {
				s.softirq = n
			}
		}
		break
	}
	for _, pid := range pids {
		s.procs[pid] = procTicks(pid)
	}
	return s, nil
}

// procTicks is utime+stime of a process, all its threads, in ticks.
func procTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// comm may contain spaces and parentheses: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fs := strings.Fields(s[i+1:])
	// fs[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fs) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(fs[11], 10, 64)
	st, _ := strconv.ParseUint(fs[12], 10, 64)
	return u + st
}

// cpuUse is CPU use between two readings, in percent of one CPU.
type cpuUse struct {
	Procs, Softirq, Busy float64
}

func (b cpuSnap) since(a cpuSnap) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return cpuUse{}
	}
	pct := func(ticks uint64) float64 { return float64(ticks) / clkTck / wall * 100 }
	var procs uint64
	for pid, t := range b.procs {
		if t >= a.procs[pid] {
			procs += t - a.procs[pid]
		}
	}
	return cpuUse{Procs: pct(procs), Softirq: pct(b.softirq - a.softirq), Busy: pct(b.busy - a.busy)}
}
