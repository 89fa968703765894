package media

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// sink counts the benchmark's RTP arriving at one side of the lab: the
// xm_sink XDP program on that side's veth, per call (by destination port)
// and in a one-way latency histogram, then drops it.
type sink struct {
	prog     *ebpf.Program
	cfg      *ebpf.Map
	calls    *ebpf.Map
	hist     *ebpf.Map
	counters *ebpf.Map
	ncpu     int
}

type sinkObjects struct {
	Prog     *ebpf.Program `ebpf:"xm_sink"`
	Cfg      *ebpf.Map     `ebpf:"sink_cfg"`
	Calls    *ebpf.Map     `ebpf:"sink_calls"`
	Hist     *ebpf.Map     `ebpf:"sink_hist"`
	Counters *ebpf.Map     `ebpf:"sink_counters"`
}

// newSink loads a sink and attaches it to e (the lab detaches it).
func newSink(tl *testbed.Lab, e *testbed.End) (*sink, error) {
	var o sinkObjects // only the objects named in o are loaded
	if err := loadXmObjects(&o, nil); err != nil {
		return nil, fmt.Errorf("media: load sink: %w", err)
	}
	s := &sink{prog: o.Prog, cfg: o.Cfg, calls: o.Calls, hist: o.Hist, counters: o.Counters, ncpu: ebpf.MustPossibleCPU()}
	if err := s.setCalls(0); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := tl.AttachXDP(e, s.prog, link.XDPDriverMode); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the program and maps (detach first).
func (s *sink) Close() error {
	return errors.Join(s.prog.Close(), s.cfg.Close(), s.calls.Close(), s.hist.Close(), s.counters.Close())
}

// setCalls makes the sink count calls 0..n-1, on ports portBase+2i.
func (s *sink) setCalls(n int) error {
	if err := s.cfg.Put(uint32(0), xmXmSinkCfg{PortBase: portBase, Ncalls: uint32(n)}); err != nil {
		return fmt.Errorf("media: sink config: %w", err)
	}
	return nil
}

// sinkSnap is a reading of a sink's counters, summed over CPUs.
type sinkSnap struct {
	RTP, Bad, Other uint64
	PerCall         []uint64 // by call index
	Hist            []uint64 // by latency bucket (hist.go)
}

// snap reads the counters of calls 0..ncalls-1, the histogram and the
// totals.
func (s *sink) snap(ncalls int) (sinkSnap, error) {
	var sn sinkSnap
	var err error
	if sn.PerCall, err = s.readArray(s.calls, ncalls); err != nil {
		return sn, err
	}
	if sn.Hist, err = s.readArray(s.hist, histBuckets); err != nil {
		return sn, err
	}
	c, err := s.readArray(s.counters, int(xmXmSinkCounterXM_SINK_COUNTER_MAX))
	if err != nil {
		return sn, err
	}
	sn.RTP, sn.Bad, sn.Other = c[xmXmSinkCounterXM_SINK_RTP], c[xmXmSinkCounterXM_SINK_BAD], c[xmXmSinkCounterXM_SINK_OTHER]
	return sn, nil
}

// readArray reads entries 0..n-1 of a per-CPU u64 array, summed over CPUs,
// with batch lookups.
func (s *sink) readArray(m *ebpf.Map, n int) ([]uint64, error) {
	out := make([]uint64, n)
	const chunk = 4096
	keys := make([]uint32, chunk)
	vals := make([]uint64, chunk*s.ncpu)
	var cursor ebpf.MapBatchCursor
	got := 0
	for got < n {
		c, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < c; i++ {
			k := int(keys[i])
			if k >= n {
				continue
			}
			for cpu := 0; cpu < s.ncpu; cpu++ {
				out[k] += vals[i*s.ncpu+cpu]
			}
		}
		got += c
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("media: reading %s: %w", m, err)
		}
	}
	return out, nil
}

// sub returns the counts between an earlier reading a and s.
func (s sinkSnap) sub(a sinkSnap) sinkSnap {
	d := sinkSnap{RTP: s.RTP - a.RTP, Bad: s.Bad - a.Bad, Other: s.Other - a.Other,
		PerCall: make([]uint64, len(s.PerCall)), Hist: make([]uint64, len(s.Hist))}
	for i := range s.PerCall {
		d.PerCall[i] = s.PerCall[i]
		if i < len(a.PerCall) {
			d.PerCall[i] -= a.PerCall[i]
		}
	}
	for i := range s.Hist {
		d.Hist[i] = s.Hist[i] - a.Hist[i]
	}
	return d
}
