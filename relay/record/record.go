// Package record turns a call's RTP into WAV files: PCMU/PCMA decoded to
// 16-bit PCM, each packet placed by its RTP timestamp (gaps become
// silence), one channel per party, written as a mono mix and/or a
// dual-channel file, with a JSON sidecar. Files appear atomically: written
// under a temporary name, then renamed.
package record

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Rate is the sample rate of G.711 and of the files.
const Rate = 8000

// Channel layouts.
const (
	Mono = "mono" // both parties mixed
	Dual = "dual" // one party per channel
	Both = "both" // a mono and a dual file
)

// maxSamples caps one channel at 12 hours, so a stuck call cannot eat the
// memory of the relay.
const maxSamples = 12 * 3600 * Rate

// maxSkew is how far (in samples) RTP time may run from arrival time
// before a stream is re-anchored.
const maxSkew = 10 * Rate

// Options describe one recording.
type Options struct {
	Dir      string
	CallID   string
	Tags     [2]string // the parties: channel 0 (offerer), channel 1
	Channels string    // Mono, Dual or Both
	Trim     bool      // cut leading and trailing silence
}

// Recording collects one call's audio. It is safe for concurrent use.
type Recording struct {
	opts    Options
	startNs int64 // monotonic ns of the start
	started time.Time

	mu     sync.Mutex
	ch     [2]channel
	codec  string
	closed bool
}

type channel struct {
	pcm      []int16
	anchored bool
	ssrc     uint32
	firstTS  uint32
	offset   int64 // sample index of firstTS
	// loss by sequence numbers, per RFC 3550's expected - received
	baseSeq  uint16
	maxExt   uint32
	received uint64
	packets  uint64
}

// New starts a recording at monotonic time startNs.
func New(o Options, startNs int64) (*Recording, error) {
	switch o.Channels {
	case "":
		o.Channels = Mono
	case Mono, Dual, Both:
	default:
		return nil, fmt.Errorf("%w: channels %q (want mono, dual or both)", ErrOptions, o.Channels)
	}
	if o.Dir == "" {
		return nil, fmt.Errorf("%w: no recording directory", ErrOptions)
	}
	return &Recording{opts: o, startNs: startNs, started: time.Now()}, nil
}

// Packet adds one RTP packet of party ch (0 or 1) that arrived at
// monotonic time nowNs. Packets that are not PCMU/PCMA (DTMF events,
// comfort noise, RTCP) are ignored.
func (r *Recording) Packet(ch int, p []byte, nowNs int64) {
	if ch < 0 || ch > 1 || len(p) < 12 || p[0]>>6 != 2 {
		return
	}
	pt := p[1] & 0x7f
	var table *[256]int16
	switch pt {
	case 0:
		table = &ulaw
	case 8:
		table = &alaw
	default:
		return
	}
	hdr := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 { // header extension
		if len(p) < hdr+4 {
			return
		}
		hdr += 4 + 4*int(binary.BigEndian.Uint16(p[hdr+2:]))
	}
	end := len(p)
	if p[0]&0x20 != 0 && end > hdr { // padding
		end -= int(p[end-1])
	}
	if hdr >= end {
		return
	}
	payload := p[hdr:end]
	seq := binary.BigEndian.Uint16(p[2:])
	ts := binary.BigEndian.Uint32(p[4:])
	ssrc := binary.BigEndian.Uint32(p[8:])

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.codec == "" {
		r.codec = map[uint8]string{0: "PCMU", 8: "PCMA"}[pt]
	}
	c := &r.ch[ch]
	if !c.anchored || c.ssrc != ssrc {
		// a (new) stream: its first packet is placed by arrival time
		c.anchored, c.ssrc, c.firstTS = true, ssrc, ts
		c.offset = max(0, (nowNs-r.startNs)*Rate/int64(time.Second))
		if c.received == 0 {
			c.baseSeq, c.maxExt = seq, uint32(seq)
		}
	}
	c.packets++
	c.received++
	if d := seq - uint16(c.maxExt); d < 3000 {
		if seq < uint16(c.maxExt) {
			c.maxExt += 1 << 16
		}
		c.maxExt = c.maxExt&^0xffff | uint32(seq)
	}
	at := c.offset + int64(int32(ts-c.firstTS))
	arrival := max(0, (nowNs-r.startNs)*Rate/int64(time.Second))
	if d := at - arrival; d > maxSkew || d < -maxSkew {
		// the timestamp jumped far from the wall clock (a new talk spurt
		// after a long mute, a broken sender): re-anchor rather than
		// allocate minutes of silence or overwrite the past
		c.firstTS, c.offset, at = ts, arrival, arrival
	}
	if at < 0 || at+int64(len(payload)) > maxSamples {
		return
	}
	if need := int(at) + len(payload); need > len(c.pcm) {
		if need > cap(c.pcm) {
			grown := make([]int16, need, max(need, 2*cap(c.pcm), Rate))
			copy(grown, c.pcm)
			c.pcm = grown
		} else {
			c.pcm = c.pcm[:need]
		}
	}
	dst := c.pcm[at:]
	for i, b := range payload {
		dst[i] = table[b]
	}
}

