// Package wav reads and writes the WAV files media playback uses: 8 kHz
// mono G.711 (μ-law, format tag 7; A-law, format tag 6), 8 bits a sample —
// what an RTP/AVP call's PCMU or PCMA carries byte for byte, so playback
// needs no transcoding. The relay's "play media" parses them; xtrunk sip
// splits a long <Play> file into pieces that fit one NG datagram.
package wav

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// MaxBytes caps a media file (about 35 minutes of G.711): a "file"
// or "blob" larger than that is refused rather than held in memory.
const MaxBytes = 16 << 20

// RTP payload types of G.711 (RFC 3551).
const (
	PCMU = 0
	PCMA = 8
)

// Media is a parsed WAV: its RTP payload type (PCMU or PCMA) and its
// samples.
type Media struct {
	PT      uint8
	Samples []byte
}

// Parse reads a RIFF/WAVE file of G.711 samples. It never panics on
// any input; anything else than 8 kHz mono μ/A-law is ErrFormat.
func Parse(b []byte) (Media, error) {
	if len(b) > MaxBytes {
		return Media{}, fmt.Errorf("%w: %d bytes, at most %d", ErrFormat, len(b), MaxBytes)
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return Media{}, fmt.Errorf("%w: not a RIFF/WAVE file", ErrFormat)
	}
	var m Media
	fmtSeen := false
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		if size < 0 || size > len(b)-body {
			if id == "data" && fmtSeen { // a streamed file's data size is often wrong: take what is there
				size = len(b) - body
			} else {
				return Media{}, fmt.Errorf("%w: chunk %q runs past the end", ErrFormat, id)
			}
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return Media{}, fmt.Errorf("%w: short fmt chunk", ErrFormat)
			}
			f := b[body : body+size]
			tag, ch := binary.LittleEndian.Uint16(f[0:2]), binary.LittleEndian.Uint16(f[2:4])
			rate, bits := binary.LittleEndian.Uint32(f[4:8]), binary.LittleEndian.Uint16(f[14:16])
			switch tag {
			case 7:
				m.PT = PCMU
			case 6:
				m.PT = PCMA
			default:
				return Media{}, fmt.Errorf("%w: format tag %d (only G.711 μ-law 7 and A-law 6)", ErrFormat, tag)
			}
			if ch != 1 || rate != 8000 || bits != 8 {
				return Media{}, fmt.Errorf("%w: %d channels, %d Hz, %d bits (want 1, 8000, 8)", ErrFormat, ch, rate, bits)
			}
			fmtSeen = true
		case "data":
			if !fmtSeen {
				return Media{}, fmt.Errorf("%w: data before fmt", ErrFormat)
			}
			m.Samples = b[body : body+size]
			if len(m.Samples) == 0 {
				return Media{}, fmt.Errorf("%w: no samples", ErrFormat)
			}
			return m, nil
		}
		off = body + size + size&1 // chunks are word-aligned
	}
	return Media{}, fmt.Errorf("%w: no data chunk", ErrFormat)
}

// Encode writes m as a canonical WAV file (fmt chunk of 16 bytes, data).
func Encode(m Media) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	tag := uint16(7)
	if m.PT == PCMA {
		tag = 6
	}
	b.WriteString("RIFF")
	le(uint32(4 + 8 + 16 + 8 + len(m.Samples) + len(m.Samples)&1))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), tag, uint16(1), uint32(8000), uint32(8000), uint16(1), uint16(8)} {
		le(v)
	}
	b.WriteString("data")
	le(uint32(len(m.Samples)))
	b.Write(m.Samples)
	if len(m.Samples)&1 == 1 {
		b.WriteByte(0) // chunks are word-aligned
	}
	return b.Bytes()
}
