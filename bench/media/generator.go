package media

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// xdpMD is struct xdp_md, the context BPF_PROG_TEST_RUN takes for XDP. The
// kernel wants DataEnd to be the frame's length.
type xdpMD struct {
	Data, DataEnd, DataMeta uint32
	IngressIfindex          uint32
	RxQueueIndex            uint32
	EgressIfindex           uint32
}

// genBatch is how many frames the kernel builds and flushes at a time in
// live-frames mode (its maximum is 256). Bigger batches cost fewer
// flushes; the veth's ring holds 256 frames.
const genBatch = 64

// frameLen is the size of the template frame the generator rewrites: Ethernet,
// IPv4, UDP and a 172-byte RTP packet (XM_FRAME_LEN).
const frameLen = 14 + 20 + 8 + RTPBytes

// generator sends the benchmark's RTP from one side of the lab: the xm_gen
// XDP program run with BPF_PROG_TEST_RUN in live-frames mode, so each frame
// is built and transmitted in the kernel, at rates a socket loop cannot
// reach. Where the kernel refuses live frames, the same frames are built
// in Go and sent on AF_PACKET instead (packetTx). One generator is driven
// by one goroutine at a time.
type generator struct {
	end, peer *testbed.End // the generator's veth end and the relay's end facing it
	ssrcBase  uint32

	prog  *ebpf.Program
	cfg   *ebpf.Map
	calls *ebpf.Map
	state *ebpf.Map

	frame  []byte
	ncalls int

	pk *packetTx // the fallback where the kernel refuses live frames; nil when it takes them
}

type genObjects struct {
	Prog  *ebpf.Program `ebpf:"xm_gen"`
	Cfg   *ebpf.Map     `ebpf:"gen_cfg"`
	Calls *ebpf.Map     `ebpf:"gen_calls"`
	State *ebpf.Map     `ebpf:"gen_state"`
}

