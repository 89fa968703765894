package sip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// TestSmoke runs a short, low-rate benchmark through every target (xtrunk,
// Kamailio + rtpengine, Kamailio + xtrunk relay), every call carrying RTP
// from the PBX, and checks the machinery, not the speed: every call set
// up and torn down, xtrunk's relay forwarded the media, the numbers add
// up, the JSON reads back, and nothing is left behind.
func TestSmoke(t *testing.T) {
	labtest.RequirePrivileged(t)
	for _, c := range []string{"sipp", "kamailio", "rtpengine"} {
		labtest.RequireCommand(t, c)
	}
	bin := labtest.BuildXtrunk(t)

	const cps = 20
	dur := 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var phases []string
	labPrefixes.Lock()
	before := len(labPrefixes.p) // this run's labs, under -count too
	labPrefixes.Unlock()
	res, err := Run(ctx, Config{
		CPS:       []int{cps},
		Duration:  dur,
		Settle:    time.Second,
		XtrunkBin: bin,
		RTP:       true,
		Progress: func(p Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Target+"/"+p.Phase {
				phases = append(phases, p.Target+"/"+p.Phase)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phases: %s", strings.Join(phases, ", "))
	if len(res.Targets) != len(AllTargets) {
		t.Fatalf("%d targets in the results, want %d", len(res.Targets), len(AllTargets))
	}
	want := callsFor(cps, dur)
	for _, tr := range res.Targets {
		if tr.Error != "" {
			t.Errorf("%s: %s", tr.Target, tr.Error)
			continue
		}
		if len(tr.Steps) != 1 {
			t.Errorf("%s: %d steps, want 1", tr.Target, len(tr.Steps))
			continue
		}
		s := tr.Steps[0]
		t.Logf("%s: %d/%d calls, achieved %.1f CPS, setup p50 %.2f ms p99 %.2f ms (%s; SIPp %0.f/%.0f ms), sip CPU %.1f %%, media CPU %.1f %%, status %s",
			tr.Target, s.Succeeded, s.Attempted, s.AchievedCPS, s.SetupP50ms, s.SetupP99ms, s.LatencySource,
			s.SIPpSetupP50ms, s.SIPpSetupP99ms, s.SIPCPUPct, s.MediaCPUPct, s.Status)
		if s.Attempted != want || s.Succeeded != want || s.Failed != 0 || s.Answered != want {
			t.Errorf("%s: attempted %d, succeeded %d, failed %d, answered %d; want all %d (fail reasons %v, errors %q)",
				tr.Target, s.Attempted, s.Succeeded, s.Failed, s.Answered, want, s.FailReasons, s.ErrorSample)
		}
		if s.LatencySource != "wire" || s.WireSetups != want {
			t.Errorf("%s: latency from %q, %d calls paired on the wire; want wire, %d", tr.Target, s.LatencySource, s.WireSetups, want)
		}
		if !(s.SetupP50ms > 0 && s.SetupP50ms <= s.SetupP99ms && s.SetupP99ms <= s.SetupMaxms) {
			t.Errorf("%s: setup latency p50 %v p99 %v max %v", tr.Target, s.SetupP50ms, s.SetupP99ms, s.SetupMaxms)
		}
		// Answered at the offered rate, give or take SIPp's millisecond
		// clock: a sanity check, not a speed assertion.
		if s.AchievedCPS < cps*0.5 || s.AchievedCPS > cps*1.5 {
			t.Errorf("%s: achieved %.1f CPS, offered %d", tr.Target, s.AchievedCPS, cps)
		}
		if s.SIPCPUPct <= 0 || s.MediaCPUPct <= 0 || s.BusyCPUPct <= 0 || s.BusyCPUPct > float64(100*runtime.NumCPU())+5 {
			t.Errorf("%s: CPU sip %.1f %% media %.1f %% busy %.1f %%", tr.Target, s.SIPCPUPct, s.MediaCPUPct, s.BusyCPUPct)
		}
		if s.SIPCPUusPerCall <= 0 || s.MediaCPUusPerCall <= 0 || s.EdgeCPUusPerCall != s.SIPCPUusPerCall+s.MediaCPUusPerCall {
			t.Errorf("%s: CPU per call sip %.0f µs media %.0f µs edge %.0f µs", tr.Target, s.SIPCPUusPerCall, s.MediaCPUusPerCall, s.EdgeCPUusPerCall)
		}
		if s.RelaySessionsLeft != 0 {
			t.Errorf("%s: the relay still holds %d calls after the step", tr.Target, s.RelaySessionsLeft)
		}
		t.Logf("%s: relay forwarded %d packets in XDP, %d in userspace", tr.Target, s.RelayXDPPackets, s.RelayUserspacePackets)
		if usesXtrunk(tr.Target) {
			// 40 packets per call from the PBX; the last ones of a call
			// may race its BYE, so ask for half.
			if fwd := s.RelayXDPPackets + s.RelayUserspacePackets; fwd < int64(want*rtpPackets/2) || s.RelayXDPPackets == 0 {
				t.Errorf("%s: xtrunk relay forwarded %d packets (%d in XDP) of the %d the PBX sent", tr.Target, fwd, s.RelayXDPPackets, want*rtpPackets)
			}
		} else if s.RelayXDPPackets != 0 || s.RelayUserspacePackets != 0 {
			t.Errorf("%s: xtrunk relay packets %d/%d from rtpengine", tr.Target, s.RelayXDPPackets, s.RelayUserspacePackets)
		}
		switch tr.Target {
		case TargetXtrunk:
			if s.CDRs != want || tr.CDRs != want || tr.CDRsCompleted != want {
				t.Errorf("xtrunk: %d CDRs in the step, %d in all (%d completed); want %d", s.CDRs, tr.CDRs, tr.CDRsCompleted, want)
			}
		case TargetKamailio, TargetKamailioXtrunk:
			if tr.CDRs != 0 {
				t.Errorf("%s: %d CDRs", tr.Target, tr.CDRs)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "results.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Targets) != len(res.Targets) || back.Targets[0].Steps[0].Succeeded != res.Targets[0].Steps[0].Succeeded {
		t.Error("results.json does not read back as written")
	}
	var table strings.Builder
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	for _, tr := range res.Targets {
		if !strings.Contains(table.String(), tr.Target+" ") {
			t.Errorf("table has no row for %s", tr.Target)
		}
	}
	if m := testbed.ActiveMounts(); len(m) > 0 {
		t.Errorf("bpffs still mounted: %v", m)
	}
	labPrefixes.Lock()
	prefixes := labPrefixes.p[before:]
	labPrefixes.Unlock()
	if len(prefixes) != len(AllTargets) {
		t.Errorf("%d labs built, want one per target", len(prefixes))
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		for _, p := range prefixes {
			if strings.HasPrefix(e.Name(), p) {
				t.Errorf("namespace %s left behind", e.Name())
			}
		}
	}
}

func TestParseForwarded(t *testing.T) {
	body := `# HELP xtrunk_relay_xdp_packets_total Packets seen by the XDP program.
# TYPE xtrunk_relay_xdp_packets_total counter
xtrunk_relay_xdp_packets_total{reason="forwarded",verdict="forward"} 1200
xtrunk_relay_xdp_packets_total{reason="no_session",verdict="drop"} 7
xtrunk_relay_xdp_packets_total{reason="rtcp",verdict="forward"} 3
xtrunk_relay_xdp_packets_total{reason="learn",verdict="pass"} 60
xtrunk_relay_userspace_packets_total 61
xtrunk_relay_userspace_bytes_total 11000
`
	if xdp, user := parseForwarded(body); xdp != 1203 || user != 61 {
		t.Errorf("xdp %d user %d, want 1203 61", xdp, user)
	}
	if xdp, user := parseForwarded("garbage\nxtrunk_relay_userspace_packets_total x\n"); xdp != 0 || user != 0 {
		t.Errorf("garbage: %d %d", xdp, user)
	}
}

// TestG711Pcap reads back the pcap Config.RTP has SIPp play.
func TestG711Pcap(t *testing.T) {
	b := g711Pcap(pbxIP, relayCustomer, 3)
	if binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("pcap header % x", b[:24])
	}
	rec := b[24:]
	for i := range 3 {
		n := int(binary.LittleEndian.Uint32(rec[8:]))
		if us := binary.LittleEndian.Uint32(rec[0:])*1e6 + binary.LittleEndian.Uint32(rec[4:]); us != uint32(i*20000) {
			t.Errorf("packet %d at %d µs", i, us)
		}
		frame := rec[16 : 16+n]
		ip := frame[14:34]
		if ipChecksum(ip) != 0 || ip[9] != 17 || !bytes.Equal(ip[12:16], pbxIP.AsSlice()) || !bytes.Equal(ip[16:20], relayCustomer.AsSlice()) {
			t.Errorf("packet %d IPv4 header % x", i, ip)
		}
		udp, rtp := frame[34:42], frame[42:]
		if binary.BigEndian.Uint16(udp[4:]) != uint16(len(udp)+len(rtp)) || len(rtp) != 172 || rtp[0] != 0x80 || rtp[1] != 8 ||
			binary.BigEndian.Uint16(rtp[2:]) != uint16(i) {
			t.Errorf("packet %d UDP % x RTP % x", i, udp, rtp[:12])
		}
		rec = rec[16+n:]
	}
	if len(rec) != 0 {
		t.Errorf("%d bytes after the packets", len(rec))
	}
}

func TestReadStatFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat.csv")
	body := "StartTime;OutgoingCall(C);SuccessfulCall(C);FailedCall(C);FailedMaxUDPRetrans(C);FailedTimeoutOnRecv(C);Retransmissions(C);\n" +
		"2026-11-26\t00:54:59.3\t1795654499.3;10;8;1;0;0;0;\n" +
		"2026-11-26\t00:55:00.3\t1795654500.3;20;17;3;1;2;5;\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := readStatFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &uacResult{stats: st}
	if r.count("OutgoingCall(C)") != 20 || r.count("SuccessfulCall(C)") != 17 || r.count("Retransmissions(C)") != 5 {
		t.Errorf("last row not read: %v", st)
	}
	fr := r.failReasons()
	if len(fr) != 2 || fr["MaxUDPRetrans"] != 1 || fr["TimeoutOnRecv"] != 2 {
		t.Errorf("fail reasons %v", fr)
	}
	if _, err := readStatFile(filepath.Join(t.TempDir(), "none.csv")); err == nil {
		t.Error("a missing stat file read without error")
	}
}

func TestReadRTTFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pbx_1_rtt.csv")
	body := "Date_ms;response_time_ms;rtd_no\n56.001;4;setup\n108.001;3;setup\n110.5;1;other\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	rtts, at, err := readRTTFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rtts) != 2 || rtts[0] != 4 || rtts[1] != 3 || at[1] != 108.001 {
		t.Errorf("rtts %v at %v", rtts, at)
	}
}

func TestPercentileAndRate(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {0, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
	// 11 answers 100 ms apart: 10 CPS.
	var at []float64
	for i := 0; i <= 10; i++ {
		at = append(at, 1000+float64(i)*100)
	}
	if got := achievedCPS(at); got < 9.999 || got > 10.001 {
		t.Errorf("achieved %v CPS, want 10", got)
	}
	if achievedCPS(at[:1]) != 0 {
		t.Error("one answer has no rate")
	}
}

func TestStepStatus(t *testing.T) {
	for _, c := range []struct {
		s    Step
		want string
	}{
		{Step{OfferedCPS: 100, AchievedCPS: 99.5, Attempted: 2000, FailPct: 0}, StatusOK},
		{Step{OfferedCPS: 100, AchievedCPS: 99.5, Attempted: 2000, FailPct: 0.1}, StatusFail},
		{Step{OfferedCPS: 100, AchievedCPS: 90, Attempted: 2000, FailPct: 0.05}, StatusShort},
		{Step{OfferedCPS: 100}, StatusFail},
	} {
		if got := stepStatus(c.s); got != c.want {
			t.Errorf("%+v: %s, want %s", c.s, got, c.want)
		}
	}
}

// TestWireCapturePairs feeds the capture's parser INVITEs and responses
// as IPv4/UDP datagrams.
func TestWireCapturePairs(t *testing.T) {
	c := &wireCapture{invites: map[string]int64{}}
	dgram := func(sip string) []byte {
		p := make([]byte, 28+len(sip))
		p[0], p[9] = 0x45, 17
		binary.BigEndian.PutUint16(p[24:], uint16(8+len(sip)))
		copy(p[28:], sip)
		return p
	}
	msg := func(first, callID, cseq string) []byte {
		return dgram(first + "\r\nVia: SIP/2.0/UDP 198.18.1.2:5061\r\nCall-ID: " + callID + "\r\nCSeq: " + cseq + "\r\nContent-Length: 0\r\n\r\n")
	}
	ms := int64(time.Millisecond)
	c.packet(msg("INVITE sip:+1@x SIP/2.0", "a", "1 INVITE"), 0)
	c.packet(msg("INVITE sip:+1@x SIP/2.0", "a", "1 INVITE"), 500*ms) // retransmission
	c.packet(msg("SIP/2.0 100 Trying", "a", "1 INVITE"), 1*ms)
	c.packet(msg("SIP/2.0 200 OK", "a", "1 INVITE"), 700*ms)
	c.packet(msg("SIP/2.0 200 OK", "a", "1 INVITE"), 900*ms) // retransmitted 200
	c.packet(msg("INVITE sip:+1@x SIP/2.0", "b", "1 INVITE"), 10*ms)
	c.packet(dgram("SIP/2.0 200 OK\r\ni: b\r\nCSeq: 1 INVITE\r\n\r\n"), 13*ms) // compact Call-ID
	c.packet(msg("BYE sip:x SIP/2.0", "b", "2 BYE"), 20*ms)
	c.packet(msg("SIP/2.0 200 OK", "b", "2 BYE"), 21*ms)    // the BYE's 200
	c.packet(msg("SIP/2.0 200 OK", "z", "1 INVITE"), 30*ms) // never saw its INVITE
	setups, packets, err := c.take()
	if err != nil {
		t.Fatal(err)
	}
	if packets != 10 || len(setups) != 2 || setups[0] != 700 || setups[1] != 3 {
		t.Errorf("packets %d, setups %v; want 10, [700 3]", packets, setups)
	}
	if s, _, _ := c.take(); len(s) != 0 {
		t.Errorf("take did not reset: %v", s)
	}
}

// TestConfigCallsInProgress: a run whose top step keeps more calls in
// progress than the relays' port range holds is refused up front, with
// the numbers; one that fits is not.
func TestConfigCallsInProgress(t *testing.T) {
	c := Config{Targets: []string{TargetKamailio}, CPS: []int{200, 400}, Hold: 60 * time.Second}
	err := c.defaults()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("400 CPS × 60 s: err %v, want ErrConfig", err)
	}
	for _, want := range []string{"~24000 calls in progress", "10000-32767", "hold 11384", "--hold"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	c = Config{Targets: []string{TargetKamailio}, CPS: []int{200, 400}, Hold: 20 * time.Second}
	if err := c.defaults(); err != nil {
		t.Fatalf("400 CPS × 20 s (8,000 calls): %v", err)
	}
}
