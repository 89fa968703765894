package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/record"
)

// A real SDES-SRTP client from Debian's packages on the customer side:
// baresip (1.0.0) dials with srtp-mand, sending a 440 Hz tone from a WAV
// file; the test answers as the SIP peer, puts the relay in the middle over
// NG and plays the carrier, sending a 1 kHz tone in plain PCMU and RTCP
// sender reports. The carrier hears 440 Hz (the relay decrypted baresip's
// SRTP), baresip hears 1 kHz (it decrypted the relay's SRTP), and SRTCP
// authenticates both ways.
func TestBaresipSRTP(t *testing.T) {
	for _, mode := range xdpModes {
		t.Run(mode, func(t *testing.T) { testBaresipSRTP(t, mode) })
	}
}

func testBaresipSRTP(t *testing.T, mode string) {
	labtest.RequirePrivileged(t)
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Fatalf("baresip is not installed (apt-get install baresip; `make deps` does it): %v", err)
	}
	tri := labtest.NewTriangle(t)
	lr := startLabRelay(t, tri, labConfig(t, tri, mode))
	c := lr.ngClient(t)

	// The SIP peer lives on the relay's customer-side address: the caller
	// namespace reaches the relay, not the callee behind it.
	sipConn, err := tri.Relay.ListenUDP(netip.AddrPortFrom(tri.RelayCallerIP, 5060).String())
	if err != nil {
		t.Fatal(err)
	}
	defer sipConn.Close()
	carrier := netip.AddrPortFrom(tri.CalleeIP, 40000)
	ce, err := tri.Callee.ListenUDP(carrier.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()
	ceRTCP, err := tri.Callee.ListenUDP(netip.AddrPortFrom(carrier.Addr(), carrier.Port()+1).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ceRTCP.Close()

	dir := t.TempDir()
	// baresip hangs up when the file ends. 6 s, so that besides the APP
	// "PING" it sends as RTCP starts, its first sender report (libre sends
	// one every 5 s) crosses the relay as SRTCP too.
	const toneSeconds = 6
	if err := os.WriteFile(filepath.Join(dir, "tone440.wav"), wavFile(toneSamples(440, toneSeconds*8000)), 0o644); err != nil {
		t.Fatal(err)
	}
	uas := netip.AddrPortFrom(tri.RelayCallerIP, 5060)
	writeBaresipConfig(t, dir, tri, uas)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// -t is a backstop: baresip quits by itself even if the test loses it.
	bs, err := tri.Caller.Start(ctx, bin, "-f", dir, "-v", "-t", "25", "-e", "/dial sip:carrier@"+uas.String())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := bs.Stop(); err != nil {
				t.Logf("stopping baresip: %v", err)
			}
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("baresip output:\n%s", bs.Output())
		}
	}()

	// INVITE → NG offer (SRTP from the customer, plain toward the carrier)
	// and NG answer → 200 OK with the relay's SRTP answer.
	sc := &sipPeer{conn: sipConn, local: uas}
	inv := sc.await(t, "INVITE", 15*time.Second) // baresip starting on a loaded machine: a wait, not a timing
	sc.respond(t, inv, 100, "Trying", "")
	if !strings.Contains(inv.body, " RTP/SAVP ") || !strings.Contains(inv.body, "a=crypto:") {
		t.Fatalf("baresip did not offer SDES-SRTP:\n%s", inv.body)
	}
	callID, fromTag := inv.header("call-id"), tagOf(inv.header("from"))
	offer := do(t, c, ng.Dict{"command": "offer", "call-id": callID, "from-tag": fromTag, "sdp": inv.body,
		"direction": []any{"customer", "carrier"}, "transport-protocol": "RTP/AVP"})
	if strings.Contains(offer.Str("sdp"), "a=crypto") || !strings.Contains(offer.Str("sdp"), " RTP/AVP ") {
		t.Fatalf("carrier-side offer must be plain RTP/AVP without crypto:\n%s", offer.Str("sdp"))
	}
	answer := do(t, c, ng.Dict{"command": "answer", "call-id": callID, "from-tag": fromTag, "to-tag": "carrier",
		"sdp": g711SDP(carrier.Addr(), int(carrier.Port()))})
	ansSDP := answer.Str("sdp")
	rc := relayCrypto(t, ansSDP)
	if !strings.Contains(ansSDP, " RTP/SAVP ") {
		t.Fatalf("answer toward baresip must be RTP/SAVP:\n%s", ansSDP)
	}
	t.Logf("baresip offered:\n%srelay answered (suite %s, tag %d):\n%s", inv.body, rc.Suite, rc.Tag, ansSDP)
	sc.toTag = "carrier"
	sc.respond(t, inv, 200, "OK", ansSDP)

	// The carrier: hear what arrives, and talk at 1 kHz until the call
	// ends, with a sender report every 500 ms.
	heard := newToneSink(ce)
	toRelay := mediaOf(t, offer.Str("sdp"))
	talkDone := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(talkDone)
		talk(ce, ceRTCP, toRelay, 1000, quit)
	}()

	// baresip hangs up when its WAV source runs dry; if it does not, the
	// carrier does.
	bye, ok := sc.awaitBye(t, inv, ansSDP, (toneSeconds+3)*time.Second)
	close(quit)
	<-talkDone
	if ok {
		sc.respond(t, bye, 200, "OK", "")
	} else {
		t.Log("baresip did not hang up; sending BYE")
		sc.bye(t, inv)
	}

	// Stop baresip first: its last RTCP packet is sent as it tears down.
	stop()
	q := do(t, c, ng.Dict{"command": "query", "call-id": callID})
	cust := q.Dict("tags").Dict(fromTag).List("medias")[0].(ng.Dict).List("streams")
	rtp, rtcp := cust[0].(ng.Dict), cust[1].(ng.Dict)
	if st := rtp.Dict("stats"); statInt(st, "drops") != 0 || statInt(st, "packets") < 50*(toneSeconds-1) || !hasFlag(rtp, "confirmed") {
		t.Errorf("customer RTP: want baresip's SRTP latched, ≥ %d packets and no drops, got %v", 50*(toneSeconds-1), rtp)
	}
	// baresip 1.0.0 sends two RTCP packets in the clear, outside its SRTP
	// session: an APP "PING" to open NAT pinholes before SRTP is set up
	// (it sends it again, encrypted, once SRTP is up), and the RTCP BYE
	// after SRTP is torn down. The relay must drop those two (they do not
	// authenticate) and take the SRTCP ping and report in between.
	if st := rtcp.Dict("stats"); statInt(st, "drops") > 2 || statInt(st, "packets") < 2 || !hasFlag(rtcp, "confirmed") {
		t.Errorf("customer RTCP: want baresip's SRTCP (ping and report) latched and at most its 2 plaintext packets dropped, got %v", rtcp)
	}
	do(t, c, ng.Dict{"command": "delete", "call-id": callID, "from-tag": fromTag})

	// The carrier heard baresip's 440 Hz: the relay decrypted its SRTP.
	samples, pkts, bad := heard.result()
	if bad != 0 {
		t.Errorf("carrier got %d packets that are not PCMU", bad)
	}
	if want := 50 * (toneSeconds - 1); pkts < want {
		t.Errorf("carrier got %d PCMU packets, want ≥ %d (%d s at 50 pps, less a second's slack)", pkts, want, toneSeconds)
	}
	checkTone(t, "carrier hears baresip", samples, 440, 1000, 2*8000)

	// baresip heard the carrier's 1 kHz: it decrypted the relay's SRTP.
	dec, _ := filepath.Glob(filepath.Join(dir, "dump-*-dec.wav"))
	if len(dec) != 1 {
		t.Fatalf("baresip's decoded-audio dump: found %v", dec)
	}
	got, err := readWAVMono16(dec[0])
	if err != nil {
		t.Fatal(err)
	}
	checkTone(t, "baresip hears the carrier", got, 1000, 440, 2*8000)

	// ... and the carrier's sender reports, which the relay sent on as
	// SRTCP: rtcpsummary prints its line only once an SR came through.
	out := bs.Output()
	if strings.Contains(out, "srtp: failed to decrypt") {
		t.Error("baresip could not decrypt some of the relay's SRTP/SRTCP")
	}
	if !strings.Contains(out, "EX=BareSip;CS=") {
		t.Error("baresip got no RTCP sender report through the relay (no rtcpsummary line)")
	}
}

