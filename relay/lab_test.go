package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// labRelay is an in-process relay living in a Triangle's relay namespace,
// with its NG server on the relay's caller-side address.
type labRelay struct {
	tri    *testbed.Triangle
	r      *Relay
	ngAddr string
	cancel context.CancelFunc
	done   chan struct{}
	pc     net.PacketConn
	once   sync.Once
}

// stop ends the NG server and closes the relay (once; the test's cleanup
// calls it too).
func (lr *labRelay) stop() {
	lr.once.Do(func() {
		lr.cancel()
		<-lr.done
		lr.pc.Close()
		lr.r.Close()
	})
}

// labSocketless runs every xdp lab with the socketless relay
// (XTRUNK_TEST_SOCKETLESS=1): the same tests, AF_XDP instead of sockets.
var labSocketless = os.Getenv("XTRUNK_TEST_SOCKETLESS") == "1"

// dataplaneXDPSocketless is the labs' name for --dataplane xdp
// --socketless.
const dataplaneXDPSocketless = "xdp-socketless"

// labModes are the relay modes the labs run in; xdpModes those with the
// XDP program.
var (
	labModes = []string{DataplaneXDP, dataplaneXDPSocketless, DataplaneUserspace}
	xdpModes = []string{DataplaneXDP, dataplaneXDPSocketless}
)

func isXDP(mode string) bool { return mode == DataplaneXDP || mode == dataplaneXDPSocketless }

func labConfig(t *testing.T, tri *testbed.Triangle, dataplane string) Config {
	cfg := DefaultConfig()
	cfg.Dataplane = dataplane
	if dataplane == dataplaneXDPSocketless {
		cfg.Dataplane, cfg.Socketless = DataplaneXDP, true
	}
	cfg.Interfaces = []Interface{
		{Name: "customer", Addr: tri.RelayCallerIP, Advertised: tri.RelayCallerIP},
		{Name: "customer", Addr: tri.RelayCallerIP6, Advertised: tri.RelayCallerIP6},
		{Name: "carrier", Addr: tri.RelayCalleeIP, Advertised: tri.RelayCalleeIP},
		{Name: "carrier", Addr: tri.RelayCalleeIP6, Advertised: tri.RelayCalleeIP6},
	}
	if cfg.Dataplane == DataplaneXDP {
		cfg.PinPath = filepath.Join(labtest.MountBPFFS(t), "relay")
		cfg.RemoveOnExit = true
		// "xdp" is the bound-socket mode (--socketless=false) unless
		// XTRUNK_TEST_SOCKETLESS=1; socketless is the flag's default.
		cfg.Socketless = dataplane == dataplaneXDPSocketless || labSocketless
	}
	return cfg
}

func startLabRelay(t *testing.T, tri *testbed.Triangle, cfg Config) *labRelay {
	t.Helper()
	lr := &labRelay{tri: tri, done: make(chan struct{})}
	var pc net.PacketConn
	err := tri.Relay.Do(func() error {
		var err error
		lr.r, err = New(cfg, WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)))
		if err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(tri.RelayCallerIP, 2223).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	lr.ngAddr = pc.LocalAddr().String()
	lr.pc = pc
	ctx, cancel := context.WithCancel(context.Background())
	lr.cancel = cancel
	go func() {
		defer close(lr.done)
		_ = ng.NewServer(lr.r).Serve(ctx, pc)
	}()
	t.Cleanup(lr.stop)
	return lr
}

// ngClient dials the relay's NG port from the caller namespace.
func (lr *labRelay) ngClient(t *testing.T) *ng.Client {
	t.Helper()
	var c *ng.Client
	err := lr.tri.Caller.Do(func() error {
		var err error
		c, err = ng.Dial(lr.ngAddr, ng.WithTimeout(3*time.Second))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func do(t *testing.T, c *ng.Client, req ng.Dict) ng.Dict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := c.Do(ctx, req)
	if err != nil {
		t.Fatalf("ng %s: %v (reply %v)", req.Str("command"), err, reply)
	}
	return reply
}

func g711SDP(addr netip.Addr, port int) string {
	ipv := "IP4"
	if addr.Is6() {
		ipv = "IP6"
	}
	return fmt.Sprintf("v=0\r\no=- 1234 1 IN %[1]s %[2]s\r\ns=-\r\nc=IN %[1]s %[2]s\r\nt=0 0\r\n"+
		"m=audio %[3]d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n", ipv, addr, port)
}

// mediaOf returns the relay address and port an SDP tells its receiver to use.
func mediaOf(t testing.TB, sdpText string) netip.AddrPort {
	t.Helper()
	var addr netip.Addr
	port := 0
	for _, line := range splitLines(sdpText) {
		switch {
		case len(line) > 9 && line[:9] == "c=IN IP4 ", len(line) > 9 && line[:9] == "c=IN IP6 ":
			a, err := netip.ParseAddr(line[9:])
			if err == nil && !addr.IsValid() {
				addr = a
			}
		case len(line) > 8 && line[:8] == "m=audio ":
			fmt.Sscanf(line[8:], "%d", &port)
		}
	}
	if !addr.IsValid() || port == 0 {
		t.Fatalf("no media address in SDP:\n%s", sdpText)
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			l := s[start:i]
			if len(l) > 0 && l[len(l)-1] == '\r' {
				l = l[:len(l)-1]
			}
			out = append(out, l)
			start = i + 1
		}
	}
	return out
}

// The media helpers below are thin names over bench/rtpgen (the same
// generator and checker the demo and the benchmarks use).

type sink = rtpgen.Sink

func newSink(conn *net.UDPConn, ssrc uint32) *sink { return rtpgen.NewSink(conn, ssrc) }

// drainWait bounds a sink's wait for the last packets of a stream once it
// was sent (Sink.Drain): they may still be in the relay on a loaded
// machine, where a fixed pause missed some.
const drainWait = 5 * time.Second

// rtpPacket is rtpgen's packet with payload type pt.
func rtpPacket(b []byte, pt uint8, ssrc uint32, seq uint16) []byte {
	p := rtpgen.Packet(b, ssrc, seq)
	p[1] = pt
	return p
}

// send paces n packets at pps from conn to dst.
func send(conn *net.UDPConn, dst netip.AddrPort, ssrc uint32, n, pps int) error {
	_, err := rtpgen.Send(context.Background(), conn, dst, ssrc, n, pps)
	return err
}
