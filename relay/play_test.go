package relay

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
)

// testWAV builds a WAV file of G.711 samples (tag 7 μ-law, 6 A-law).
func testWAV(tag uint16, samples []byte) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(4 + 8 + 18 + 8 + len(samples)))
	b.WriteString("WAVEfmt ")
	le(uint32(18))
	le(tag)
	le(uint16(1))
	le(uint32(8000))
	le(uint32(8000))
	le(uint16(1))
	le(uint16(8))
	le(uint16(0))
	b.WriteString("data")
	le(uint32(len(samples)))
	b.Write(samples)
	return b.Bytes()
}

func partySDP(addr netip.AddrPort) string {
	return "v=0\r\no=x 1 1 IN IP4 " + addr.Addr().String() + "\r\ns=-\r\nc=IN IP4 " + addr.Addr().String() +
		"\r\nt=0 0\r\nm=audio " + itoa(int(addr.Port())) + " RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
}

// playCall sets up call id with party "a" at a real UDP socket and party
// "b" on hold; it returns the socket and the relay's port facing "a".
func playCall(t *testing.T, r *Relay, id string) (*net.UDPConn, int) {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	a := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	rep := serve(r, ng.Dict{"command": "offer", "call-id": id, "from-tag": "a", "sdp": partySDP(a), "direction": []any{"priv", "pub"}})
	if rep.Str("result") != "ok" {
		t.Fatalf("offer: %v", rep)
	}
	rep = serve(r, ng.Dict{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b",
		"sdp": partySDP(netip.MustParseAddrPort("0.0.0.0:9"))})
	if rep.Str("result") != "ok" {
		t.Fatalf("answer: %v", rep)
	}
	return pc, mediaPort(t, rep.Str("sdp"))
}

// TestPlayMediaPacketizes plays a 2.5-frame μ-law WAV twice to a real
// UDP socket: five 20 ms frames each time (the last padded with μ-law
// silence), one SSRC, consecutive sequence numbers, timestamps 160 apart,
// the marker on the first, from the relay's port facing the party.
func TestPlayMediaPacketizes(t *testing.T) {
	r := loopbackRelay(t)
	pc, relayPort := playCall(t, r, "play1")
	samples := make([]byte, 400)
	for i := range samples {
		samples[i] = byte(i * 7)
	}
	rep := serve(r, ng.Dict{"command": "play media", "call-id": "play1", "from-tag": "a",
		"blob": string(testWAV(7, samples)), "repeat-times": int64(2)})
	if rep.Str("result") != "ok" || ng.DecodePlayMediaReply(rep).Duration != 50 {
		t.Fatalf("play media: %v", rep)
	}
	want := append(append([]byte{}, samples...), bytes.Repeat([]byte{0xFF}, 80)...)
	var first [12]byte
	buf := make([]byte, 2048)
	for i := 0; i < 6; i++ {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, src, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if int(src.Port()) != relayPort {
			t.Errorf("packet %d from port %d, want the relay's %d", i, src.Port(), relayPort)
		}
		p := buf[:n]
		if n != 12+160 || p[0] != 0x80 || p[1]&0x7F != 0 {
			t.Fatalf("packet %d: %d bytes, header % x", i, n, p[:min(n, 12)])
		}
		if i == 0 {
			copy(first[:], p[:12])
			if p[1]&0x80 == 0 {
				t.Error("first packet without marker")
			}
		} else if p[1]&0x80 != 0 {
			t.Errorf("packet %d has the marker", i)
		}
		seq0, ts0 := binary.BigEndian.Uint16(first[2:]), binary.BigEndian.Uint32(first[4:])
		if got := binary.BigEndian.Uint16(p[2:]); got != seq0+uint16(i) {
			t.Errorf("packet %d seq %d, want %d", i, got, seq0+uint16(i))
		}
		if got := binary.BigEndian.Uint32(p[4:]); got != ts0+uint32(i*160) {
			t.Errorf("packet %d ts %d, want %d", i, got, ts0+uint32(i*160))
		}
		if !bytes.Equal(p[8:12], first[8:12]) {
			t.Errorf("packet %d SSRC changed", i)
		}
		f := i % 3
		if !bytes.Equal(p[12:], want[f*160:(f+1)*160]) {
			t.Errorf("packet %d payload is not frame %d of the file", i, f)
		}
	}
	_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := pc.ReadFromUDPAddrPort(buf); err == nil {
		t.Error("a packet after the two plays")
	}
}

// TestStopMedia ends a long A-law playback: packets come with payload
// type 8 until stop media, none after its reply.
func TestStopMedia(t *testing.T) {
	r := loopbackRelay(t)
	pc, _ := playCall(t, r, "play2")
	rep := serve(r, ng.Dict{"command": "play media", "call-id": "play2", "from-tag": "a",
		"blob": string(testWAV(6, bytes.Repeat([]byte{0x55}, 8000*30)))})
	if rep.Str("result") != "ok" {
		t.Fatalf("play media: %v", rep)
	}
	buf := make([]byte, 2048)
	for i := 0; i < 3; i++ {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil || n < 12 || buf[1]&0x7F != 8 || buf[12] != 0x55 {
			t.Fatalf("packet %d: %v % x", i, err, buf[:min(n, 13)])
		}
	}
	rep = serve(r, ng.Dict{"command": "stop media", "call-id": "play2", "from-tag": "a"})
	if rep.Str("result") != "ok" || ng.DecodeStopMediaReply(rep).LastFramePos < 2 {
		t.Fatalf("stop media: %v", rep)
	}
	// drain what was in flight, then nothing more
	for {
		_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := pc.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
	}
	_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := pc.ReadFromUDPAddrPort(buf); err == nil {
		t.Error("packets after stop media")
	}
}

func TestPlayMediaRefusals(t *testing.T) {
	r := loopbackRelay(t)
	playCall(t, r, "play3")
	good := string(testWAV(7, make([]byte, 160)))
	for name, d := range map[string]ng.Dict{
		"unknown call": {"call-id": "nope", "from-tag": "a", "blob": good},
		"unknown tag":  {"call-id": "play3", "from-tag": "zz", "blob": good},
		"no source":    {"call-id": "play3", "from-tag": "a"},
		"not a wav":    {"call-id": "play3", "from-tag": "a", "blob": "hello"},
		"pcm wav":      {"call-id": "play3", "from-tag": "a", "blob": string(testWAV(1, make([]byte, 160)))},
		"missing file": {"call-id": "play3", "from-tag": "a", "file": "/nonexistent/x.wav"},
	} {
		d["command"] = "play media"
		if rep := serve(r, d); rep.Str("result") != "error" {
			t.Errorf("%s: %v", name, rep)
		}
	}
}
