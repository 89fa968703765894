package testbed

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestTriangleReachesRelay(t *testing.T) {
	tr := NewTriangle(t)
	for _, c := range []struct {
		name     string
		from     *NS
		dst, src netip.Addr
	}{
		{"caller to near relay address", tr.Caller, tr.RelayCallerIP, tr.CallerIP},
		{"caller to far relay address", tr.Caller, tr.RelayCalleeIP, tr.CallerIP},
		{"callee to near relay address", tr.Callee, tr.RelayCalleeIP, tr.CalleeIP},
		{"callee to far relay address", tr.Callee, tr.RelayCallerIP, tr.CalleeIP},
		{"caller to near relay address v6", tr.Caller, tr.RelayCallerIP6, tr.CallerIP6},
		{"caller to far relay address v6", tr.Caller, tr.RelayCalleeIP6, tr.CallerIP6},
		{"callee to near relay address v6", tr.Callee, tr.RelayCalleeIP6, tr.CalleeIP6},
		{"callee to far relay address v6", tr.Callee, tr.RelayCallerIP6, tr.CalleeIP6},
	} {
		t.Run(c.name, func(t *testing.T) {
			sendRecv(t, c.from, tr.Relay, netip.AddrPortFrom(c.dst, 6000), c.src)
		})
	}
}