// Result describes the files of a finished recording (the sidecar holds
// the same).
type Result struct {
	CallID      string    `json:"call_id"`
	Tags        [2]string `json:"tags"`
	Start       time.Time `json:"start"`
	DurationSec float64   `json:"duration"`
	Channels    string    `json:"channels"`
	Codec       string    `json:"codec"`
	SampleRate  int       `json:"sample_rate"`
	Packets     [2]uint64 `json:"packets"`
	PacketsLost uint64    `json:"packets_lost"` // by sequence-number gaps
	CopiesLost  uint64    `json:"copies_lost"`  // fast-path copies that never reached the recorder
	TrimmedSec  float64   `json:"trimmed,omitempty"`
	Files       []string  `json:"files"`
	Sidecar     string    `json:"sidecar"`
}

// Close ends the recording and writes its files. copiesLost is what the
// fast path could not deliver to the recorder.
func (r *Recording) Close(copiesLost uint64) (Result, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Result{}, ErrClosed
	}
	r.closed = true
	ch := r.ch
	r.mu.Unlock()

	res := Result{CallID: r.opts.CallID, Tags: r.opts.Tags, Start: r.started, Channels: r.opts.Channels,
		Codec: r.codec, SampleRate: Rate, CopiesLost: copiesLost}
	n := max(len(ch[0].pcm), len(ch[1].pcm))
	for i := range ch {
		res.Packets[i] = ch[i].packets
		if ch[i].received > 0 {
			expected := uint64(ch[i].maxExt-uint32(ch[i].baseSeq)) + 1
			if expected > ch[i].received {
				res.PacketsLost += expected - ch[i].received
			}
		}
		ch[i].pcm = append(ch[i].pcm, make([]int16, n-len(ch[i].pcm))...)
	}
	from, to := 0, n
	if r.opts.Trim {
		from, to = trimBounds(ch[0].pcm, ch[1].pcm)
		res.TrimmedSec = float64(n-(to-from)) / Rate
	}
	res.DurationSec = float64(to-from) / Rate
	if err := os.MkdirAll(r.opts.Dir, 0o750); err != nil {
		return res, err
	}
	base := filepath.Join(r.opts.Dir, fileBase(r.opts.CallID, r.started))
	write := func(name string, channels int, fill func(dst []int16)) error {
		samples := make([]int16, (to-from)*channels)
		fill(samples)
		if err := writeAtomic(name, wav(samples, channels)); err != nil {
			return err
		}
		res.Files = append(res.Files, name)
		return nil
	}
	a, b := ch[0].pcm[from:to], ch[1].pcm[from:to]
	if r.opts.Channels == Mono || r.opts.Channels == Both {
		name := base + ".wav"
		if r.opts.Channels == Both {
			name = base + "-mono.wav"
		}
		if err := write(name, 1, func(dst []int16) { mix(dst, a, b) }); err != nil {
			return res, err
		}
	}
	if r.opts.Channels == Dual || r.opts.Channels == Both {
		name := base + ".wav"
		if r.opts.Channels == Both {
			name = base + "-dual.wav"
		}
		if err := write(name, 2, func(dst []int16) { interleave(dst, a, b) }); err != nil {
			return res, err
		}
	}
	res.Sidecar = base + ".json"
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return res, err
	}
	return res, writeAtomic(res.Sidecar, append(js, '\n'))
}

func mix(dst, a, b []int16) {
	for i := range dst {
		s := int32(a[i]) + int32(b[i])
		dst[i] = int16(min(max(s, -32768), 32767))
	}
}

func interleave(dst, a, b []int16) {
	for i := range a {
		dst[2*i], dst[2*i+1] = a[i], b[i]
	}
}

// silence is the level under which trim-silence cuts (about -48 dBFS).
const silence = 128

func trimBounds(a, b []int16) (from, to int) {
	loud := func(i int) bool { return abs16(a[i]) > silence || abs16(b[i]) > silence }
	from, to = 0, len(a)
	for from < to && !loud(from) {
		from++
	}
	for to > from && !loud(to-1) {
		to--
	}
	return from, to
}

func abs16(v int16) int32 {
	if v < 0 {
		return -int32(v)
	}
	return int32(v)
}

// fileBase makes a file name from the call-id: anything but letters,
// digits, '-', '_' and '.' becomes '_'.
func fileBase(callID string, t time.Time) string {
	var b strings.Builder
	for _, r := range callID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 100 {
			break
		}
	}
	return fmt.Sprintf("%s-%d", b.String(), t.UnixNano())
}

func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".rec-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o640)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// wav encodes 16-bit little-endian PCM at Rate.
func wav(samples []int16, channels int) []byte {
	data := len(samples) * 2
	b := make([]byte, 44+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], uint16(channels))
	binary.LittleEndian.PutUint32(b[24:], Rate)
	binary.LittleEndian.PutUint32(b[28:], uint32(Rate*channels*2))
	binary.LittleEndian.PutUint16(b[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}

var (
	// ErrOptions is returned for unusable recording options.
	ErrOptions = errors.New("recording options")
	// ErrClosed is returned when a recording is closed twice.
	ErrClosed = errors.New("recording already closed")
)
