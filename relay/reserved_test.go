package relay

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

func TestPortSet(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"\n", ""},
		{"7", "7"},
		{"30000-39999\n", "30000-39999"},
		{"5,1-3,4", "1-5"},
		{"10-20,15-30,40", "10-30,40"},
		{" 1 - 2 , 9 ", "1-2,9"},
	} {
		s, err := parsePortSet(tc.in)
		if err != nil || s.String() != tc.want {
			t.Errorf("parsePortSet(%q) = %q, %v; want %q", tc.in, s, err, tc.want)
		}
	}
	for _, bad := range []string{"x", "5-3", "70000", "1-", "-4", "1-2-3"} {
		if _, err := parsePortSet(bad); err == nil {
			t.Errorf("parsePortSet(%q) accepted", bad)
		}
	}
	p := func(s string) portSet { v, _ := parsePortSet(s); return v }
	for _, tc := range []struct{ a, b, minus, union string }{
		{"30000-39999", "", "30000-39999", "30000-39999"},
		{"30000-39999", "30010,35000-35005,50000", "30000-30009,30011-34999,35006-39999", "30000-39999,50000"},
		{"10-20", "1-100", "", "1-100"},
		{"10-20", "5-10,20-25", "11-19", "5-25"},
	} {
		if got := p(tc.a).minus(p(tc.b)).String(); got != tc.minus {
			t.Errorf("%s minus %s = %s, want %s", tc.a, tc.b, got, tc.minus)
		}
		if got := p(tc.a).union(p(tc.b)).String(); got != tc.union {
			t.Errorf("%s union %s = %s, want %s", tc.a, tc.b, got, tc.union)
		}
	}
}

// FuzzParsePortSet: whatever the sysctl (or a pinned state) holds, the
// parser errs or returns a normal set that formats back to itself.
func FuzzParsePortSet(f *testing.F) {
	for _, s := range []string{"", "1-3,7", "30000-39999\n", "5-3", "65535", "1,,2", " 4 - 9 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := parsePortSet(in)
		if err != nil {
			return
		}
		again, err := parsePortSet(s.String())
		if err != nil || again.String() != s.String() {
			t.Fatalf("%q -> %q -> %q, %v", in, s, again, err)
		}
		for i := 1; i < len(s); i++ {
			if int(s[i].lo) <= int(s[i-1].hi)+1 {
				t.Fatalf("%q: not normal: %v", in, s)
			}
		}
	})
}

// The relay in xdp mode puts its port range into the relay namespace's
// ip_local_reserved_ports, merged with what an operator had there; a
// restart keeps it, and the clean exit (remove-on-exit) of the relay that
// adopted the pins removes exactly what was added — the operator's own
// entries, inside the range and out, stay.
// The ephemeral ports a reservation leaves: the warning's arithmetic.
func TestEphemeralFree(t *testing.T) {
	eph, ok := parseEphemeral("32768\t60999\n")
	if !ok || eph != (portRange{32768, 60999}) {
		t.Fatalf("parseEphemeral: %v %v", eph, ok)
	}
	for _, bad := range []string{"", "1", "5 4", "a b", "1 70000"} {
		if _, ok := parseEphemeral(bad); ok {
			t.Errorf("parseEphemeral(%q) accepted", bad)
		}
	}
	for _, c := range []struct {
		reserved portSet
		want     int
	}{
		{portSet{{30000, 39999}}, 60999 - 40000 + 1},
		{portSet{{16000, 65535}}, 0},
		{portSet{{16000, 32767}}, 60999 - 32768 + 1},
		{portSet{{33000, 33009}, {40000, 60000}}, 60999 - 32768 + 1 - 10 - 20001},
		{nil, 60999 - 32768 + 1},
	} {
		if got := (portSet{eph}).minus(c.reserved).size(); got != c.want {
			t.Errorf("ports of %v left by %v: %d, want %d", eph, c.reserved, got, c.want)
		}
	}
}

func TestReservedPortsLab(t *testing.T) {
	labtest.RequirePrivileged(t)
	tri := labtest.NewTriangle(t)
	sysctl := func() string {
		var s string
		err := tri.Relay.Do(func() error {
			b, err := os.ReadFile(reservedPortsPath)
			s = strings.TrimSpace(string(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	err := tri.Relay.Do(func() error { return os.WriteFile(reservedPortsPath, []byte("30010,50000\n"), 0o644) })
	if err != nil {
		t.Fatal(err)
	}
	cfg := labConfig(t, tri, DataplaneXDP)
	cfg.PortMin, cfg.PortMax = 30000, 30999
	cfg.RemoveOnExit = false // a restart first
	lr := startLabRelay(t, tri, cfg)
	if got := sysctl(); got != "30000-30999,50000" {
		t.Errorf("with the relay running: %q, want 30000-30999,50000", got)
	}
	lr.stop()
	if got := sysctl(); got != "30000-30999,50000" {
		t.Errorf("after a restart's exit: %q, want the range still reserved", got)
	}

	cfg.RemoveOnExit = true
	cfg.PortMax = 31999 // the new version has a larger range
	lr = startLabRelay(t, tri, cfg)
	if got := sysctl(); got != "30000-31999,50000" {
		t.Errorf("after the restart: %q, want 30000-31999,50000", got)
	}
	lr.stop()
	if got := sysctl(); got != "30010,50000" {
		t.Errorf("after the clean exit: %q, want the operator's 30010,50000 back", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.PinPath)); !os.IsNotExist(err) {
		t.Errorf("pins left after remove-on-exit: %v", err)
	}
}

// A media range that would take (nearly) all of the kernel's ephemeral
// ports is refused at start with a reason naming both ranges: reserving it
// would make every outgoing connection of the host fail (the benchmark
// found this with 16000-65535 against the default 32768-60999). The
// sysctl is left as it was.
func TestReservedPortsKeepEphemeral(t *testing.T) {
	labtest.RequirePrivileged(t)
	tri := labtest.NewTriangle(t)
	set := func(path, v string) {
		if err := tri.Relay.Do(func() error { return os.WriteFile(path, []byte(v+"\n"), 0o644) }); err != nil {
			t.Fatal(err)
		}
	}
	set(localPortRangePath, "30000 30999")
	set(reservedPortsPath, "")
	cfg := labConfig(t, tri, DataplaneXDP)
	cfg.PortMin, cfg.PortMax = 30000, 30999
	err := tri.Relay.Do(func() error {
		r, err := New(cfg)
		if err == nil {
			r.Close()
		}
		return err
	})
	if !errors.Is(err, ErrEphemeralPorts) || !strings.Contains(err.Error(), "30000-30999") {
		t.Fatalf("media 30000-30999 over ephemeral 30000-30999: %v, want %v naming the range", err, ErrEphemeralPorts)
	}
	var got string
	if err := tri.Relay.Do(func() error {
		b, err := os.ReadFile(reservedPortsPath)
		got = strings.TrimSpace(string(b))
		return err
	}); err != nil || got != "" {
		t.Errorf("refused start left ip_local_reserved_ports %q (%v), want it empty", got, err)
	}

	// an overlap that leaves enough is fine (the defaults: 30000-39999
	// media in 32768-60999 leaves 21,000)
	set(localPortRangePath, "30000 32999")
	lr := startLabRelay(t, tri, cfg)
	lr.stop()
}
