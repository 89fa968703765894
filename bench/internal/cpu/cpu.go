// Package cpu reads CPU time from /proc for the benchmarks: the machine's
// busy and softirq time, and utime+stime of processes or process groups,
// as percent of one CPU between two readings.
package cpu

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClkTck is USER_HZ, the unit of /proc/stat and /proc/PID/stat times
// (100 on every Linux ABI Go supports).
const ClkTck = 100

// Snap is a reading of the machine's CPU time and of some processes'.
type Snap struct {
	at      time.Time
	busy    uint64         // ticks not idle or iowait, all CPUs
	softirq uint64         // ticks, all CPUs
	ticks   map[int]uint64 // PID or process group → utime+stime ticks
}

// ReadProcs reads /proc/stat and /proc/PID/stat of pids, each process
// with all its threads. A process that is gone reads as zero.
func ReadProcs(pids []int) (Snap, error) {
	s, err := readStat(len(pids))
	for _, pid := range pids {
		_, s.ticks[pid], _ = procStat(pid)
	}
	return s, err
}

// ReadGroups reads /proc/stat and every process's stat, summing
// utime+stime per process group in pgids: a process started in a group
// of its own (testbed.Process) counts with all its threads and all the
// workers it forked.
func ReadGroups(pgids []int) (Snap, error) {
	s, err := readStat(len(pgids))
	if len(pgids) == 0 {
		return s, err
	}
	want := make(map[int]bool, len(pgids))
	for _, g := range pgids {
		want[g] = true
		s.ticks[g] = 0
	}
	ents, rerr := os.ReadDir("/proc")
	if rerr != nil {
		return s, err
	}
	for _, e := range ents {
		pid, perr := strconv.Atoi(e.Name())
		if perr != nil {
			continue
		}
		if pgrp, ticks, ok := procStat(pid); ok && want[pgrp] {
			s.ticks[pgrp] += ticks
		}
	}
	return s, err
}

// readStat reads the machine's times from /proc/stat. The snapshot it
// returns is usable (with zero machine times) even with an error.
func readStat(n int) (Snap, error) {
	s := Snap{at: time.Now(), ticks: make(map[int]uint64, n)}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s, fmt.Errorf("cpu: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || fs[0] != "cpu" {
			continue
		}
		// cpu user nice system idle iowait irq softirq steal guest guest_nice
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
	return s, nil
}

// procStat reads a process's group and utime+stime (all threads).
func procStat(pid int) (pgrp int, ticks uint64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	fs := strings.Fields(s[i+1:])
	// fs[0] is field 3 (state): pgrp is field 5, utime and stime 14 and 15.
	if len(fs) < 13 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(fs[2])
	if err != nil {
		return 0, 0, false
	}
	u, _ := strconv.ParseUint(fs[11], 10, 64)
	st, _ := strconv.ParseUint(fs[12], 10, 64)
	return pgrp, u + st, true
}

// Pct is the CPU use of ids (PIDs or process groups, as read) between a
// and b, in percent of one CPU. A process that exited between the
// readings takes its time with it.
func (b Snap) Pct(a Snap, ids ...int) float64 {
	var ticks uint64
	for _, id := range ids {
		if b.ticks[id] > a.ticks[id] {
			ticks += b.ticks[id] - a.ticks[id]
		}
	}
	return pct(a, b, ticks)
}

// BusyPct is the machine's non-idle time between a and b, in percent of
// one CPU.
func (b Snap) BusyPct(a Snap) float64 {
	if b.busy < a.busy {
		return 0
	}
	return pct(a, b, b.busy-a.busy)
}

// SoftirqPct is softirq time on all CPUs between a and b, in percent of
// one CPU.
func (b Snap) SoftirqPct(a Snap) float64 {
	if b.softirq < a.softirq {
		return 0
	}
	return pct(a, b, b.softirq-a.softirq)
}

func pct(a, b Snap, ticks uint64) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0
	}
	return float64(ticks) / ClkTck / wall * 100
}
