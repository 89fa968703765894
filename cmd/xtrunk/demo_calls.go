package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/ng"
)

// The SIPp scenarios of the demo's peers, written into the lab directory.
//
//go:embed demo/*.xml
var demoScenarios embed.FS

// Media of every call: G.711 at 50 packets/s both ways for demoMedia.
const (
	demoPPS   = 50
	demoMedia = 5 * time.Second
	// demoHold is how long a SIPp caller holds the call after its ACK:
	// the media, with time to find the call on the relay before and to
	// read its counters after.
	demoHold = demoMedia + 3*time.Second
)

// Media ports of the peers (their own namespaces, so nothing collides
// with the host or the edge).
const (
	pbxSIPPort     = 5070 // the PBX's SIPp; the origination URL points here
	carrierSIPPort = 5060 // the carrier's SIPp; the edge's carrier gateway
	peerRTPPort    = 20000
	sippMediaPort  = 30000 // SIPp binds its own media sockets: unused
)

// Directions, the keys of sent/received/fast_path/loss/jitter_ms.
const (
	dirPBXToCarrier = "pbx_to_carrier"
	dirCarrierToPBX = "carrier_to_pbx"
)

// demoPeers is what the calls need besides the lab.
type demoPeers struct {
	sipp, baresip string
	scenarios     string // directory of the SIPp scenarios
	ng            *ng.Client
	trunks        demoTrunks
}

// sippRun is one SIPp process.
type sippRun struct {
	name string
	p    *testbed.Process
	errs string // -error_file
	msgs string // -message_file
}

// startSIPp runs SIPp in ns bound to addr:port with scenario; the peer's
// RTP port is -key rtpport. args end with the remote host for a UAC.
func (d *demoLab) startSIPp(ctx context.Context, pe *demoPeers, ns *testbed.NS, name, scenario string, addr netip.Addr, port int, args ...string) (*sippRun, error) {
	r := &sippRun{name: name, errs: filepath.Join(d.dir, name+"_errors.log"), msgs: filepath.Join(d.dir, name+"_messages.log")}
	a := []string{"-sf", filepath.Join(pe.scenarios, scenario), "-i", addr.String(), "-p", strconv.Itoa(port),
		"-mi", addr.String(), "-mp", strconv.Itoa(sippMediaPort), "-key", "rtpport", strconv.Itoa(peerRTPPort),
		"-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err", "-error_file", r.errs,
		"-trace_msg", "-message_file", r.msgs, "-m", "1"}
	var err error
	if r.p, err = ns.Start(ctx, pe.sipp, append(a, args...)...); err != nil {
		return nil, err
	}
	return r, nil
}

// wait waits for SIPp to end; an error carries its diagnostics.
func (r *sippRun) wait() error {
	if err := r.p.Wait(); err != nil {
		errs, _ := os.ReadFile(r.errs)
		return fmt.Errorf("SIPp %s: %w\n%s\n%s", r.name, err, lastLines(r.p.Output(), 15), lastLines(string(errs), 15))
	}
	return nil
}

// inviteStatus is the last final response to an INVITE that SIPp
// received (0: none), from its message trace: what a caller whose call
// was refused was told.
func (r *sippRun) inviteStatus() int {
	b, err := os.ReadFile(r.msgs)
	if err != nil {
		return 0
	}
	status := 0
	for _, block := range strings.Split(string(b), "\n-----------------------------------------------") {
		if !strings.Contains(block, "message received") {
			continue
		}
		var code int
		var isInvite bool
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "SIP/2.0 ") && code == 0 {
				code, _ = strconv.Atoi(strings.Fields(line + " x")[1])
			}
			if f := strings.Fields(line); len(f) == 3 && strings.EqualFold(f[0], "CSeq:") && f[2] == "INVITE" {
				isInvite = true
			}
		}
		if isInvite && code >= 200 {
			status = code
		}
	}
	return status
}

// waitBound waits until something in ns has UDP port bound, without
// sending it anything.
func waitBound(ctx context.Context, ns *testbed.NS, port int, p *testbed.Process) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := ns.Run(ctx, "ss", "-Hlun", fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before binding port %d:\n%s", p, port, lastLines(p.Output(), 15))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing bound to UDP port %d in %s", p, port, ns)
		}
	}
}

// rtpEnd is a peer's RTP socket with a sink counting the other side's
// stream.
type rtpEnd struct {
	conn *net.UDPConn
	sink *rtpgen.Sink
}

func listenRTP(ns *testbed.NS, addr netip.Addr, peerSSRC uint32) (*rtpEnd, error) {
	c, err := ns.ListenUDP(netip.AddrPortFrom(addr, peerRTPPort).String())
	if err != nil {
		return nil, err
	}
	return &rtpEnd{conn: c, sink: rtpgen.NewSink(c, peerSSRC)}, nil
}

