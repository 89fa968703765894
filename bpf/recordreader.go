package bpf

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf/perf"
)

// RecordCopy is one packet the fast path copied for a recording.
type RecordCopy struct {
	Key    Key    // the relay address:port it arrived at
	NsMono uint64 // bpf_ktime_get_ns() on arrival
	Frame  []byte // the Ethernet frame as it arrived (valid until the next Read)
}

// RecordReader reads the fast path's recording copies.
type RecordReader struct {
	rd   *perf.Reader
	rec  perf.Record
	lost uint64
}

// NewRecordReader opens the recording perf buffers, perCPU bytes each.
func (d *Dataplane) NewRecordReader(perCPU int) (*RecordReader, error) {
	rd, err := perf.NewReader(d.objs.XtrRecordV3, perCPU)
	if err != nil {
		return nil, fmt.Errorf("recording perf buffer: %w", err)
	}
	return &RecordReader{rd: rd}, nil
}

// Read blocks for the next copy. Samples the kernel had to drop because
// the buffer was full are added to Lost.
func (r *RecordReader) Read(c *RecordCopy) error {
	for {
		if err := r.rd.ReadInto(&r.rec); err != nil {
			return err
		}
		if r.rec.LostSamples > 0 {
			r.lost += r.rec.LostSamples
			continue
		}
		raw := r.rec.RawSample
		const metaLen = int(unsafe.Sizeof(relayXtrRecMeta{}))
		if len(raw) < metaLen {
			continue
		}
		m := (*relayXtrRecMeta)(unsafe.Pointer(&raw[0]))
		n := min(int(m.Len), len(raw)-metaLen)
		c.Key = fromKey(m.Key)
		c.NsMono = m.TsNs
		c.Frame = raw[metaLen : metaLen+n]
		return nil
	}
}

// Lost is how many copies the kernel dropped for lack of buffer space.
func (r *RecordReader) Lost() uint64 { return r.lost }

// Close stops Read.
func (r *RecordReader) Close() error { return r.rd.Close() }
