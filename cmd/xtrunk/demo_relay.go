package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay"
)

// runRelayDemo (xtrunk demo --relay-only) builds a caller / relay /
// callee namespace lab, starts the relay alone with the XDP dataplane,
// sets up a call over NG, streams G.711 both ways and prints what went
// through the fast path. It leaves nothing behind.
func runRelayDemo(args []string) error {
	fs := flag.NewFlagSet("demo --relay-only", flag.ContinueOnError)
	dur := fs.Duration("duration", 5*time.Second, "how long to stream")
	mode := fs.String("dataplane", relay.DataplaneXDP, "xdp or userspace")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pps := 50
	n := int(dur.Seconds() * float64(pps))

	fmt.Println("building lab: caller 198.18.1.2 ⇄ relay 198.18.1.1 | 198.18.2.1 ⇄ callee 198.18.2.2")
	tri, err := testbed.NewTriangleLab()
	if err != nil {
		return err
	}
	defer tri.Lab.Close()

	pinRoot, err := testbed.MountBPFFS("xtrunk-demo-bpffs-")
	if err != nil {
		return err
	}
	defer testbed.UnmountBPFFS(pinRoot)

	r, pc, ngAddr, err := startRelayDemoRelay(tri, *mode, filepath.Join(pinRoot, "relay"))
	if err != nil {
		return err
	}
	defer r.Close()
	defer pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ng.NewServer(r, ng.WithInline(relay.InlineNG)).Serve(ctx, pc) }()

	var client *ng.Client
	if err := tri.Caller.Do(func() error { var err error; client, err = ng.Dial(ngAddr.String()); return err }); err != nil {
		return err
	}
	defer client.Close()

	caller := netip.AddrPortFrom(tri.CallerIP, 20000)
	callee := netip.AddrPortFrom(tri.CalleeIP, 40000)
	toCaller, toCallee, err := relayDemoOfferAnswer(ctx, client, caller, callee)
	if err != nil {
		return err
	}
	fmt.Printf("NG offer/answer done: caller sends to %v, callee sends to %v\n", toCaller, toCallee)

	cc, err := tri.Caller.ListenUDP(caller.String())
	if err != nil {
		return err
	}
	defer cc.Close()
	ce, err := tri.Callee.ListenUDP(callee.String())
	if err != nil {
		return err
	}
	defer ce.Close()
	atCallee, atCaller := rtpgen.NewSink(ce, 1), rtpgen.NewSink(cc, 2)
	before, _ := r.Reasons()
	fmt.Printf("streaming G.711 (50 pps, 172-byte RTP) both ways for %v...\n", *dur)
	done := make(chan error, 2)
	go func() { _, err := rtpgen.Send(ctx, cc, toCaller, 1, n, pps); done <- err }()
	go func() { _, err := rtpgen.Send(ctx, ce, toCallee, 2, n, pps); done <- err }()
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			return err
		}
	}
	time.Sleep(200 * time.Millisecond)
	after, _ := r.Reasons()
	q, err := client.Do(ctx, ng.Dict{"command": "delete", "call-id": "demo-call"})
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}

	printRelayDemo(q, n, atCallee, atCaller)
	if *mode == relay.DataplaneXDP {
		fmt.Println("\nXDP program exits during the call (per reason):")
		for i, v := range after.Sub(before) {
			if v > 0 {
				fmt.Printf("  %-22s %6d\n", bpf.Reason(i), v)
			}
		}
	}
	return nil
}

