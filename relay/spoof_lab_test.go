package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// spoofer writes whole Ethernet frames onto the attacker's link, so the
// IPv4 source is whatever the attacker claims: a host on the Internet
// can forge any source toward the relay's public NIC.
type spoofer struct {
	fd       int
	ifindex  int
	src, dst []byte // MACs: the attacker's end, the relay's end
}

func newSpoofer(t *testing.T, tri *testbed.Triangle, atk *testbed.NS) *spoofer {
	t.Helper()
	var l *testbed.Link
	for _, k := range tri.Lab.Links() {
		if k.A.NS == atk {
			l = k
		}
	}
	if l == nil {
		t.Fatal("no attacker link")
	}
	s := &spoofer{fd: -1, ifindex: l.A.Index, src: l.A.MAC, dst: l.B.MAC}
	err := atk.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		s.fd = fd
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// send writes n RTP packets of ssrc from the forged src to dst (IPv4).
func (s *spoofer) send(t *testing.T, src, dst netip.AddrPort, ssrc uint32, n int) {
	t.Helper()
	rtp := make([]byte, 12+160)
	for i := range n {
		p := rtpPacket(rtp, 0, ssrc, uint16(1000+i))
		f := make([]byte, 14+20+8+len(p))
		copy(f[0:6], s.dst)
		copy(f[6:12], s.src)
		binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
		ip := f[14:34]
		ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(p)))
		a4, b4 := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:16], a4[:])
		copy(ip[16:20], b4[:])
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[j:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		udp := f[34:42] // checksum 0: none (IPv4)
		binary.BigEndian.PutUint16(udp[0:], src.Port())
		binary.BigEndian.PutUint16(udp[2:], dst.Port())
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(p)))
		copy(f[42:], p)
		to := &unix.SockaddrLinklayer{Ifindex: s.ifindex, Halen: 6}
		copy(to.Addr[:], s.dst)
		if err := unix.Sendto(s.fd, f, 0, to); err != nil {
			t.Fatalf("spoofed frame: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A remote attacker forges the source of a party on the relay's host —
// a co-located PBX whose SDP names 127.0.0.1, the relay's own interface
// address, or another address of the relay's namespace — and sends RTP to
// the relay port that party sends to: while the leg learns (before the
// party sent anything) and after it latched. XDP and AF_XDP see the frame
// before the kernel's martian checks; without the spoof checks the relay
// latched to the forgery (socketless) or forwarded it on the fast path
// (both xdp modes): RTP injection into the caller's call. With them the
// caller gets only the PBX's media, and the forgeries are counted
// (drop_spoofed in XDP, userspace drops "spoofed").
func TestSpoofedLocalSource(t *testing.T) {
	other := netip.MustParseAddr("198.18.9.1") // on the relay's lo, no interface's
	for _, tc := range []struct {
		name string
		addr func(*testbed.Triangle) netip.Addr
	}{
		{"loopback", func(*testbed.Triangle) netip.Addr { return netip.MustParseAddr("127.0.0.1") }},
		{"relay-address", func(tri *testbed.Triangle) netip.Addr { return tri.RelayCalleeIP }},
		{"namespace-address", func(*testbed.Triangle) netip.Addr { return other }},
	} {
		for _, mode := range xdpModes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				tri := labtest.NewTriangle(t)
				atk := addAttacker(t, tri)
				if _, err := tri.Relay.IP("addr", "add", other.String()+"/32", "dev", "lo"); err != nil {
					t.Fatal(err)
				}
				sp := newSpoofer(t, tri, atk)
				lr := startLabRelay(t, tri, bleedConfig(t, tri, mode))
				c := lr.ngClient(t)
				caller, _ := labParty(t, tri, tri.Caller, tri.CallerIP, 20000, nil)
				pbx, pbxAddr := labParty(t, tri, tri.Relay, tc.addr(tri), 40000, nil)
				o := do(t, c, ng.Dict{"command": "offer", "call-id": "spoof", "from-tag": "caller", "sdp": g711SDP(tri.CallerIP, 20000),
					"direction": []any{"customer", "carrier"}})
				do(t, c, ng.Dict{"command": "answer", "call-id": "spoof", "from-tag": "caller", "to-tag": "pbx",
					"sdp": g711SDP(pbxAddr.Addr(), int(pbxAddr.Port()))})
				toPBXSide := mediaOf(t, o.Str("sdp")) // where the PBX sends
				before, _ := lr.r.Reasons()
				atCaller := newSink(caller, 0x2222)
				const m, n = 30, 40
				sp.send(t, pbxAddr, toPBXSide, bleedSSRC, m) // learning
				if err := send(pbx, toPBXSide, 0x2222, n, 50); err != nil {
					t.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond)
				sp.send(t, pbxAddr, toPBXSide, bleedSSRC, m) // latched
				time.Sleep(time.Second)

				good, bad := atCaller.Counts()
				t.Logf("caller got %d of the PBX's %d packets and %d forged", good, n, bad)
				if bad != 0 {
					t.Errorf("%d forged packets from %v reached the caller (RTP injection)", bad, pbxAddr)
				}
				if good < n-1 {
					t.Errorf("caller got %d of the PBX's %d packets", good, n)
				}
				after, _ := lr.r.Reasons()
				d := after.Sub(before)
				user := testutil.ToFloat64(lr.r.m.drops.WithLabelValues(dropSpoofed))
				t.Logf("drop_spoofed %d, drop_foreign_source %d, forward_redirect %d, userspace spoofed %v",
					d[bpf.ReasonDropSpoofed], d[bpf.ReasonDropForeignSource], d[bpf.ReasonForwardRedirect], user)
				// after latching every forgery is XDP's, whatever the mode
				if got := d[bpf.ReasonDropSpoofed] + uint64(user); got < m/2 {
					t.Errorf("%d forged packets counted as spoofed, want at least %d", got, m/2)
				}
				do(t, c, ng.Dict{"command": "delete", "call-id": "spoof"})
			})
		}
	}
}