func writeBaresipConfig(t *testing.T, dir string, tri *testbed.Triangle, uas netip.AddrPort) {
	t.Helper()
	c := testbed.BaresipConfig{Dir: dir, Listen: tri.CallerIP, Iface: tri.CallerLink.A.Name, DNS: uas.Addr(),
		Source: filepath.Join(dir, "tone440.wav")}
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	accounts := fmt.Sprintf("<sip:customer@%s>;regint=0;answermode=manual;mediaenc=srtp-mand;audio_codecs=PCMU/8000/1\n", tri.CallerIP)
	contacts := fmt.Sprintf("\"Carrier\" <sip:carrier@%s>\n", uas)
	for name, body := range map[string]string{"accounts": accounts, "contacts": contacts} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sipPeer is the test's SIP user agent server: enough of RFC 3261 over UDP
// to answer one INVITE, take its ACK and end the call.
type sipPeer struct {
	conn  *net.UDPConn
	local netip.AddrPort
	toTag string
	last  []byte // last final response, for retransmitted INVITEs
}

type sipMsg struct {
	from  netip.AddrPort
	start string // request or status line
	hdrs  [][2]string
	body  string
}

func (m *sipMsg) method() string { f := strings.Fields(m.start); return f[0] }

func (m *sipMsg) isRequest() bool { return !strings.HasPrefix(m.start, "SIP/2.0 ") }

func (m *sipMsg) header(name string) string {
	for _, h := range m.hdrs {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

var sipCompact = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length", "c": "content-type"}

func parseSIP(b []byte, from netip.AddrPort) (*sipMsg, error) {
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return nil, errors.New("sip: no end of headers")
	}
	lines := strings.Split(string(head), "\r\n")
	m := &sipMsg{from: from, start: lines[0], body: string(body)}
	if len(strings.Fields(m.start)) < 3 {
		return nil, fmt.Errorf("sip: bad start line %q", m.start)
	}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("sip: bad header %q", l)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if full, ok := sipCompact[k]; ok {
			k = full
		}
		m.hdrs = append(m.hdrs, [2]string{k, strings.TrimSpace(v)})
	}
	return m, nil
}

func tagOf(h string) string {
	_, tag, _ := strings.Cut(h, ";tag=")
	tag, _, _ = strings.Cut(tag, ";")
	return tag
}

// read returns the next SIP message, or nil at the deadline.
func (p *sipPeer) read(t *testing.T, deadline time.Time) *sipMsg {
	t.Helper()
	buf := make([]byte, 65535)
	for {
		if err := p.conn.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseSIP(buf[:n], from)
		if err != nil {
			t.Logf("ignoring %v:\n%s", err, buf[:n])
			continue
		}
		return m
	}
}

func (p *sipPeer) await(t *testing.T, method string, wait time.Duration) *sipMsg {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m := p.read(t, deadline)
		if m == nil {
			t.Fatalf("no %s within %v", method, wait)
		}
		if m.isRequest() && m.method() == method {
			return m
		}
		t.Logf("ignoring %s while waiting for %s", m.start, method)
	}
}

