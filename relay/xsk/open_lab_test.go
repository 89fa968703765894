package xsk

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openIn opens a socket from inside the receiving namespace without
// registering it anywhere.
func (l *xskLab) openIn(cfg Config) (*Socket, error) {
	var s *Socket
	err := l.rcv.Do(func() error {
		var err error
		s, err = Open(cfg)
		return err
	})
	return s, err
}

// resources counts this process's descriptors, the socket-backed
// mappings (AF_XDP rings show as socket:[inode] in /proc/self/maps) and
// its resident anonymous memory in kB (a UMEM is mapped with
// MAP_POPULATE, so a leaked one is resident; VmSize is not usable: the Go
// heap reserves address space in 64 MiB steps).
func resources(t *testing.T) (fds, ringMaps, rssKB int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range strings.Split(string(status), "\n") {
		if f := strings.Fields(ln); len(f) >= 2 && f[0] == "RssAnon:" {
			rssKB, _ = strconv.Atoi(f[1])
		}
	}
	return len(ents), strings.Count(string(maps), "socket:["), rssKB
}

// mapped reports whether the page at p is mapped (mincore fails with
// ENOMEM on an unmapped page).
func mapped(p uintptr) bool {
	var vec [1]byte
	page := p &^ uintptr(os.Getpagesize()-1)
	_, _, e := unix.Syscall(unix.SYS_MINCORE, page, uintptr(os.Getpagesize()), uintptr(unsafe.Pointer(&vec[0])))
	return e != unix.ENOMEM
}

func TestOpenErrorsLab(t *testing.T) {
	l := newXSKLab(t)
	// Large UMEMs, so a leak on an error path would show in RssAnon.
	const frames, frameSize = 1024, 4096
	fds0, maps0, rss0 := resources(t)
	for range 20 {
		_, err := l.openIn(Config{Ifindex: l.ifindex, Queue: 7, Frames: frames, FrameSize: frameSize})
		if !errors.Is(err, ErrQueue) || !strings.Contains(err.Error(), l.link.B.Name) || !strings.Contains(err.Error(), "queue 7") {
			t.Fatalf("bad queue: %v", err)
		}
		_, err = l.openIn(Config{Ifindex: 9999, Frames: frames, FrameSize: frameSize, ZeroCopy: true})
		if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "ifindex 9999 queue 0") {
			t.Fatalf("bad ifindex: %v", err)
		}
	}
	fds1, maps1, rss1 := resources(t)
	if fds1 != fds0 || maps1 != maps0 {
		t.Fatalf("failed opens leaked: descriptors %d -> %d, ring mappings %d -> %d", fds0, fds1, maps0, maps1)
	}
	// 40 leaked UMEMs would be 160 MiB.
	if grew := rss1 - rss0; grew > 40*1024 {
		t.Fatalf("failed opens leaked: RssAnon grew %d kB", grew)
	}

	// One socket per queue: a second one is refused as busy.
	s := l.open(t, Config{})
	if _, err := l.openIn(Config{Ifindex: l.ifindex}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second socket on the queue: %v", err)
	}
	umem := uintptr(unsafe.Pointer(&s.umem[0]))
	rings := []uintptr{uintptr(unsafe.Pointer(&s.rxMem[0])), uintptr(unsafe.Pointer(&s.txMem[0])),
		uintptr(unsafe.Pointer(&s.fillMem[0])), uintptr(unsafe.Pointer(&s.compMem[0]))}
	fd := s.FD()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, p := range append(rings, umem) {
		if mapped(p) {
			t.Fatalf("%#x still mapped after Close", p)
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("descriptor %d still open after Close: %v", fd, err)
	}
	// After Close nothing touches the unmapped rings.
	if n := s.Receive(make([]Desc, 4)); n != 0 {
		t.Fatalf("Receive after Close: %d", n)
	}
	if _, _, ok := s.NextTx(); ok {
		t.Fatal("NextTx after Close")
	}
	s.Release([]Desc{{Addr: 256, Len: 1}})
	if err := s.FlushTx(); !errors.Is(err, ErrClosed) {
		t.Fatalf("FlushTx after Close: %v", err)
	}
	if _, err := s.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after Close: %v", err)
	}
	if _, err := s.Wait(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}

	// The queue is free again (once the kernel's deferred release has run:
	// Open waits for it).
	l.open(t, Config{})
}

func TestZeroCopyFallbackLab(t *testing.T) {
	l := newXSKLab(t)
	s := l.open(t, Config{ZeroCopy: true})
	opts, err := unix.GetsockoptInt(s.FD(), unix.SOL_XDP, unix.XDP_OPTIONS)
	if err != nil {
		t.Fatal(err)
	}
	kernelZC := opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	if (s.Mode() == ModeZeroCopy) != kernelZC {
		t.Fatalf("Mode %q but XDP_OPTIONS %#x", s.Mode(), opts)
	}
	// veth has no XSK buffer pool support (no ndo_xsk_wakeup): the
	// zero-copy bind is refused and Open falls back to copy mode.
	if s.Mode() != ModeCopy {
		t.Fatalf("veth bound in %q mode", s.Mode())
	}
	// And the fallback socket works: the fill ring is in place.
	if s.fill.free(uint32(DefaultRingSize)) != DefaultRingSize-DefaultFrames/2 {
		t.Fatal("fill ring not populated")
	}
}
