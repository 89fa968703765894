package sip

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of /proc/stat and /proc/PID/stat times.
const clkTck = 100

// cpuSnap is a reading of the machine's busy time and the CPU time of
// some process groups.
type cpuSnap struct {
	at     time.Time
	busy   uint64         // ticks not idle or iowait, all CPUs
	groups map[int]uint64 // process group → utime+stime ticks of its live members
}

// readCPU reads /proc/stat and every process's stat, summing utime+stime
// per process group in pgids. The edges are started in process groups of
// their own (testbed.Process), so a group is one edge process with all
// its threads (xtrunk, rtpengine) or all of its forked workers (Kamailio).
func readCPU(pgids []int) cpuSnap {
	s := cpuSnap{at: time.Now(), groups: make(map[int]uint64, len(pgids))}
	want := make(map[int]bool, len(pgids))
	for _, g := range pgids {
		want[g] = true
		s.groups[g] = 0
	}
	if f, err := os.Open("/proc/stat"); err == nil {
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
				case 3, 4, 8, 9: // idle, iowait; guest time is already in user
				default:
					s.busy += n
				}
			}
			break
		}
		f.Close()
	}
	if len(want) == 0 {
		return s
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pgrp, ticks, ok := procStat(pid)
		if ok && want[pgrp] {
			s.groups[pgrp] += ticks
		}
	}
	return s
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

// pct is CPU use of the groups in pgids between a and b, in percent of
// one CPU. A member that exited between the readings takes its time with
// it (Kamailio's and rtpengine's workers live as long as they do).
func (b cpuSnap) pct(a cpuSnap, pgids ...int) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0
	}
	var ticks uint64
	for _, g := range pgids {
		if b.groups[g] > a.groups[g] {
			ticks += b.groups[g] - a.groups[g]
		}
	}
	return float64(ticks) / clkTck / wall * 100
}

// busyPct is the machine's non-idle time between a and b, in percent of
// one CPU.
func (b cpuSnap) busyPct(a cpuSnap) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 || b.busy < a.busy {
		return 0
	}
	return float64(b.busy-a.busy) / clkTck / wall * 100
}
