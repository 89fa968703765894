package xsk

import (
	"errors"
	"testing"
	"time"
)

// TestInterfaceGoneLab removes the veth under a bound socket: the data
// path reports it instead of hanging or crashing, and Close still
// releases everything.
func TestInterfaceGoneLab(t *testing.T) {
	l := newXSKLab(t)
	s := l.open(t, Config{Frames: 256, RingSize: 128})
	if _, err := l.rcv.IP("link", "del", l.link.B.Name); err != nil {
		t.Fatal(err)
	}
	var werr error
	deadline := time.Now().Add(10 * time.Second)
	for werr == nil && time.Now().Before(deadline) {
		_, werr = s.Wait(50 * time.Millisecond)
	}
	if !errors.Is(werr, ErrNoInterface) {
		t.Fatalf("Wait after the interface went: %v", werr)
	}
	if _, err := s.Wait(0); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("second Wait: %v", err)
	}
	if !l.sendTx(t, s, []byte("gone")) {
		t.Fatal("no TX frame")
	}
	if err := s.FlushTx(); !errors.Is(err, ErrKick) || !errors.Is(err, ErrNoInterface) {
		t.Fatalf("FlushTx after the interface went: %v", err)
	}
	if n := s.Receive(make([]Desc, 4)); n != 0 {
		t.Fatalf("received %d after the interface went", n)
	}
	if _, err := s.Stats(); err != nil {
		t.Logf("Stats: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