func TestTriangleForwardsOnlyWhenAsked(t *testing.T) {
	tr := NewTriangle(t)
	dst := netip.AddrPortFrom(tr.CalleeIP, 7000)
	if err := trySendRecvN(tr.Caller, tr.Callee, dst, tr.CallerIP, 5); err == nil {
		t.Fatal("caller reached callee without forwarding on the relay")
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := tr.Relay.SetSysctl(k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	sendRecv(t, tr.Caller, tr.Callee, dst, tr.CallerIP)
	sendRecv(t, tr.Callee, tr.Caller, netip.AddrPortFrom(tr.CallerIP, 7000), tr.CalleeIP)
	sendRecv(t, tr.Caller, tr.Callee, netip.AddrPortFrom(tr.CalleeIP6, 7000), tr.CallerIP6)
}

// TestTriangleFirstDatagram checks that a lab is usable the moment it is
// built: the very first datagram, sent once, arrives (after neighbour
// discovery) within a generous bound, over IPv4 and IPv6.
func TestTriangleFirstDatagram(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v4", true: "v6"}[v6], func(t *testing.T) {
			tr := NewTriangle(t)
			dst, src := tr.RelayCallerIP, tr.CallerIP
			if v6 {
				dst, src = tr.RelayCallerIP6, tr.CallerIP6
			}
			// One try, waiting 100ms: a lab whose links are not ready yet
			// queues the datagram for a second or drops it.
			if err := trySendRecvN(tr.Caller, tr.Relay, netip.AddrPortFrom(dst, 6004), src, 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// ipLink is the part of `ip -j link show` the tests look at.
type ipLink struct {
	Ifname string          `json:"ifname"`
	MTU    int             `json:"mtu"`
	XDP    json.RawMessage `json:"xdp"`
}

func showLink(t *testing.T, e *End) ipLink {
	t.Helper()
	out, err := e.NS.Run(t.Context(), "ip", "-j", "link", "show", "dev", e.Name)
	if err != nil {
		t.Fatal(err)
	}
	var links []ipLink
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v: %s", e, err, out)
	}
	return links[0]
}

func TestTriangleXDPPass(t *testing.T) {
	tr := NewTriangle(t, WithMTU(9000))
	for _, c := range []struct {
		end  *End
		want bool
	}{
		{tr.CallerLink.A, true},
		{tr.CallerLink.B, false},
		{tr.CalleeLink.A, false},
		{tr.CalleeLink.B, true},
	} {
		l := showLink(t, c.end)
		if got := l.XDP != nil; got != c.want {
			t.Errorf("%s: XDP attached = %v, want %v (%s)", c.end, got, c.want, l.XDP)
		}
		if c.want && !strings.Contains(string(l.XDP), `"mode":1`) {
			t.Errorf("%s: XDP %s, want native mode (1)", c.end, l.XDP)
		}
		if l.MTU != 9000 {
			t.Errorf("%s: MTU %d, want 9000", c.end, l.MTU)
		}
	}
	// And the frames still get through the XDP_PASS ends.
	sendRecv(t, tr.Relay, tr.Caller, netip.AddrPortFrom(tr.CallerIP, 6001), tr.RelayCallerIP)
	sendRecv(t, tr.Relay, tr.Callee, netip.AddrPortFrom(tr.CalleeIP6, 6001), tr.RelayCalleeIP6)
}

func TestTriangleNeighbors(t *testing.T) {
	permanent := func(t *testing.T, ns *NS) string {
		out, err := ns.IP("neigh", "show", "nud", "permanent")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Run("learnt by default", func(t *testing.T) {
		tr := NewTriangle(t)
		for _, ns := range []*NS{tr.Caller, tr.Relay, tr.Callee} {
			if out := permanent(t, ns); strings.TrimSpace(out) != "" {
				t.Errorf("%s has static neighbours:\n%s", ns.Name, out)
			}
		}
	})
	t.Run("static", func(t *testing.T) {
		tr := NewTriangle(t, WithStaticNeighbors())
		for _, c := range []struct {
			ns   *NS
			want []string
		}{
			{tr.Caller, []string{"198.18.1.1 dev to-relay lladdr " + tr.CallerLink.B.MAC.String(), "2001:2:0:1::1 dev to-relay"}},
			{tr.Relay, []string{
				"198.18.1.2 dev to-caller lladdr " + tr.CallerLink.A.MAC.String(),
				"198.18.2.2 dev to-callee lladdr " + tr.CalleeLink.B.MAC.String(),
				"2001:2:0:1::2 dev to-caller", "2001:2:0:2::2 dev to-callee",
			}},
			{tr.Callee, []string{"198.18.2.1 dev to-relay lladdr " + tr.CalleeLink.A.MAC.String(), "2001:2:0:2::1 dev to-relay"}},
		} {
			out := permanent(t, c.ns)
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: no %q in\n%s", c.ns.Name, w, out)
				}
			}
		}
		sendRecv(t, tr.Caller, tr.Relay, netip.AddrPortFrom(tr.RelayCallerIP, 6002), tr.CallerIP)
	})
}

func TestTriangleOffloads(t *testing.T) {
	for _, c := range []struct {
		name           string
		opts           []Option
		wantGRO, wantC bool
	}{
		{"default", nil, false, false},
		{"gro and checksum offload", []Option{WithGRO(), WithTxChecksumOffload()}, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := NewTriangle(t, c.opts...)
			for _, e := range []*End{tr.CallerLink.A, tr.CallerLink.B, tr.CalleeLink.A, tr.CalleeLink.B} {
				gro, err := e.GRO()
				if err != nil {
					t.Fatal(err)
				}
				csum, err := e.TxChecksum()
				if err != nil {
					t.Fatal(err)
				}
				if gro != c.wantGRO || csum != c.wantC {
					t.Errorf("%s: gro=%v tx-checksum=%v, want %v %v", e, gro, csum, c.wantGRO, c.wantC)
				}
			}
		})
	}
}

func TestTriangleWithoutIPv6(t *testing.T) {
	tr := NewTriangle(t, WithoutIPv6())
	if tr.CallerIP6.IsValid() || tr.CallerLink.A.IPv6().IsValid() {
		t.Errorf("IPv6 address assigned: %v %v", tr.CallerIP6, tr.CallerLink.A.Addrs)
	}
	out, err := tr.Caller.IP("-6", "addr", "show", "scope", "global")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("global IPv6 addresses:\n%s", out)
	}
	sendRecv(t, tr.Caller, tr.Relay, netip.AddrPortFrom(tr.RelayCalleeIP, 6003), tr.CallerIP)
}
