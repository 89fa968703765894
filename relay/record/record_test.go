package record

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestG711RoundTrip(t *testing.T) {
	for _, s := range []int16{0, 1, -1, 100, -100, 1000, -1000, 8000, -8000, 32000, -32000} {
		u := ulaw[EncodeULaw(s)]
		a := alaw[EncodeALaw(s)]
		tol := float64(max(abs16(s)/16, 16)) // G.711 keeps ~4 significant bits
		if math.Abs(float64(u-s)) > tol || math.Abs(float64(a-s)) > tol {
			t.Errorf("%d: ulaw %d alaw %d", s, u, a)
		}
	}
}

// tonePacket makes 20 ms of a tone at freq, PCMU, for sequence seq.
func tonePacket(freq float64, seq uint16, ssrc uint32, pt uint8) []byte {
	p := make([]byte, 12+160)
	p[0], p[1] = 0x80, pt
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	for i := 0; i < 160; i++ {
		n := float64(int(seq)*160 + i)
		s := int16(8000 * math.Sin(2*math.Pi*freq*n/Rate))
		if pt == 0 {
			p[12+i] = EncodeULaw(s)
		} else {
			p[12+i] = EncodeALaw(s)
		}
	}
	return p
}

// power of freq in samples (Goertzel).
func power(samples []float64, freq float64) float64 {
	w := 2 * math.Pi * freq / Rate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s1, s2 = x+c*s1-s2, s1
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

func readWAV(t *testing.T, name string) (channels int, data [][]float64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || binary.LittleEndian.Uint32(b[24:]) != Rate {
		t.Fatalf("%s: not an 8 kHz WAV", name)
	}
	channels = int(binary.LittleEndian.Uint16(b[22:]))
	pcm := b[44:]
	data = make([][]float64, channels)
	for i := 0; i+2*channels <= len(pcm); i += 2 * channels {
		for c := 0; c < channels; c++ {
			data[c] = append(data[c], float64(int16(binary.LittleEndian.Uint16(pcm[i+2*c:]))))
		}
	}
	return channels, data
}

func TestDualAndMonoTones(t *testing.T) {
	dir := t.TempDir()
	r, err := New(Options{Dir: dir, CallID: "call/1@x", Tags: [2]string{"a", "b"}, Channels: Both}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 2 s: party 0 sends 440 Hz (PCMU), party 1 1 kHz (PCMA); party 1
	// loses packets 20-29, which must become silence, not shorten the file
	for i := 0; i < 100; i++ {
		now := int64(i) * int64(20*time.Millisecond)
		r.Packet(0, tonePacket(440, uint16(i), 1, 0), now)
		if i < 20 || i >= 30 {
			r.Packet(1, tonePacket(1000, uint16(i+5000), 2, 8), now)
		}
		r.Packet(1, []byte{0x80, 101, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4}, now) // DTMF: ignored
	}
	res, err := r.Close(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 || math.Abs(res.DurationSec-2.0) > 0.04 || res.PacketsLost != 10 || res.CopiesLost != 3 {
		t.Errorf("result %+v", res)
	}
	ch, dual := readWAV(t, filepath.Join(dir, filepath.Base(res.Files[1])))
	if ch != 2 {
		t.Fatalf("dual file has %d channels", ch)
	}
	if p440, p1k := power(dual[0], 440), power(dual[0], 1000); p440 < 100*p1k {
		t.Errorf("channel 0 should be 440 Hz: %g vs %g", p440, p1k)
	}
	if p440, p1k := power(dual[1], 440), power(dual[1], 1000); p1k < 100*p440 {
		t.Errorf("channel 1 should be 1 kHz: %g vs %g", p1k, p440)
	}
	for i := 20 * 160; i < 30*160; i++ {
		if dual[1][i] != 0 {
			t.Fatalf("lost packets of channel 1 are not silence at sample %d", i)
		}
	}
	ch, mono := readWAV(t, res.Files[0])
	if ch != 1 || len(mono[0]) != 16000 {
		t.Fatalf("mono: %d channels, %d samples", ch, len(mono[0]))
	}
	if p440, p1k, p700 := power(mono[0], 440), power(mono[0], 1000), power(mono[0], 700); p440 < 100*p700 || p1k < 100*p700 {
		t.Errorf("mono must hold both tones: 440 %g, 1k %g, 700 %g", p440, p1k, p700)
	}
	var side Result
	b, err := os.ReadFile(res.Sidecar)
	if err != nil || json.Unmarshal(b, &side) != nil || side.CallID != "call/1@x" || side.Codec != "PCMU" || side.Channels != Both {
		t.Errorf("sidecar %s: %v %+v", res.Sidecar, err, side)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".rec-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := r.Close(0); err != ErrClosed {
		t.Errorf("second close: %v", err)
	}
}

func TestTrimAndPlacement(t *testing.T) {
	dir := t.TempDir()
	r, _ := New(Options{Dir: dir, CallID: "trim", Channels: Mono, Trim: true}, 0)
	// media starts 1 s after the recording and lasts 1 s
	for i := 0; i < 50; i++ {
		r.Packet(0, tonePacket(440, uint16(i), 9, 0), int64(time.Second)+int64(i)*int64(20*time.Millisecond))
	}
	res, err := r.Close(0)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.DurationSec-1.0) > 0.04 || math.Abs(res.TrimmedSec-1.0) > 0.04 {
		t.Errorf("trimmed recording %.3f s (trimmed %.3f s), want 1 s and 1 s", res.DurationSec, res.TrimmedSec)
	}
	r2, _ := New(Options{Dir: dir, CallID: "notrim", Channels: Mono}, 0)
	for i := 0; i < 50; i++ {
		r2.Packet(0, tonePacket(440, uint16(i), 9, 0), int64(time.Second)+int64(i)*int64(20*time.Millisecond))
	}
	res2, _ := r2.Close(0)
	if math.Abs(res2.DurationSec-2.0) > 0.04 {
		t.Errorf("untrimmed recording %.3f s, want 2 s (1 s of leading silence)", res2.DurationSec)
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := New(Options{Dir: t.TempDir(), Channels: "quad"}, 0); err == nil {
		t.Error("channels quad accepted")
	}
	if _, err := New(Options{}, 0); err == nil {
		t.Error("no directory accepted")
	}
}

func FuzzPacket(f *testing.F) {
	f.Add(tonePacket(440, 1, 1, 0), int64(0))
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9}, int64(5))
	f.Fuzz(func(t *testing.T, p []byte, now int64) {
		r, _ := New(Options{Dir: t.TempDir(), Channels: Dual}, 0)
		r.Packet(0, p, now%int64(time.Hour))
		r.Packet(1, p, now%int64(time.Minute))
		r.Abort()
	})
}

// A long recording is streamed to disk as it goes: what the relay holds in
// memory stays a few seconds per channel, whatever the length of the call,
// and the audio is on disk before the recording is stopped.
func TestStreamsToDisk(t *testing.T) {
	dir := t.TempDir()
	r, err := New(Options{Dir: dir, CallID: "long", Channels: Dual}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const secs = 120
	for i := 0; i < secs*50; i++ {
		now := int64(i) * int64(20*time.Millisecond)
		r.Packet(0, tonePacket(440, uint16(i), 1, 0), now)
		r.Packet(1, tonePacket(1000, uint16(i), 2, 0), now)
	}
	r.mu.Lock()
	for i := range r.ch {
		if n := len(r.ch[i].buf); n > 2*window {
			t.Errorf("channel %d holds %d bytes in memory after %d s", i, n, secs)
		}
		st, err := r.ch[i].raw.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if onDisk := float64(st.Size()) / 2 / Rate; onDisk < secs-float64(window)/Rate {
			t.Errorf("channel %d: only %.1f s of %d s on disk before the recording stops", i, onDisk, secs)
		}
	}
	r.mu.Unlock()
	res, err := r.Stop(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res.Files[0]); !os.IsNotExist(err) {
		t.Errorf("Stop wrote %s (%v); writing is Finish's job", res.Files[0], err)
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	ch, dual := readWAV(t, res.Files[0])
	if ch != 2 || len(dual[0]) != secs*Rate {
		t.Fatalf("dual WAV: %d channels, %d samples, want %d", ch, len(dual[0]), secs*Rate)
	}
	// the tone is intact across the window slides: every second of it
	for sec := 0; sec < secs; sec++ {
		x := dual[0][sec*Rate : (sec+1)*Rate]
		if p440, p1k := power(x, 440), power(x, 1000); p440 < 100*p1k {
			t.Fatalf("second %d of channel 0 is not the 440 Hz tone", sec)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".rec-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// Reordered packets land where their timestamps say, within the window;
// one far too late is counted, not written over the past.
func TestLateAndReordered(t *testing.T) {
	dir := t.TempDir()
	r, _ := New(Options{Dir: dir, CallID: "late", Channels: Mono}, 0)
	at := func(i int) int64 { return int64(i) * int64(20*time.Millisecond) }
	for i := 0; i < 500; i++ {
		if i == 100 || i == 200 {
			continue
		}
		r.Packet(0, tonePacket(440, uint16(i), 1, 0), at(i))
		if i == 110 {
			r.Packet(0, tonePacket(440, 100, 1, 0), at(i)) // 200 ms late
		}
	}
	r.Packet(0, tonePacket(440, 200, 1, 0), at(500)) // 6 s late
	res, err := r.Close(0)
	if err != nil {
		t.Fatal(err)
	}
	if res.LatePackets != 1 || res.PacketsLost != 0 {
		t.Errorf("late %d, lost %d; want 1 late (the 6 s one), 0 lost", res.LatePackets, res.PacketsLost)
	}
	_, mono := readWAV(t, res.Files[0])
	if p := power(mono[0][100*160:101*160], 440); p < 1e9 {
		t.Errorf("reordered packet 100 not placed (440 Hz power %g)", p)
	}
	for i := 200 * 160; i < 201*160; i++ {
		if mono[0][i] != 0 {
			t.Fatalf("packet 200, 6 s late, overwrote sample %d", i)
		}
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	r, err := New(Options{Dir: dir, CallID: "gone", Channels: Both}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Packet(0, tonePacket(440, 1, 1, 0), 0)
	r.Abort()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left after Abort: %v", left)
	}
}
