package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// A call record spans up to callChunks entries of xtr_calls: entry
// id<<callChunkBits|i holds its i-th piece.
const (
	callChunkBits = 4
	callChunks    = 1 << callChunkBits
)

// MaxCallRecord is the largest record SaveCall stores.
const MaxCallRecord = callChunks * len(relayXtrCallBlob{}.Data)

// SaveCall stores an opaque call record (for re-adoption after restart),
// replacing the one id had.
func (d *Dataplane) SaveCall(id uint64, blob []byte) error {
	if len(blob) > MaxCallRecord {
		return fmt.Errorf("%w: %d bytes, max %d", ErrBlobTooLarge, len(blob), MaxCallRecord)
	}
	if id >= 1<<(64-callChunkBits) {
		return fmt.Errorf("call record id %d out of range", id)
	}
	d.chunkMu.Lock()
	defer d.chunkMu.Unlock()
	v := &d.blob
	had := d.storedPieces(id)
	n := 0
	for i := 0; i == 0 || len(blob) > 0; i++ {
		k := min(len(blob), len(v.Data))
		v.Len = uint32(k)
		copy(v.Data[:], blob[:k])
		blob = blob[k:]
		if err := d.objs.XtrCallsV3.Put(id<<callChunkBits|uint64(i), v); err != nil {
			d.forgetPieces(id)
			return err
		}
		n = i + 1
	}
	// the pieces of a longer record saved before
	if err := d.deletePieces(id, n, had); err != nil {
		d.forgetPieces(id)
		return err
	}
	if d.chunks != nil {
		d.chunks[id] = n
	}
	return nil
}

// storedPieces is how many pieces id's record may have in the map.
// Caller holds chunkMu.
func (d *Dataplane) storedPieces(id uint64) int {
	if d.chunks == nil {
		return callChunks
	}
	n, ok := d.chunks[id]
	if !ok {
		return 0
	}
	return n
}

// forgetPieces makes id's pieces unknown after a failed write, so that
// the next save or delete clears them all. Caller holds chunkMu.
func (d *Dataplane) forgetPieces(id uint64) {
	if d.chunks != nil {
		d.chunks[id] = callChunks
	}
}

// deletePieces deletes id's pieces from..to-1. Caller holds chunkMu.
func (d *Dataplane) deletePieces(id uint64, from, to int) error {
	var errs []error
	for i := from; i < to; i++ {
		if err := d.objs.XtrCallsV3.Delete(id<<callChunkBits | uint64(i)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeleteCall removes a call record.
func (d *Dataplane) DeleteCall(id uint64) error {
	d.chunkMu.Lock()
	defer d.chunkMu.Unlock()
	if err := d.deletePieces(id, 0, d.storedPieces(id)); err != nil {
		d.forgetPieces(id)
		return err
	}
	if d.chunks != nil {
		delete(d.chunks, id)
	}
	return nil
}

// Calls returns every stored call record. A record missing a piece (a
// save cut short) comes back as far as it is whole, for its reader to
// refuse.
func (d *Dataplane) Calls() (map[uint64][]byte, error) {
	d.chunkMu.Lock()
	defer d.chunkMu.Unlock()
	pieces := map[uint64]map[int][]byte{}
	var k uint64
	var v relayXtrCallBlob
	it := d.objs.XtrCallsV3.Iterate()
	for it.Next(&k, &v) {
		id, i := k>>callChunkBits, int(k&(callChunks-1))
		if pieces[id] == nil {
			pieces[id] = map[int][]byte{}
		}
		n := min(int(v.Len), len(v.Data))
		pieces[id][i] = append([]byte(nil), v.Data[:n]...)
	}
	out := map[uint64][]byte{}
	for id, ps := range pieces {
		var b []byte
		for i := 0; i < callChunks; i++ {
			p, ok := ps[i]
			if !ok {
				break
			}
			b = append(b, p...)
		}
		out[id] = b
	}
	if err := it.Err(); err != nil {
		return out, err
	}
	// from now on the map holds what this process writes, and the pieces
	// read here, up to the last one (a record missing one is still
	// cleared whole)
	d.chunks = make(map[uint64]int, len(pieces))
	for id, ps := range pieces {
		for i := range ps {
			d.chunks[id] = max(d.chunks[id], i+1)
		}
	}
	return out, nil
}