// startRelayDemoRelay starts the relay in-process in the relay
// namespace with its NG socket there.
func startRelayDemoRelay(tri *testbed.Triangle, mode, pins string) (*relay.Relay, net.PacketConn, netip.AddrPort, error) {
	cfg := relay.DefaultConfig()
	cfg.Dataplane = mode
	cfg.PinPath = pins
	cfg.RemoveOnExit = true
	cfg.Interfaces = []relay.Interface{
		{Name: "customer", Addr: tri.RelayCallerIP, Advertised: tri.RelayCallerIP},
		{Name: "carrier", Addr: tri.RelayCalleeIP, Advertised: tri.RelayCalleeIP},
	}
	ngAddr := netip.AddrPortFrom(tri.RelayCallerIP, 2223)
	lw, err := logWriter(os.Stderr, logFormatConsole) // colours only on a terminal
	if err != nil {
		return nil, nil, ngAddr, err
	}
	log := zerolog.New(lw).With().Timestamp().Logger()
	var r *relay.Relay
	var pc net.PacketConn
	if err := tri.Relay.Do(func() error {
		var err error
		if r, err = relay.New(cfg, relay.WithLogger(log)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ngAddr.String())
		return err
	}); err != nil {
		if r != nil {
			r.Close()
		}
		return nil, nil, ngAddr, err
	}
	return r, pc, ngAddr, nil
}

// relayDemoOfferAnswer sets the call up over NG and returns where each
// party sends its RTP (the relay's sockets in the SDP it gets).
func relayDemoOfferAnswer(ctx context.Context, client *ng.Client, caller, callee netip.AddrPort) (toCaller, toCallee netip.AddrPort, err error) {
	offer, err := client.Do(ctx, ng.Dict{"command": "offer", "call-id": "demo-call", "from-tag": "caller",
		"sdp": demoSDP(caller), "direction": []any{"customer", "carrier"}})
	if err != nil {
		return toCaller, toCallee, fmt.Errorf("offer: %w", err)
	}
	answer, err := client.Do(ctx, ng.Dict{"command": "answer", "call-id": "demo-call", "from-tag": "caller", "to-tag": "callee",
		"sdp": demoSDP(callee)})
	if err != nil {
		return toCaller, toCallee, fmt.Errorf("answer: %w", err)
	}
	if toCallee, err = sdpMedia(offer.Str("sdp")); err != nil {
		return toCaller, toCallee, err
	}
	toCaller, err = sdpMedia(answer.Str("sdp"))
	return toCaller, toCallee, err
}

// printRelayDemo is the table of the relay-only demo: n packets sent each
// way, what arrived intact, and the relay's fast path / userspace counts
// from its delete reply q.
func printRelayDemo(q ng.Dict, n int, atCallee, atCaller *rtpgen.Sink) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "direction\tsent\treceived intact\tlost\tfast path (XDP)\tuserspace\t")
	for _, d := range []struct {
		name, tag string
		sink      *rtpgen.Sink
	}{{"caller → callee", "caller", atCallee}, {"callee → caller", "callee", atCaller}} {
		good, _ := d.sink.Counts()
		st := tagStats(q, d.tag)
		fast, _ := st.Int("fast path")
		user, _ := st.Int("userspace")
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t\n", d.name, n, good, n-good, fast, user)
	}
	w.Flush()
}

func demoSDP(a netip.AddrPort) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=xtrunk demo\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", a.Addr(), a.Port())
}

func sdpMedia(s string) (netip.AddrPort, error) {
	var addr string
	var port int
	for _, line := range splitCRLF(s) {
		if _, err := fmt.Sscanf(line, "c=IN IP4 %s", &addr); err == nil {
			continue
		}
		if _, err := fmt.Sscanf(line, "m=audio %d", &port); err == nil {
			continue
		}
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("no media address in relay SDP:\n%s", s)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

func splitCRLF(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		line := s[:i]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		out = append(out, line)
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func tagStats(q ng.Dict, tag string) ng.Dict {
	medias := q.Dict("tags").Dict(tag).List("medias")
	if len(medias) == 0 {
		return ng.Dict{}
	}
	m, _ := medias[0].(ng.Dict)
	streams := m.List("streams")
	if len(streams) == 0 {
		return ng.Dict{}
	}
	s, _ := streams[0].(ng.Dict)
	return s.Dict("stats")
}
