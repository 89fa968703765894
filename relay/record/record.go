// Package record turns a call's RTP into WAV files: PCMU/PCMA decoded to
// 16-bit PCM, each packet placed by its RTP timestamp (gaps become
// silence), one channel per party, written as a mono mix and/or a
// dual-channel file, with a JSON sidecar.
//
// A recording holds only a few seconds of audio in memory: samples are
// placed in a small window per channel (so late and reordered packets
// still land where they belong) and what slides out of it is written to a
// temporary raw file as the call goes on. Stop ends it and says which
// files are coming; Finish, which a caller runs where it may block (not
// under a call's lock), turns the raw files into WAVs. Files appear
// atomically: written under a temporary name, then renamed; the sidecar
// is written last.
package record

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// maxSamples caps one channel at 12 hours, so a stuck call cannot fill
// the disk.
const maxSamples = 12 * 3600 * Rate

// maxSkew is how far (in samples) RTP time may run from arrival time
// before a stream is re-anchored.
const maxSkew = 10 * Rate

// window is how many samples of each channel are held in memory; a
// packet arriving more than window/2 behind the newest is too late and
// dropped. Two seconds of reordering is more than any jitter buffer
// allows.
const window = 4 * Rate

// Options describe one recording.
type Options struct {
	Dir      string
	CallID   string
	Tags     [2]string // the parties: channel 0 (offerer), channel 1
	Channels string    // Mono, Dual or Both
	Trim     bool      // cut leading and trailing silence
}

// CheckChannels validates a channel layout ("" means Mono).
func CheckChannels(ch string) error {
	switch ch {
	case "", Mono, Dual, Both:
		return nil
	}
	return fmt.Errorf("%w: channels %q (want mono, dual or both)", ErrOptions, ch)
}

// Recording collects one call's audio. It is safe for concurrent use.
type Recording struct {
	opts    Options
	startNs int64 // monotonic ns of the start
	started time.Time
	base    string // path of the final files, without extension

	mu      sync.Mutex
	ch      [2]channel
	codec   string
	stopped bool
	res     Result
	err     error // first write error; the recording is then lost
}

type channel struct {
	raw *os.File // the channel's PCM so far (int16 LE), a temporary file

	// buf holds samples [base, base+window) as int16 LE; n is how many
	// of them have been written to (the rest is silence)
	buf  []byte
	base int64
	n    int64
	end  int64 // one past the last sample placed

	// trim bounds: first and one past the last sample above silence
	loudFrom, loudTo int64

	anchored bool
	ssrc     uint32
	firstTS  uint32
	offset   int64 // sample index of firstTS
	// loss by sequence numbers, per RFC 3550's expected - received
	baseSeq  uint16
	maxExt   uint32
	received uint64
	packets  uint64
	late     uint64 // packets that arrived after their place left the window
}

// New starts a recording at monotonic time startNs. It creates the
// recording's temporary files in o.Dir.
func New(o Options, startNs int64) (*Recording, error) {
	if err := CheckChannels(o.Channels); err != nil {
		return nil, err
	}
	if o.Channels == "" {
		o.Channels = Mono
	}
	if o.Dir == "" {
		return nil, fmt.Errorf("%w: no recording directory", ErrOptions)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWrite, err)
	}
	r := &Recording{opts: o, startNs: startNs, started: time.Now()}
	r.base = filepath.Join(o.Dir, fileBase(o.CallID, r.started))
	for i := range r.ch {
		f, err := os.CreateTemp(o.Dir, ".rec-*.raw")
		if err != nil {
			r.removeRaw()
			return nil, fmt.Errorf("%w: %w", ErrWrite, err)
		}
		r.ch[i] = channel{raw: f, buf: make([]byte, 2*window), loudFrom: -1}
	}
	return r, nil
}