// The SSRCs the demo's own RTP streams use.
const (
	ssrcPBX     = 0x9b1
	ssrcCarrier = 0xca5
)

// sipCall is one of the demo's plain calls: SIPp on both ends, RTP
// streamed by the demo from the peers' namespaces.
type sipCall struct {
	res              *demoCall
	uas, uac         *sippRun
	pbx, carrier     *rtpEnd
	calledNumber     string
	pbxIsCaller      bool
	uasNS, uacNS     *testbed.NS
	uasAddr, uacAddr netip.Addr
	uasPort, uacPort int
	uasScenario      string
	uacScenario      string
	uacArgs          []string
}

// terminationCall: the PBX dials a number on the acme trunk with digest
// credentials; the edge sends it to the carrier gateway.
func (d *demoLab) terminationCall(ctx context.Context, pe *demoPeers) *demoCall {
	t := d.tri
	called := "+16505550101"
	host := pe.trunks.acmeHost
	c := &sipCall{
		res:          &demoCall{Name: "termination (digest, UDP/RTP)", Direction: "termination", From: demoDID, To: called},
		calledNumber: called, pbxIsCaller: true,
		uasNS: t.Callee, uasAddr: t.CalleeIP, uasPort: carrierSIPPort, uasScenario: "uas.xml",
		uacNS: t.Caller, uacAddr: t.CallerIP, uacPort: pbxSIPPort, uacScenario: "pbx_uac.xml",
		uacArgs: []string{"-s", called, "-key", "trunk", host, "-key", "caller", demoDID,
			"-au", demoUser, "-ap", d.password, "-auth_uri", called + "@" + host,
			"-d", strconv.Itoa(int(demoHold.Milliseconds())), netip.AddrPortFrom(t.RelayCallerIP, demoSIPPort).String()},
	}
	return d.runSIPCall(ctx, pe, c)
}

// originationCall: the carrier delivers a call to the DID; the edge
// sends it to the acme trunk's origination URL, the PBX.
func (d *demoLab) originationCall(ctx context.Context, pe *demoPeers) *demoCall {
	t := d.tri
	c := &sipCall{
		res:          &demoCall{Name: "origination (to the DID, UDP/RTP)", Direction: "origination", From: demoFrom, To: demoDID},
		calledNumber: demoDID,
		uasNS:        t.Caller, uasAddr: t.CallerIP, uasPort: pbxSIPPort, uasScenario: "uas.xml",
		uacNS: t.Callee, uacAddr: t.CalleeIP, uacPort: carrierSIPPort, uacScenario: "carrier_uac.xml",
		uacArgs: []string{"-s", demoDID, "-key", "caller", demoFrom,
			"-d", strconv.Itoa(int(demoHold.Milliseconds())), netip.AddrPortFrom(t.RelayCalleeIP, demoSIPPort).String()},
	}
	return d.runSIPCall(ctx, pe, c)
}

// runSIPCall places c and measures it; what failed is in the result.
func (d *demoLab) runSIPCall(ctx context.Context, pe *demoPeers, c *sipCall) *demoCall {
	if err := d.sipCallSteps(ctx, pe, c); err != nil {
		c.res.Errors = append(c.res.Errors, err.Error())
	}
	for _, e := range []*rtpEnd{c.pbx, c.carrier} {
		if e != nil {
			e.conn.Close()
		}
	}
	for _, r := range []*sippRun{c.uac, c.uas} {
		if r != nil {
			_ = r.p.Kill() // already exited on success
		}
	}
	d.fillCDR(ctx, c.res)
	return c.res
}

func (d *demoLab) sipCallSteps(ctx context.Context, pe *demoPeers, c *sipCall) (err error) {
	t := d.tri
	if c.pbx, err = listenRTP(t.Caller, t.CallerIP, ssrcCarrier); err != nil {
		return err
	}
	if c.carrier, err = listenRTP(t.Callee, t.CalleeIP, ssrcPBX); err != nil {
		return err
	}
	if c.uas, err = d.startSIPp(ctx, pe, c.uasNS, c.res.Direction+"-uas", c.uasScenario, c.uasAddr, c.uasPort); err != nil {
		return err
	}
	if err := waitBound(ctx, c.uasNS, c.uasPort, c.uas.p); err != nil {
		return err
	}
	if c.uac, err = d.startSIPp(ctx, pe, c.uacNS, c.res.Direction+"-uac", c.uacScenario, c.uacAddr, c.uacPort, c.uacArgs...); err != nil {
		return err
	}
	id, pbxSide, carrierSide, err := findRelayCall(ctx, pe.ng, t.CallerIP, t.CalleeIP, c.uac.p.Done())
	if err != nil {
		c.res.SIPStatus = c.uac.inviteStatus()
		// Not answered: SIPp would wait for its -timeout.
		_ = c.uac.p.Kill()
		return errors.Join(err, c.uac.wait())
	}
	sent, err := streamBoth(ctx, c.pbx.conn, pbxSide.local, c.carrier.conn, carrierSide.local)
	c.res.Sent = sent
	if err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // the last packets' way through
	d.relayCounts(ctx, pe, id, c.res)
	c.res.Received = map[string]int{dirPBXToCarrier: good(c.carrier.sink), dirCarrierToPBX: good(c.pbx.sink)}
	// Both SIPps end by themselves: the caller hangs up after -d. The
	// caller's scenario passes only with a 200 to its INVITE.
	uacErr := c.uac.wait()
	if uacErr == nil {
		c.res.SIPStatus = 200
	}
	return errors.Join(uacErr, c.uas.wait())
}

