package main

import (
	"strings"
	"testing"
)

const procRoute = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth1	00000000	0102A8C0	0003	0	0	600	00000000	0	0	0
eth0	00000000	010011AC	0003	0	0	100	00000000	0	0	0
eth2	00000000	010011AC	0002	0	0	10	00000000	0	0	0
eth0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
`

const procIPv6Route = `00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth3
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000064 00000001 00000000 00000003     eth4
`

// TestDefaultRouteDev: the lowest-metric default route that is up; an
// unreachable IPv6 default on lo is none.
func TestDefaultRouteDev(t *testing.T) {
	if got := defaultRouteDev4(strings.NewReader(procRoute)); got != "eth0" {
		t.Errorf("IPv4: %q, want eth0 (metric 100; eth2's route is down)", got)
	}
	if got := defaultRouteDev6(strings.NewReader(procIPv6Route)); got != "eth4" {
		t.Errorf("IPv6: %q, want eth4 (metric 0x64)", got)
	}
	if got := defaultRouteDev4(strings.NewReader(procRoute[:strings.Index(procRoute, "eth1")])); got != "" {
		t.Errorf("no routes: %q", got)
	}
	if got := defaultRouteDev6(strings.NewReader(strings.SplitAfter(procIPv6Route, "\n")[0])); got != "" {
		t.Errorf("unreachable default on lo: %q", got)
	}
}

// FuzzDefaultRouteDev: any /proc/net/route or ipv6_route text gives a
// device named in it or none, never a panic.
func FuzzDefaultRouteDev(f *testing.F) {
	f.Add(procRoute)
	f.Add(procIPv6Route)
	f.Add("eth0 00000000 0 zz 0 0 -1 00000000\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, dev := range []string{defaultRouteDev4(strings.NewReader(s)), defaultRouteDev6(strings.NewReader(s))} {
			if dev != "" && !strings.Contains(s, dev) {
				t.Fatalf("device %q not in the input", dev)
			}
		}
	})
}
