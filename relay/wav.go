package relay

import (
	"encoding/binary"
	"fmt"
)

// WAV files for "play media": G.711 only (μ-law, format tag 7; A-law,
// format tag 6), 8 kHz, mono, 8 bits per sample — what an RTP/AVP call's
// PCMU or PCMA carries byte for byte, so playback needs no transcoding.

// maxMediaBytes caps a media file (about 35 minutes of G.711): a "file"
// or "blob" larger than that is refused rather than held in memory.
const maxMediaBytes = 16 << 20

// RTP payload types of G.711 (RFC 3551).
const (
	ptPCMU = 0
	ptPCMA = 8
)

// wavMedia is a parsed WAV: its RTP payload type and the samples.
type wavMedia struct {
	pt      uint8
	samples []byte
}

// parseWAV reads a RIFF/WAVE file of G.711 samples. It never panics on
// any input; anything else than 8 kHz mono μ/A-law is ErrMediaFormat.
func parseWAV(b []byte) (wavMedia, error) {
	if len(b) > maxMediaBytes {
		return wavMedia{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMediaFormat, len(b), maxMediaBytes)
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return wavMedia{}, fmt.Errorf("%w: not a RIFF/WAVE file", ErrMediaFormat)
	}
	var m wavMedia
	fmtSeen := false
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		if size < 0 || size > len(b)-body {
			if id == "data" && fmtSeen { // a streamed file's data size is often wrong: take what is there
				size = len(b) - body
			} else {
				return wavMedia{}, fmt.Errorf("%w: chunk %q runs past the end", ErrMediaFormat, id)
			}
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return wavMedia{}, fmt.Errorf("%w: short fmt chunk", ErrMediaFormat)
			}
			f := b[body : body+size]
			tag, ch := binary.LittleEndian.Uint16(f[0:2]), binary.LittleEndian.Uint16(f[2:4])
			rate, bits := binary.LittleEndian.Uint32(f[4:8]), binary.LittleEndian.Uint16(f[14:16])
			switch tag {
			case 7:
				m.pt = ptPCMU
			case 6:
				m.pt = ptPCMA
			default:
				return wavMedia{}, fmt.Errorf("%w: format tag %d (only G.711 μ-law 7 and A-law 6)", ErrMediaFormat, tag)
			}
			if ch != 1 || rate != 8000 || bits != 8 {
				return wavMedia{}, fmt.Errorf("%w: %d channels, %d Hz, %d bits (want 1, 8000, 8)", ErrMediaFormat, ch, rate, bits)
			}
			fmtSeen = true
		case "data":
			if !fmtSeen {
				return wavMedia{}, fmt.Errorf("%w: data before fmt", ErrMediaFormat)
			}
			m.samples = b[body : body+size]
			if len(m.samples) == 0 {
				return wavMedia{}, fmt.Errorf("%w: no samples", ErrMediaFormat)
			}
			return m, nil
		}
		off = body + size + size&1 // chunks are word-aligned
	}
	return wavMedia{}, fmt.Errorf("%w: no data chunk", ErrMediaFormat)
}