// Packet adds one RTP packet of party ch (0 or 1) that arrived at
// monotonic time nowNs. Packets that are not PCMU/PCMA (DTMF events,
// comfort noise, RTCP) are ignored. It allocates nothing; every two
// seconds of audio per channel it writes what left the window to the raw
// file (one write to the page cache).
func (r *Recording) Packet(ch int, p []byte, nowNs int64) {
	if ch < 0 || ch > 1 || len(p) < 12 || p[0]>>6 != 2 {
		return
	}
	pt := p[1] & 0x7f
	var table *[256]int16
	var codec string
	switch pt {
	case 0:
		table, codec = &ulaw, "PCMU"
	case 8:
		table, codec = &alaw, "PCMA"
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
	if r.stopped || r.err != nil {
		return
	}
	if r.codec == "" {
		r.codec = codec
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
		// write minutes of silence or overwrite the past
		c.firstTS, c.offset, at = ts, arrival, arrival
	}
	n := int64(len(payload))
	if at < 0 || at+n > maxSamples || n > window/2 {
		return
	}
	if at < c.base {
		c.late++
		return
	}
	if at+n > c.base+window {
		// slide: keep the newest half window for late packets
		if err := c.slide(at + n - window/2); err != nil {
			r.err = err
			return
		}
	}
	off := 2 * (at - c.base)
	for i, b := range payload {
		v := table[b]
		binary.LittleEndian.PutUint16(c.buf[off+2*int64(i):], uint16(v))
		if v > silence || v < -silence {
			if c.loudFrom < 0 || at+int64(i) < c.loudFrom {
				c.loudFrom = at + int64(i)
			}
			c.loudTo = max(c.loudTo, at+int64(i)+1)
		}
	}
	c.n = max(c.n, at+n-c.base)
	c.end = max(c.end, at+n)
}

// slide writes the window's samples before newBase to the raw file and
// moves the window there (silence is not written: the file's holes read
// as zeros).
func (c *channel) slide(newBase int64) error {
	shift := newBase - c.base
	if w := min(shift, c.n); w > 0 {
		if _, err := c.raw.WriteAt(c.buf[:2*w], 2*c.base); err != nil {
			return fmt.Errorf("%w: %w", ErrWrite, err)
		}
	}
	if shift < window {
		copy(c.buf, c.buf[2*shift:])
		clear(c.buf[2*(window-shift):])
	} else {
		clear(c.buf)
	}
	c.base, c.n = newBase, max(0, c.n-shift)
	return nil
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
	LatePackets uint64    `json:"late_packets,omitempty"`
	TrimmedSec  float64   `json:"trimmed,omitempty"`
	Files       []string  `json:"files"`
	Sidecar     string    `json:"sidecar"`

	from, to int64 // the samples written
}

// Stop ends the recording: later packets are ignored. It returns what
// Finish is going to write, without writing it; copiesLost is what the
// fast path could not deliver to the recorder. It does no I/O.
func (r *Recording) Stop(copiesLost uint64) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return Result{}, ErrClosed
	}
	r.stopped = true
	res := Result{CallID: r.opts.CallID, Tags: r.opts.Tags, Start: r.started, Channels: r.opts.Channels,
		Codec: r.codec, SampleRate: Rate, CopiesLost: copiesLost}
	n := max(r.ch[0].end, r.ch[1].end)
	for i := range r.ch {
		c := &r.ch[i]
		res.Packets[i] = c.packets
		res.LatePackets += c.late
		if c.received > 0 {
			expected := uint64(c.maxExt-uint32(c.baseSeq)) + 1
			if expected > c.received {
				res.PacketsLost += expected - c.received
			}
		}
	}
	res.from, res.to = 0, n
	if r.opts.Trim {
		res.from, res.to = n, n
		for i := range r.ch {
			if c := &r.ch[i]; c.loudFrom >= 0 {
				res.from = min(res.from, c.loudFrom)
			}
		}
		if res.from < n {
			res.to = max(r.ch[0].loudTo, r.ch[1].loudTo)
		} else {
			res.from, res.to = 0, 0
		}
		res.TrimmedSec = float64(n-(res.to-res.from)) / Rate
	}
	res.DurationSec = float64(res.to-res.from) / Rate
	switch r.opts.Channels {
	case Mono, Dual:
		res.Files = []string{r.base + ".wav"}
	case Both:
		res.Files = []string{r.base + "-mono.wav", r.base + "-dual.wav"}
	}
	res.Sidecar = r.base + ".json"
	r.res = res
	return res, r.err
}