// awaitBye takes the ACK (retransmitting the 200 OK until it comes) and
// waits for baresip's BYE; ok is false if none came within wait.
func (p *sipPeer) awaitBye(t *testing.T, inv *sipMsg, sdpBody string, wait time.Duration) (bye *sipMsg, ok bool) {
	t.Helper()
	end := time.Now().Add(wait)
	acked := false
	for time.Now().Before(end) {
		deadline := end
		if !acked {
			deadline = time.Now().Add(500 * time.Millisecond)
		}
		m := p.read(t, deadline)
		switch {
		case m == nil:
			if !acked {
				p.send(t, inv.from, p.last)
			}
		case !m.isRequest():
			t.Logf("ignoring response %s", m.start)
		case m.method() == "ACK":
			acked = true
		case m.method() == "INVITE":
			p.send(t, inv.from, p.last)
		case m.method() == "BYE":
			if !acked {
				t.Error("BYE before ACK")
			}
			return m, true
		default:
			p.respond(t, m, 405, "Method Not Allowed", "")
		}
	}
	if !acked {
		t.Fatal("baresip never ACKed the 200 OK")
	}
	return nil, false
}

// bye ends the call from the carrier's side and waits for the 200.
func (p *sipPeer) bye(t *testing.T, inv *sipMsg) {
	t.Helper()
	target := inv.header("contact")
	if _, uri, ok := strings.Cut(target, "<"); ok {
		target, _, _ = strings.Cut(uri, ">")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BYE %s SIP/2.0\r\n", target)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK-xtrunk-bye;rport\r\n", p.local)
	fmt.Fprintf(&b, "From: %s;tag=%s\r\n", inv.header("to"), p.toTag)
	fmt.Fprintf(&b, "To: %s\r\n", inv.header("from"))
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", inv.header("call-id"))
	p.send(t, inv.from, []byte(b.String()))
	deadline := time.Now().Add(10 * time.Second) // an event to wait for, not a time to meet: generous for a loaded machine
	for {
		m := p.read(t, deadline)
		if m == nil {
			t.Fatal("no response to BYE")
		}
		if !m.isRequest() && strings.Contains(m.header("cseq"), "BYE") {
			return
		}
	}
}