func newGenerator(end, peer *testbed.End, ssrcBase uint32) (*generator, error) {
	var o genObjects // only the objects named in o are loaded
	if err := loadXmObjects(&o, nil); err != nil {
		return nil, fmt.Errorf("media: load generator: %w", err)
	}
	g := &generator{end: end, peer: peer, ssrcBase: ssrcBase, prog: o.Prog, cfg: o.Cfg, calls: o.Calls, state: o.State,
		frame: make([]byte, frameLen)}
	if liveFrames() != nil {
		var err error
		if g.pk, err = newPacketTx(end, ssrcBase); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

// Close releases the program and maps.
func (g *generator) Close() error {
	return errors.Join(g.prog.Close(), g.cfg.Close(), g.calls.Close(), g.state.Close(), g.pk.Close())
}

// genCall is where one call's packets go from this side: from our port to
// the relay's address and port for this party.
type genCall struct {
	SrcPort uint16
	Dst     netip.AddrPort
	// --srtp, the caller's side only: its master key and salt (in its
	// offer), and the relay's (in the relay's answer to it).
	Key, RelayKey []byte
}

// setCalls installs calls[from:] in the call table and makes the generator
// cycle over all len(calls) of them.
func (g *generator) setCalls(calls []genCall, from int) error {
	if len(calls) > maxCalls {
		return fmt.Errorf("%w: %d > %d", ErrTooManyCalls, len(calls), maxCalls)
	}
	if from < len(calls) {
		keys := make([]uint32, 0, len(calls)-from)
		vals := make([]xmXmGenCall, 0, len(calls)-from)
		for i := from; i < len(calls); i++ {
			c := calls[i]
			keys = append(keys, uint32(i))
			vals = append(vals, xmXmGenCall{Sport: c.SrcPort, Dport: c.Dst.Port(), Daddr: be32(c.Dst.Addr())})
		}
		if _, err := g.calls.BatchUpdate(keys, vals, nil); err != nil {
			return fmt.Errorf("media: generator call table: %w", err)
		}
	}
	var cfg xmXmGenCfg
	copy(cfg.Smac[:], g.end.MAC)
	copy(cfg.Dmac[:], g.peer.MAC)
	cfg.Saddr = be32(g.end.IPv4())
	cfg.Ncalls = uint32(len(calls))
	cfg.SsrcBase = g.ssrcBase
	if err := g.cfg.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("media: generator config: %w", err)
	}
	g.ncalls = len(calls)
	if g.pk != nil {
		g.pk.setCalls(g.end, g.peer, calls, from)
	}
	return nil
}

// sent returns how many frames the program has built and transmitted so
// far.
func (g *generator) sent() (uint64, error) {
	if g.pk != nil {
		return g.pk.seq, nil
	}
	var st xmXmGenState
	if err := g.state.Lookup(uint32(0), &st); err != nil {
		return 0, fmt.Errorf("media: generator state: %w", err)
	}
	return st.Seq, nil
}

// burst sends n frames as fast as the kernel can. The caller's thread must
// be in the generator's namespace (the kernel resolves the ingress ifindex
// there).
func (g *generator) burst(n uint32) error {
	if n == 0 {
		return nil
	}
	if g.pk != nil {
		return g.pk.send(n)
	}
	_, err := g.prog.Run(&ebpf.RunOptions{
		Data:      g.frame,
		Repeat:    n,
		Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize: genBatch,
		Context:   xdpMD{DataEnd: uint32(len(g.frame)), IngressIfindex: uint32(g.end.Index)},
	})
	if err != nil {
		return fmt.Errorf("media: generator run: %w", err)
	}
	return nil
}

// sendRound sends k packets of every call, back to back.
func (g *generator) sendRound(k int) error {
	return g.end.NS.Do(func() error { return g.burst(uint32(k * g.ncalls)) })
}

// pacing is how the generator spreads a step's packets: one
// BPF_PROG_TEST_RUN per chunk, each carrying what the offered rate owes up
// to the end of the chunk. A run costs some milliseconds of setup, so
// chunks are tens of milliseconds; within a chunk frames leave back to
// back (the calls interleaved, so each call sees a packet every 20 ms on
// average).
type pacing struct {
	Chunk time.Duration
}

// genResult is what one generator did in a step.
type genResult struct {
	Sent    uint64
	Elapsed time.Duration
}

// run sends at rate packets per second for d, paced in chunks, and
// returns what was actually sent (counted by the program) and over how
// long: d if it sent all of it by d plus one chunk. When the machine cannot
// keep up, it sends what it can and stops at d plus one chunk: the
// shortfall is the result, not an error.
func (g *generator) run(ctx context.Context, rate float64, d time.Duration, p pacing) (genResult, error) {
	var res genResult
	err := g.end.NS.Do(func() error {
		start0, err := g.sent()
		if err != nil {
			return err
		}
		total := uint64(rate * d.Seconds())
		maxRun := uint64(2*rate*p.Chunk.Seconds()) + genBatch
		t0 := time.Now()
		deadline := t0.Add(d + p.Chunk)
		for {
			done, err := g.sent()
			if err != nil {
				return err
			}
			done -= start0
			now := time.Now()
			if done >= total || now.After(deadline) || ctx.Err() != nil {
				res.Sent, res.Elapsed = done, now.Sub(t0)
				if done >= total {
					// Everything went out by the deadline (at most one
					// chunk late): the offered rate over d.
					res.Elapsed = d
				}
				return nil
			}
			owed := min(total, uint64(rate*(now.Sub(t0)+p.Chunk).Seconds()))
			if owed > done {
				if err := g.burst(uint32(min(owed-done, maxRun))); err != nil {
					return err
				}
			}
			// sleep to the next chunk boundary
			next := t0.Add(now.Sub(t0).Truncate(p.Chunk) + p.Chunk)
			if w := time.Until(next); w > 0 {
				time.Sleep(w)
			}
		}
	})
	return res, err
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
