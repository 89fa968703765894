package media

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// TestSocketlessBeyondNoFileLimit runs the real socketless relay under
// RLIMIT_NOFILE 1024 (prlimit, as `ulimit -n 1024`) with 400 calls, more
// than the 1024/4 = 256 a relay holding four sockets per call could have:
// every call is set up and carries media both ways, the relay really ran
// with the limit (/proc/PID/limits), its descriptors did not grow with the
// calls, and its RSS per call is reported.
func TestSocketlessBeyondNoFileLimit(t *testing.T) {
	labtest.RequirePrivileged(t)
	bin := labtest.BuildXtrunk(t)

	const calls, nofile = 400, 1024
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Modes:       []string{ModeXDPSocketless},
		Calls:       []int{calls},
		Duration:    2 * time.Second,
		Warmup:      500 * time.Millisecond,
		XtrunkBin:   bin,
		RelayNoFile: nofile,
		NoStop:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modes) != 1 {
		t.Fatalf("%d modes, want 1", len(res.Modes))
	}
	m := res.Modes[0]
	if m.Error != "" || m.Stopped != "" || len(m.Steps) != 1 {
		t.Fatalf("error %q, stopped %q, %d steps", m.Error, m.Stopped, len(m.Steps))
	}
	s := m.Steps[0]
	t.Logf("relay RLIMIT_NOFILE %d:%d, %d fds before calls, %d with %d calls; RSS %d kB before, %d kB with them (%.0f B/call); sent %d delivered %d (%s)",
		m.RelayNoFile, m.RelayNoFileHard, m.RelayBaseFDs, s.RelayFDs, calls, m.RelayBaseRSSKB, s.RelayRSSKB, s.RelayRSSPerCallB, s.Sent, s.Delivered, s.Status)
	if m.RelayNoFile != nofile || m.RelayNoFileHard != nofile {
		t.Errorf("relay ran with RLIMIT_NOFILE %d:%d, want %d:%d", m.RelayNoFile, m.RelayNoFileHard, nofile, nofile)
	}
	if m.RelayBaseFDs == 0 || s.RelayFDs == 0 || s.RelayFDs > m.RelayBaseFDs+16 {
		t.Errorf("relay descriptors %d before calls, %d with %d calls: want no descriptor per call", m.RelayBaseFDs, s.RelayFDs, calls)
	}
	if s.Calls != calls || s.Sent == 0 || s.Delivered == 0 || s.Delivered > s.Sent {
		t.Errorf("%d calls: sent %d, delivered %d", s.Calls, s.Sent, s.Delivered)
	}
	if s.SilentCalls != 0 || s.PerCallSum != s.Delivered || s.Bad != 0 {
		t.Errorf("%d call directions silent (want every call carrying media both ways), per-call sum %d of %d delivered, %d bad",
			s.SilentCalls, s.PerCallSum, s.Delivered, s.Bad)
	}
	if s.XDPReasons["forward_redirect"] == 0 {
		t.Errorf("nothing forwarded by the XDP program: %v", s.XDPReasons)
	}
	if m.RelayBaseRSSKB == 0 || s.RelayRSSKB == 0 {
		t.Errorf("relay RSS not read: %d kB before, %d kB with calls", m.RelayBaseRSSKB, s.RelayRSSKB)
	}
	if res.Summary.SocketlessCallsSetUp != calls || res.Summary.SocketlessNoFile != nofile {
		t.Errorf("summary: %d calls set up under %d, want %d under %d",
			res.Summary.SocketlessCallsSetUp, res.Summary.SocketlessNoFile, calls, nofile)
	}
}

// TestRelayCallLimit: the descriptor limit caps the socket relays' calls
// (four sockets each) and not the socketless relay's or the ceiling's.
func TestRelayCallLimit(t *testing.T) {
	cfg := &Config{RelayNoFile: 1024}
	for mode, want := range map[string]int{
		ModeXDP: (1024 - fdReserve) / socketsPerCall, ModeUserspace: (1024 - fdReserve) / socketsPerCall,
		ModeRTPEngine: (1024 - fdReserve) / socketsPerCall, ModeXDPSocketless: maxCalls, ModeCeiling: maxCalls,
	} {
		if got, limit := relayCallLimit(cfg, mode, 1<<20); got != want || limit != 1024 {
			t.Errorf("%s under 1024: %d calls (limit %d), want %d", mode, got, limit, want)
		}
	}
	if got, limit := relayCallLimit(&Config{}, ModeXDP, 20000); got != (20000-fdReserve)/socketsPerCall || limit != 20000 {
		t.Errorf("xdp under the benchmark's 20000: %d calls (limit %d)", got, limit)
	}
}