func (p *sipPeer) respond(t *testing.T, req *sipMsg, code int, reason, body string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, h := range req.hdrs {
		if h[0] == "via" {
			fmt.Fprintf(&b, "Via: %s\r\n", h[1])
		}
	}
	to := req.header("to")
	if code > 100 && tagOf(to) == "" && p.toTag != "" {
		to += ";tag=" + p.toTag
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", req.header("from"), to, req.header("call-id"), req.header("cseq"))
	if req.method() == "INVITE" && code == 200 {
		fmt.Fprintf(&b, "Contact: <sip:carrier@%s>\r\n", p.local)
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	msg := []byte(b.String())
	if code >= 200 && req.method() == "INVITE" {
		p.last = msg
	}
	p.send(t, req.from, msg)
}

func (p *sipPeer) send(t *testing.T, to netip.AddrPort, msg []byte) {
	t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(msg, to); err != nil {
		t.Fatal(err)
	}
}

func hasFlag(stream ng.Dict, flag string) bool {
	for _, f := range stream.List("flags") {
		if f == flag {
			return true
		}
	}
	return false
}

// toneSamples is n samples of a tone at 8 kHz, at -12 dBFS.
func toneSamples(freq float64, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
	}
	return s
}

// wavFile is a WAV file of 8 kHz mono 16-bit samples.
func wavFile(s []int16) []byte {
	b := make([]byte, 44, 44+2*len(s))
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*len(s)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*len(s)))
	for _, v := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// readWAVMono16 reads the samples of an 8 kHz mono 16-bit WAV file,
// walking its chunks (libsndfile may add some).
func readWAVMono16(name string) ([]float64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%s: not a WAV file", name)
	}
	var fmtOK bool
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			if size < 16 || binary.LittleEndian.Uint16(body[2:]) != 1 || binary.LittleEndian.Uint32(body[4:]) != 8000 || binary.LittleEndian.Uint16(body[14:]) != 16 {
				return nil, fmt.Errorf("%s: want 8 kHz mono 16-bit, fmt chunk % x", name, body[:16])
			}
			fmtOK = true
		case "data":
			if !fmtOK {
				return nil, fmt.Errorf("%s: data before fmt", name)
			}
			if size > len(body) {
				size = len(body)
			}
			out := make([]float64, size/2)
			for i := range out {
				out[i] = float64(int16(binary.LittleEndian.Uint16(body[2*i:])))
			}
			return out, nil
		}
		off += 8 + size + size&1
	}
	return nil, fmt.Errorf("%s: no data chunk", name)
}

