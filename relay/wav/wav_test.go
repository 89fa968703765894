package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
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

func TestParseWAVErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": testWAV(7, make([]byte, 10))[:30],
		"stereo":    bytes.Replace(testWAV(7, make([]byte, 10)), []byte{7, 0, 1, 0}, []byte{7, 0, 2, 0}, 1),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	m, err := Parse(testWAV(6, []byte{1, 2, 3}))
	if err != nil || m.PT != PCMA || !bytes.Equal(m.Samples, []byte{1, 2, 3}) {
		t.Errorf("A-law: %+v %v", m, err)
	}
}

func FuzzParseWAV(f *testing.F) {
	f.Add(testWAV(7, []byte{1, 2, 3}))
	f.Add(testWAV(6, make([]byte, 400)))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err == nil && len(m.Samples) == 0 {
			t.Error("accepted without samples")
		}
	})
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, m := range []Media{{PT: PCMU, Samples: []byte{1, 2, 3}}, {PT: PCMA, Samples: make([]byte, 320)}} {
		got, err := Parse(Encode(m))
		if err != nil || got.PT != m.PT || !bytes.Equal(got.Samples, m.Samples) {
			t.Errorf("%+v: %+v %v", m, got, err)
		}
	}
}
