package xsk_test

import (
	"time"

	"github.com/cilium/ebpf"

	"github.com/xtrunk/xtrunk/relay/xsk"
)

// A relay's loop for one RX queue: one goroutine owns the socket, takes
// what the XDP program redirected, handles it in place, forwards or
// drops it, and flushes once per batch. It blocks in Wait only when the
// ring is empty.
func Example() {
	var xskmap *ebpf.Map // the program's BPF_MAP_TYPE_XSKMAP
	s, err := xsk.Open(xsk.Config{Ifindex: 2, Queue: 0, ZeroCopy: true})
	if err != nil {
		return // errors.Is(err, xsk.ErrUnsupported): no AF_XDP on this driver
	}
	defer s.Close()
	if err := xskmap.Put(uint32(0), uint32(s.FD())); err != nil {
		return
	}
	batch := make([]xsk.Desc, 64)
	drop := make([]xsk.Desc, 0, 64)
	for {
		n := s.Receive(batch)
		if n == 0 {
			s.Reap()
			if s.TxInFlight() > 0 {
				_ = s.FlushTx() // copy mode sends a bounded batch per kick
			}
			if _, err := s.Wait(10 * time.Millisecond); err != nil {
				return
			}
			continue
		}
		drop = drop[:0]
		for _, d := range batch[:n] {
			pkt := s.Frame(d)
			// ... rewrite pkt in place (addresses, checksums) ...
			if !s.TxFromRx(xsk.Desc{Addr: d.Addr, Len: uint32(len(pkt))}) {
				drop = append(drop, d)
			}
		}
		s.Release(drop)
		_ = s.FlushTx()
	}
}