func ulawDecode(u byte) int16 {
	u = ^u
	t := (int(u&0x0f) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

// talk sends 20 ms PCMU packets of a tone from conn to dst, and an RTCP
// sender report every 500 ms from rtcpConn to dst's port + 1, until quit.
func talk(conn, rtcpConn *net.UDPConn, dst netip.AddrPort, freq float64, quit <-chan struct{}) {
	const ssrc = 0xCA221E4
	dstRTCP := netip.AddrPortFrom(dst.Addr(), dst.Port()+1)
	p := make([]byte, 12+160)
	sr := make([]byte, 28)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := uint16(0); ; seq++ {
		select {
		case <-quit:
			return
		case <-tick.C:
		}
		p[0], p[1] = 0x80, 0
		binary.BigEndian.PutUint16(p[2:], seq)
		binary.BigEndian.PutUint32(p[4:], uint32(seq)*160)
		binary.BigEndian.PutUint32(p[8:], ssrc)
		for j := 0; j < 160; j++ {
			x := float64(int(seq)*160 + j)
			p[12+j] = record.EncodeULaw(int16(8000 * math.Sin(2*math.Pi*freq*x/8000)))
		}
		if _, err := conn.WriteToUDPAddrPort(p, dst); err != nil {
			return
		}
		if seq%25 == 24 {
			// SR without report blocks: NTP time, RTP time, packets, octets
			sr[0], sr[1] = 0x80, 200
			binary.BigEndian.PutUint16(sr[2:], 6)
			binary.BigEndian.PutUint32(sr[4:], ssrc)
			now := time.Now()
			binary.BigEndian.PutUint32(sr[8:], uint32(now.Unix()+2208988800))
			binary.BigEndian.PutUint32(sr[12:], uint32(uint64(now.Nanosecond())<<32/1e9))
			binary.BigEndian.PutUint32(sr[16:], uint32(seq)*160)
			binary.BigEndian.PutUint32(sr[20:], uint32(seq)+1)
			binary.BigEndian.PutUint32(sr[24:], (uint32(seq)+1)*160)
			if _, err := rtcpConn.WriteToUDPAddrPort(sr, dstRTCP); err != nil {
				return
			}
		}
	}
}

// toneSink decodes the PCMU arriving on a socket, in arrival order.
type toneSink struct {
	mu      sync.Mutex
	samples []float64
	pkts    int
	bad     int
}

func newToneSink(conn *net.UDPConn) *toneSink {
	s := &toneSink{}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			if n < 12 || buf[0]>>6 != 2 || buf[1]&0x7f != 0 || buf[0]&0x1f != 0 {
				s.bad++
			} else {
				s.pkts++
				for _, u := range buf[12:n] {
					s.samples = append(s.samples, float64(ulawDecode(u)))
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *toneSink) result() (samples []float64, pkts, bad int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]float64(nil), s.samples...), s.pkts, s.bad
}

// checkTone wants at least min samples of audible tone at freq, and no
// audible stretch where other (the tone going the other way) or noise
// dominates. It looks at 50 ms blocks, which hold whole periods of both
// 440 Hz and 1 kHz.
func checkTone(t *testing.T, what string, x []float64, freq, other float64, min int) {
	t.Helper()
	const block = 400
	var loud, good, wrong int
	for i := 0; i+block <= len(x); i += block {
		b := x[i : i+block]
		var energy float64
		for _, v := range b {
			energy += v * v
		}
		if energy/block < 100*100 { // quieter than -50 dBFS: silence or fade
			continue
		}
		loud++
		// Goertzel power of a whole-period sinusoid is energy·N/2.
		frac := goertzel(b, freq) * 2 / (block * energy)
		switch {
		case frac > 0.9:
			good++
		case goertzel(b, other)*2/(block*energy) > 0.1:
			wrong++
		}
	}
	t.Logf("%s: %d samples, %d loud 50 ms blocks, %d of them %v Hz, %d with %v Hz", what, len(x), loud, good, freq, wrong, other)
	if good*block < min {
		t.Errorf("%s: only %d ms of %v Hz tone, want ≥ %d ms", what, good*50, freq, min/8)
	}
	// a block straddling the start or end of the tone may be impure
	if wrong > 0 || loud-good > 2 {
		t.Errorf("%s: %d loud blocks are not a clean %v Hz tone (%d of them hold %v Hz)", what, loud-good, freq, wrong, other)
	}
}
