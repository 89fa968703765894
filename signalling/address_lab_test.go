package signalling

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/store"
)

// TestWildcardAddressLab is issue 10's addressing lab: `xtrunk sip` as a
// process in the edge (relay) namespace on the default --listen-udp
// 0.0.0.0:5060 with no --advertise, the relay as a process (xtrunk's with
// XDP, and Debian's rtpengine), the API on the same SQLite store.
//
//   - The PBX (SIPp UAC) sends its INVITE to the edge's carrier-side
//     address, 198.18.2.1 (its route to 198.18.2.0/24 goes through the
//     edge), and its ACK and BYE where the 200's Contact says: the call
//     completes only if that Contact is the edge's address facing the PBX,
//     198.18.1.1, not the address on SIPp's command line nor 127.0.0.1.
//   - The carrier (SIPp UAS) checks that the INVITE's Via (port 5060),
//     Contact and From name the edge by 198.18.2.1.
//   - Packet sockets on the PBX's and the carrier's veth check the wire:
//     everything the edge sends leaves from port 5060 and names no
//     0.0.0.0 or loopback address; the PBX's ACK and BYE went to the
//     Contact.
//   - The relay interfaces are named by address (--relay-interface) and
//     the role names are swapped: only choosing the relay interface by the
//     signalling's address puts each SDP on the right side.
//   - The CDR is written, with media both ways.
func TestWildcardAddressLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) { testWildcardAddress(t, kind) })
	}
}

func testWildcardAddress(t *testing.T, kind string) {
	l := newTrunkLab(t, kind)
	tri := l.tri
	carrier := netip.AddrPortFrom(tri.CalleeIP, uint16(l.port()))
	edgePBXSide := netip.AddrPortFrom(tri.RelayCallerIP, 5060)
	edgeCarrierSide := netip.AddrPortFrom(tri.RelayCalleeIP, 5060)

	args := []string{"sip", "--config", l.config,
		"--listen-udp", "0.0.0.0:5060", "--domain", testDomain, "--edge", "lab",
		"--relay-ng", l.ngAddr, "--relay-customer-iface", "carrier", "--relay-carrier-iface", "customer",
		"--relay-interface", "customer/" + tri.RelayCallerIP.String(), "--relay-interface", "carrier/" + tri.RelayCalleeIP.String(),
		"--carrier", "sip:" + carrier.String(), "--carrier-probe-interval", "0",
		"--db", l.dsn, "--default-cps", "0", "--log-level", "debug"}
	edge, err := tri.Relay.Start(t.Context(), l.bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = edge.Stop()
		if t.Failed() {
			t.Logf("xtrunk sip on 0.0.0.0:5060:\n%s", lastLines(edge.Output(), 200))
		}
	})
	l.waitBound(t, tri.Relay, 5060, edge)

	pbxWire := captureSIP(t, tri.CallerLink.A)
	carrierWire := captureSIP(t, tri.CalleeLink.B)

	uas := l.startUAS(t, tri.Callee, "carrier", "uas_carrier_addr.xml", tri.CalleeIP, int(carrier.Port()), l.port(),
		"-rtp_echo", "-m", "1")
	called := l.number()
	pbx := l.startSIPp(t, tri.Caller, "pbx", "uac_contact.xml", tri.CallerIP, l.port(), l.port(),
		pbxArgs(called, edgeCarrierSide.String())...)
	pbx.wait(t)
	uas.wait(t)
	if t.Failed() {
		return
	}

	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: string(hangupCaller), answered: true, media: true})

	// The carrier's side of the wire: every request of the edge from
	// 198.18.2.1:5060, and INVITE, ACK and BYE all came.
	seen := map[string]bool{}
	for _, p := range carrierWire.packets() {
		if p.dst != carrier {
			continue
		}
		if p.src != edgeCarrierSide {
			t.Errorf("edge → carrier %s from %s, want from %s", p.firstLine(), p.src, edgeCarrierSide)
		}
		seen[p.method()] = true
		p.checkNoBadAddress(t)
	}
	for _, m := range []string{"INVITE", "ACK", "BYE"} {
		if !seen[m] {
			t.Errorf("the carrier got no %s from the edge (got %v)", m, seen)
		}
	}

	// The PBX's side: the edge answers from 5060 on its PBX-side address;
	// the PBX sent its INVITE to the command line's address and its ACK
	// for the 200 and its BYE to the Contact.
	var byContact int
	for _, p := range pbxWire.packets() {
		switch {
		case p.src.Addr() == tri.CallerIP:
			cseq := p.header("CSeq")
			if (p.method() == "ACK" && strings.HasPrefix(cseq, "2 ")) || p.method() == "BYE" {
				if p.dst != edgePBXSide {
					t.Errorf("PBX's %s (CSeq %s) went to %s, want the Contact %s", p.method(), cseq, p.dst, edgePBXSide)
				}
				byContact++
			}
			if p.method() == "INVITE" && p.dst != edgeCarrierSide {
				t.Errorf("PBX's INVITE went to %s, want the command line's %s", p.dst, edgeCarrierSide)
			}
		case p.dst.Addr() == tri.CallerIP:
			if p.src.Port() != 5060 || p.src.Addr() != tri.RelayCallerIP {
				t.Errorf("edge → PBX %s from %s, want from %s", p.firstLine(), p.src, edgePBXSide)
			}
			p.checkNoBadAddress(t)
		}
	}
	if byContact < 2 {
		t.Errorf("saw %d of the PBX's ACK and BYE on the wire, want both", byContact)
	}
}