// TestProcReaders reads this process's own limit, RSS and descriptors the
// way the benchmark reads the relay's.
func TestProcReaders(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	soft, hard, err := procNoFile(os.Getpid())
	if err != nil || soft != lim.Cur || hard != lim.Max {
		t.Errorf("procNoFile: %d:%d, %v; getrlimit says %d:%d", soft, hard, err, lim.Cur, lim.Max)
	}
	if kb, err := relayRSSKB([]int{os.Getpid()}); err != nil || kb == 0 {
		t.Errorf("VmRSS: %d kB, %v", kb, err)
	}
	if n, err := procFDs(os.Getpid()); err != nil || n < 3 {
		t.Errorf("fds: %d, %v", n, err)
	}
	if _, err := procStatusKB(os.Getpid(), "NoSuchKey"); err == nil {
		t.Error("a missing /proc/PID/status key read without error")
	}
	if _, _, err := procNoFile(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// TestParseNoFile reads the row of a real /proc/PID/limits layout.
func TestParseNoFile(t *testing.T) {
	const limits = "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max processes             95000                95000                processes \n" +
		"Max open files            1024                 1024                 files     \n"
	if soft, hard, ok := parseNoFile(limits); !ok || soft != 1024 || hard != 1024 {
		t.Errorf("parseNoFile: %d:%d %v", soft, hard, ok)
	}
	if soft, hard, ok := parseNoFile("Max open files            unlimited            unlimited            files\n"); !ok || soft != ^uint64(0) || hard != ^uint64(0) {
		t.Errorf("unlimited: %d:%d %v", soft, hard, ok)
	}
	for _, bad := range []string{"", "Max open files\n", "Max open files  x  1024 files\n", "Max processes 1 1 processes\n"} {
		if _, _, ok := parseNoFile(bad); ok {
			t.Errorf("parseNoFile(%q) ok", bad)
		}
	}
}

// TestParseCounters picks the relay's families out of an exposition and
// nothing else.
func TestParseCounters(t *testing.T) {
	body := "# HELP xtrunk_relay_xsk_drops_total Frames.\n# TYPE xtrunk_relay_xsk_drops_total counter\n" +
		"xtrunk_relay_xsk_drops_total{reason=\"frame\"} 3\n" +
		"xtrunk_relay_xsk_rx_packets_total 1.5e+06\n" +
		"xtrunk_relay_xdp_packets_total{reason=\"forward_redirect\"} 9\n" +
		"xtrunk_relay_userspace_drops_total{reason=\"no_destination\"} NaN\n" +
		"garbage\n"
	got := parseCounters(body, relayCounterPrefixes)
	want := map[string]uint64{`xtrunk_relay_xsk_drops_total{reason="frame"}`: 3, "xtrunk_relay_xsk_rx_packets_total": 1500000}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

// FuzzParseCounters: any exposition text parses without panicking, and
// only the named families come out.
func FuzzParseCounters(f *testing.F) {
	f.Add("xtrunk_relay_xsk_rx_packets_total 12\n")
	f.Add("xtrunk_relay_xsk_drops_total{reason=\"a b\"} 1e3\n# x\n\n")
	f.Add("{ } \n")
	f.Fuzz(func(t *testing.T, body string) {
		for k := range parseCounters(body, relayCounterPrefixes) {
			name, _, _ := strings.Cut(k, "{")
			if !slices.Contains(relayCounterPrefixes, name) {
				t.Errorf("family %q not asked for", name)
			}
		}
	})
}

// FuzzParseNoFile: any limits text parses without panicking.
func FuzzParseNoFile(f *testing.F) {
	f.Add("Max open files            1024                 1024                 files\n")
	f.Add("Max open files unlimited\n")
	f.Fuzz(func(t *testing.T, s string) {
		if soft, hard, ok := parseNoFile(s); !ok && (soft != 0 || hard != 0) {
			t.Errorf("not ok but %d:%d", soft, hard)
		}
	})
}