// Finish writes the files Stop announced and removes the temporary ones.
// It blocks on disk I/O: run it where that is harmless. Call it once,
// after Stop.
func (r *Recording) Finish() error {
	r.mu.Lock()
	if !r.stopped {
		r.mu.Unlock()
		return errNotStopped
	}
	err, res := r.err, r.res
	r.mu.Unlock()
	defer r.removeRaw()
	if err != nil {
		return err
	}
	for i := range r.ch {
		c := &r.ch[i]
		if err := c.slide(c.base + window); err != nil {
			return err
		}
	}
	for i, name := range res.Files {
		channels := 1
		if r.opts.Channels == Dual || (r.opts.Channels == Both && i == 1) {
			channels = 2
		}
		if err := r.writeWAV(name, channels, res.from, res.to); err != nil {
			return fmt.Errorf("%w: %w", ErrWrite, err)
		}
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(res.Sidecar, func(w io.Writer) error { _, err := w.Write(append(js, '\n')); return err }); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// Close stops the recording and writes its files (Stop, then Finish).
func (r *Recording) Close(copiesLost uint64) (Result, error) {
	res, err := r.Stop(copiesLost)
	if errors.Is(err, ErrClosed) {
		return res, err
	}
	if ferr := r.Finish(); err == nil {
		err = ferr
	}
	return res, err
}

// Abort drops the recording and its temporary files; nothing is written.
func (r *Recording) Abort() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.removeRaw()
}

func (r *Recording) removeRaw() {
	for i := range r.ch {
		if f := r.ch[i].raw; f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
}

// writeWAV writes samples [from, to) of the raw channel files as a WAV
// of 1 (mixed) or 2 (interleaved) channels, a block at a time.
func (r *Recording) writeWAV(name string, channels int, from, to int64) error {
	return writeAtomic(name, func(w io.Writer) error {
		if _, err := w.Write(wavHeader(to-from, channels)); err != nil {
			return err
		}
		const block = 4096 // samples
		a, b := make([]byte, 2*block), make([]byte, 2*block)
		out := make([]byte, 2*block*channels)
		for at := from; at < to; at += block {
			k := min(block, to-at)
			if err := readSamples(r.ch[0].raw, a[:2*k], at); err != nil {
				return err
			}
			if err := readSamples(r.ch[1].raw, b[:2*k], at); err != nil {
				return err
			}
			for i := int64(0); i < k; i++ {
				x := int16(binary.LittleEndian.Uint16(a[2*i:]))
				y := int16(binary.LittleEndian.Uint16(b[2*i:]))
				if channels == 1 {
					s := int32(x) + int32(y)
					binary.LittleEndian.PutUint16(out[2*i:], uint16(int16(min(max(s, -32768), 32767))))
				} else {
					binary.LittleEndian.PutUint16(out[4*i:], uint16(x))
					binary.LittleEndian.PutUint16(out[4*i+2:], uint16(y))
				}
			}
			if _, err := w.Write(out[:2*k*int64(channels)]); err != nil {
				return err
			}
		}
		return nil
	})
}

// readSamples reads dst from f at sample index at; past the end of the
// file is silence.
func readSamples(f *os.File, dst []byte, at int64) error {
	n, err := f.ReadAt(dst, 2*at)
	if err == io.EOF {
		err = nil
	}
	clear(dst[n:])
	return err
}

// silence is the level under which trim-silence cuts (about -48 dBFS).
const silence = 128

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

// writeAtomic writes name through fill under a temporary name, syncs it
// and renames it into place.
func writeAtomic(name string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".rec-*")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(tmp, 64<<10)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
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

// wavHeader is the 44-byte header of a 16-bit PCM WAV at Rate holding
// samples samples per channel.
func wavHeader(samples int64, channels int) []byte {
	data := uint32(samples * 2 * int64(channels))
	b := make([]byte, 44)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], 36+data)
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], uint16(channels))
	binary.LittleEndian.PutUint32(b[24:], Rate)
	binary.LittleEndian.PutUint32(b[28:], uint32(Rate*channels*2))
	binary.LittleEndian.PutUint16(b[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], data)
	return b
}