func good(s *rtpgen.Sink) int { g, _ := s.Counts(); return g }

// streamBoth streams demoMedia of G.711-sized RTP each way at once: from
// the PBX to the relay's PBX-facing socket and from the carrier to its
// carrier-facing one.
func streamBoth(ctx context.Context, pbx *net.UDPConn, toPBXSide netip.AddrPort, carrier *net.UDPConn, toCarrierSide netip.AddrPort) (map[string]int, error) {
	n := int(demoMedia.Seconds() * demoPPS)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := map[string]int{}
	var errs []error
	for _, s := range []struct {
		dir  string
		conn *net.UDPConn
		to   netip.AddrPort
		ssrc uint32
	}{{dirPBXToCarrier, pbx, toPBXSide, ssrcPBX}, {dirCarrierToPBX, carrier, toCarrierSide, ssrcCarrier}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := rtpgen.Send(ctx, s.conn, s.to, s.ssrc, n, demoPPS)
			mu.Lock()
			sent[s.dir] = k
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sent, errors.Join(errs...)
}

// relayCounts records what the relay saw of each direction: the packets
// it received from the sending party and the share XDP forwarded.
func (d *demoLab) relayCounts(ctx context.Context, pe *demoPeers, id string, res *demoCall) {
	parties, err := relayCall(ctx, pe.ng, id)
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("relay query: %v", err))
		return
	}
	res.FastPath, res.Relay = map[string]float64{}, map[string]relayCounts{}
	for _, p := range parties {
		dir := dirCarrierToPBX
		if p.advertised == d.tri.CallerIP {
			dir = dirPBXToCarrier
		}
		res.FastPath[dir] = p.fastShare()
		res.Relay[dir] = relayCounts{Packets: p.packets, FastPath: p.fast, Userspace: p.user}
	}
}

// fillCDR fetches the call's CDR through the API's Calls resource and
// takes its SID, status and the relay's loss and jitter per leg.
func (d *demoLab) fillCDR(ctx context.Context, res *demoCall) {
	j, err := d.cdr(ctx, res.To)
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("CDR: %v", err))
		return
	}
	res.CDRSid, _ = j["sid"].(string)
	res.CDRStatus, _ = j["status"].(string)
	if code, ok := j["sip_response_code"].(float64); ok {
		res.CDRSIPCode = int(code)
		if res.SIPStatus == 0 {
			res.SIPStatus = res.CDRSIPCode // the caller's view was lost; the edge's
		}
	}
	res.Loss, res.JitterMs = map[string]int64{}, map[string]float64{}
	q, _ := j["media_quality"].([]any)
	for _, v := range q {
		m, _ := v.(map[string]any)
		// A leg's quality is of what the relay received from it.
		dir := dirCarrierToPBX
		if m["leg"] == "customer" {
			dir = dirPBXToCarrier
		}
		lost, _ := m["packets_lost"].(float64)
		jit, _ := m["jitter_ms"].(float64)
		res.Loss[dir], res.JitterMs[dir] = int64(lost), jit
	}
}

// lookPeers finds SIPp and baresip and writes the scenarios out.
func (d *demoLab) lookPeers() (*demoPeers, error) {
	pe := &demoPeers{scenarios: filepath.Join(d.dir, "scenarios")}
	var err error
	if pe.sipp, err = exec.LookPath("sipp"); err != nil {
		return nil, fmt.Errorf("%w (SIPp: apt-get install sip-tester, or make demo)", err)
	}
	if pe.baresip, err = exec.LookPath("baresip"); err != nil {
		return nil, fmt.Errorf("%w (apt-get install baresip, or make demo)", err)
	}
	if err := os.Mkdir(pe.scenarios, 0o755); err != nil {
		return nil, err
	}
	ents, err := demoScenarios.ReadDir("demo")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		b, err := demoScenarios.ReadFile("demo/" + e.Name())
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(pe.scenarios, e.Name()), b, 0o644); err != nil {
			return nil, err
		}
	}
	return pe, nil
}
