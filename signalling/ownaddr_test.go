package signalling

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// The host's addresses are read from the kernel at most once per
// hostAddrsFresh, whatever the number of checks; a failed read keeps the
// last set.
func TestHostAddrCache(t *testing.T) {
	reads, fail := 0, false
	clock := time.Unix(1_800_000_000, 0)
	h := &hostAddrCache{
		list: func() ([]net.Addr, error) {
			reads++
			if fail {
				return nil, errors.New("netlink refused")
			}
			return net.InterfaceAddrs() // the real host's
		},
		now: func() time.Time { return clock },
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil || len(ifaddrs) == 0 {
		t.Fatalf("host addresses: %v, %v", ifaddrs, err)
	}
	own := netip.MustParsePrefix(ifaddrs[0].String()).Addr().Unmap()
	other := netip.MustParseAddr("203.0.113.77") // TEST-NET-3: on no host
	for range 100 {
		if !h.has(own) || h.has(other) {
			t.Fatalf("has(%v) = %v, has(%v) = %v; want true, false", own, h.has(own), other, h.has(other))
		}
	}
	if reads != 1 {
		t.Fatalf("%d reads of the host's addresses within %v, want 1", reads, hostAddrsFresh)
	}
	clock = clock.Add(hostAddrsFresh)
	h.has(other)
	h.has(other)
	if reads != 2 {
		t.Fatalf("%d reads after the set went stale, want 2", reads)
	}
	fail = true
	clock = clock.Add(hostAddrsFresh)
	if !h.has(own) {
		t.Fatalf("a failed read forgot %v", own)
	}
	if h.has(own); reads != 3 {
		t.Fatalf("%d reads, want 3: a failing read is retried once per %v, not per check", reads, hostAddrsFresh)
	}
}

// A remote peer naming one of the host's addresses (not loopback) is
// refused, through the cache.
func TestSDPSelfAddrHostAddress(t *testing.T) {
	var own netip.Addr
	ifaddrs, _ := net.InterfaceAddrs()
	for _, ia := range ifaddrs {
		if a := netip.MustParsePrefix(ia.String()).Addr().Unmap(); a.Is4() && !a.IsLoopback() {
			own = a
			break
		}
	}
	if !own.IsValid() {
		t.Skip("the host has no IPv4 address besides loopback")
	}
	s := &Server{}
	body := []byte("v=0\r\nc=IN IP4 " + own.String() + "\r\nm=audio 4000 RTP/AVP 0\r\n")
	if got := s.sdpSelfAddr(netip.MustParseAddr("203.0.113.9"), body); got != own {
		t.Fatalf("sdpSelfAddr = %v, want %v (an address of this host)", got, own)
	}
}

// BenchmarkSDPSelfAddr is the check of one SDP from a remote peer.
func BenchmarkSDPSelfAddr(b *testing.B) {
	s := &Server{}
	body := []byte("v=0\r\no=- 1 1 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtcp:4001 IN IP4 203.0.113.9\r\n")
	peer := netip.MustParseAddr("203.0.113.9")
	b.ReportAllocs()
	for b.Loop() {
		if s.sdpSelfAddr(peer, body).IsValid() {
			b.Fatal("refused a remote peer's own address")
		}
	}
}