// An SDP that points the relay at itself: its media port range or its NG
// port on one of its own addresses. Media sent there would loop through
// the relay (each packet relayed back into the call, amplified) or feed
// its control port. Offers and answers naming one, by c= or a=rtcp, are
// refused with an error NG clients class as the SDP's fault (signalling
// answers 488), and leave the call as it was; a co-located party on a
// port of its own is served as before.
func TestSDPNamingRelayItself(t *testing.T) {
	for _, mode := range labModes {
		t.Run(mode, func(t *testing.T) {
			tri := labtest.NewTriangle(t)
			cfg := labConfig(t, tri, mode)
			cfg.PortMin, cfg.PortMax = 30000, 30199
			lr := startLabRelay(t, tri, cfg)
			c := lr.ngClient(t)
			loop := netip.MustParseAddr("127.0.0.1")
			ng2223 := int(lr.r.ngPort())
			if ng2223 == 0 {
				t.Fatal("no NG port in the config")
			}
			withRTCP := func(addr netip.Addr, port int, rtcp string) string {
				return strings.Replace(g711SDP(addr, port), "a=sendrecv\r\n", "a=sendrecv\r\na=rtcp:"+rtcp+"\r\n", 1)
			}
			for _, bad := range []struct{ name, sdp string }{
				{"loopback, media port", g711SDP(loop, 30010)},
				{"interface address, media port", g711SDP(tri.RelayCalleeIP, 30198)},
				{"loopback, NG port", g711SDP(loop, ng2223)},
				{"loopback, a=rtcp media port", withRTCP(loop, 40000, "30011")},
				{"remote c=, a=rtcp at the relay", withRTCP(tri.CallerIP, 20000, fmt.Sprintf("30020 IN IP4 %s", tri.RelayCallerIP))},
			} {
				for _, cmd := range []string{"offer", "answer"} {
					req := ng.Dict{"command": cmd, "call-id": "self-" + cmd, "from-tag": "caller", "sdp": bad.sdp,
						"direction": []any{"customer", "carrier"}}
					if cmd == "answer" {
						do(t, c, ng.Dict{"command": "offer", "call-id": "self-answer", "from-tag": "caller",
							"sdp": g711SDP(tri.CallerIP, 20000), "direction": []any{"customer", "carrier"}})
						req["to-tag"] = "callee"
						delete(req, "direction")
					}
					_, err := c.Do(t.Context(), req)
					var re *ng.ReplyError
					if !errors.As(err, &re) || re.Class != ng.ClassBadSDP || !strings.Contains(re.Reason, "relay itself") {
						t.Errorf("%s %s: got %v, want a bad-SDP refusal naming the relay itself", bad.name, cmd, err)
					}
				}
				// the refused answer left the offer's call as it was: a good answer still completes it
				do(t, c, ng.Dict{"command": "answer", "call-id": "self-answer", "from-tag": "caller", "to-tag": "callee",
					"sdp": g711SDP(loop, 40000)})
				do(t, c, ng.Dict{"command": "delete", "call-id": "self-answer"})
			}
			// a co-located party on its own port: served
			do(t, c, ng.Dict{"command": "offer", "call-id": "pbx", "from-tag": "caller", "sdp": g711SDP(loop, 40000),
				"direction": []any{"customer", "carrier"}})
			do(t, c, ng.Dict{"command": "delete", "call-id": "pbx"})
		})
	}
}