// sipPacket is one SIP datagram seen on a veth.
type sipPacket struct {
	src, dst netip.AddrPort
	msg      string
}

func (p sipPacket) firstLine() string {
	line, _, _ := strings.Cut(p.msg, "\r\n")
	return line
}

// method is a request's method ("" for a response).
func (p sipPacket) method() string {
	if strings.HasPrefix(p.msg, "SIP/2.0 ") {
		return ""
	}
	m, _, _ := strings.Cut(p.msg, " ")
	return m
}

func (p sipPacket) header(name string) string {
	return string(sipHeaderValue([]byte(p.msg), name))
}

// checkNoBadAddress fails on a message of the edge that names 0.0.0.0 or
// a loopback address anywhere in its headers (a Via, Contact or From the
// peer could not reach).
func (p sipPacket) checkNoBadAddress(t *testing.T) {
	t.Helper()
	head, _, _ := strings.Cut(p.msg, "\r\n\r\n")
	for _, bad := range []string{"0.0.0.0", "127.0.0.1", "[::]", "[::1]"} {
		if strings.Contains(head, bad) {
			t.Errorf("edge's %q names %s:\n%s", p.firstLine(), bad, head)
		}
	}
}

// sipHeaderValue is the value of the first header called name, or nil.
func sipHeaderValue(msg []byte, name string) []byte {
	for _, line := range bytes.Split(msg, []byte("\r\n"))[1:] {
		if len(line) == 0 {
			return nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}

// sipCapture reads every IPv4 UDP datagram carrying SIP that crosses one
// veth end, both ways (a packet socket for ETH_P_ALL sees what its
// namespace sends as well as what it receives).
type sipCapture struct {
	fd   int
	stop atomic.Bool
	done chan struct{}

	mu   sync.Mutex
	pkts []sipPacket
}

func captureSIP(t *testing.T, end *testbed.End) *sipCapture {
	t.Helper()
	c := &sipCapture{fd: -1, done: make(chan struct{})}
	proto := int(htons16(unix.ETH_P_ALL))
	err := end.NS.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons16(unix.ETH_P_ALL), Ifindex: end.Index}); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		t.Fatalf("packet socket on %s: %v", end, err)
	}
	go c.loop()
	t.Cleanup(func() {
		c.stop.Store(true)
		<-c.done
		unix.Close(c.fd)
	})
	return c
}

func htons16(v uint16) uint16 { return v<<8 | v>>8 }

func (c *sipCapture) loop() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for !c.stop.Load() {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if p, ok := parseSIPDatagram(buf[:n]); ok {
			c.mu.Lock()
			c.pkts = append(c.pkts, p)
			c.mu.Unlock()
		}
	}
}

// parseSIPDatagram reads an IPv4 UDP datagram whose payload looks like
// SIP (a status line, or a request line ending in SIP/2.0).
func parseSIPDatagram(p []byte) (sipPacket, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
		return sipPacket{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8 {
		return sipPacket{}, false
	}
	src, _ := netip.AddrFromSlice(p[12:16])
	dst, _ := netip.AddrFromSlice(p[16:20])
	udp := p[ihl:]
	payload := udp[8:]
	line, _, _ := bytes.Cut(payload, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("SIP/2.0 ")) && !bytes.HasSuffix(line, []byte(" SIP/2.0")) {
		return sipPacket{}, false
	}
	return sipPacket{
		src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:2])),
		dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:4])),
		msg: string(payload),
	}, true
}

func (c *sipCapture) packets() []sipPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sipPacket(nil), c.pkts...)
}
