package testbed

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// LinkOptions configures a veth pair made by Lab.Link.
type LinkOptions struct {
	// AAddrs and BAddrs are assigned to the A and B ends, IPv4 and/or IPv6
	// (IPv6 without duplicate address detection, usable at once). They must be
	// in 198.18.0.0/15 or 2001:2::/48.
	AAddrs, BAddrs []netip.Prefix
	// MTU of both ends; 0 keeps the default (1500).
	MTU int
	// XDPPassA and XDPPassB attach a program returning XDP_PASS to that end.
	// A veth end only receives frames that an XDP program on its peer
	// redirected (XDP_TX or bpf_redirect into the pair) if it has an XDP
	// program itself (or GRO on); otherwise they are dropped silently.
	XDPPassA, XDPPassB bool
	// GRO turns generic receive offload on for both ends, which also makes a
	// veth end receive redirected frames without an XDP program of its own.
	GRO bool
	// TxChecksumOff turns TX checksum offload off on both ends, so datagrams
	// sent from sockets carry complete checksums. Needed when an XDP program
	// on the peer redirects them: partial checksums are never completed on
	// that path and the receiver drops the datagrams.
	TxChecksumOff bool
	// AName and BName name the interfaces; by default "to-" followed by the
	// other namespace's logical name (cut to 15 bytes, numbered if taken).
	AName, BName string
}

// firstIfindex is the ifindex of the first veth end a lab creates; the lab
// numbers its ends upwards from here, far above the ones the kernel hands out
// to other devices in a fresh namespace.
const firstIfindex = 1000

// Link is a veth pair between two namespaces.
type Link struct {
	A, B *End
}

// End is one end of a veth pair.
type End struct {
	NS    *NS
	Name  string // interface name inside NS
	Index int    // ifindex inside NS; the lab numbers its veth ends from 1000
	MAC   net.HardwareAddr
	Addrs []netip.Prefix
}

func (e *End) String() string { return e.NS.Name + "/" + e.Name }

// IPv4 returns the end's first IPv4 address, or the zero Addr.
func (e *End) IPv4() netip.Addr { return e.first(true) }

// IPv6 returns the end's first IPv6 address, or the zero Addr.
func (e *End) IPv6() netip.Addr { return e.first(false) }

func (e *End) first(v4 bool) netip.Addr {
	for _, p := range e.Addrs {
		if p.Addr().Is4() == v4 {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// Link joins a and b with a veth pair, configures and addresses both ends and
// brings them up.
func (l *Lab) Link(a, b *NS, o LinkOptions) (*Link, error) {
	if a.lab != l || b.lab != l {
		return nil, ErrForeignNS
	}
	for _, p := range append(append([]netip.Prefix(nil), o.AAddrs...), o.BAddrs...) {
		if err := checkPrefix(p); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}

	an, err := a.reserveIfname(o.AName, "to-"+b.Name)
	if err != nil {
		return nil, err
	}
	bn, err := b.reserveIfname(o.BName, "to-"+a.Name)
	if err != nil {
		a.releaseIfname(an)
		return nil, err
	}
	k := &Link{
		A: &End{NS: a, Name: an, Addrs: o.AAddrs},
		B: &End{NS: b, Name: bn, Addrs: o.BAddrs},
	}
	if err := l.addVeth(k, o.MTU); err != nil {
		a.releaseIfname(an)
		b.releaseIfname(bn)
		return nil, err
	}
	l.mu.Lock()
	l.links = append(l.links, k)
	l.mu.Unlock()
	if err := l.setUp(k, o); err != nil {
		return nil, err
	}
	return k, nil
}

// addVeth creates k's veth pair, each end directly in its namespace:
// nothing appears in the host's namespace, so names only need to be unique
// per namespace.
//
// The two ends get different ifindexes. Left to the kernel, both would be
// 2 in fresh namespaces, and a veth whose ifindex equals its peer's (its
// iflink) has its carrier change queued in linkwatch for up to a second;
// until then IPv6 on it is not ready and neighbour discovery stalls, so the
// first IPv6 datagrams wait a second or are lost.
func (l *Lab) addVeth(k *Link, mtu int) error {
	l.mu.Lock()
	ai := firstIfindex + l.ifindexes
	l.ifindexes += 2
	l.mu.Unlock()
	args := []string{"-n", k.A.NS.NetnsName, "link", "add", k.A.Name, "index", strconv.Itoa(ai)}
	if mtu > 0 {
		args = append(args, "mtu", strconv.Itoa(mtu))
	}
	args = append(args, "type", "veth", "peer", "name", k.B.Name, "index", strconv.Itoa(ai+1))
	if mtu > 0 {
		args = append(args, "mtu", strconv.Itoa(mtu))
	}
	args = append(args, "netns", k.B.NS.NetnsName)
	return runIP(args...)
}

// setUp configures, addresses and brings up both ends of k, waits for them
// to be operational, then applies the options that need them running.
func (l *Lab) setUp(k *Link, o LinkOptions) error {
	for _, e := range []*End{k.A, k.B} {
		if o.TxChecksumOff {
			if err := e.setFeature(ethtoolSTXCSUM, false); err != nil {
				return err
			}
		}
		for _, p := range e.Addrs {
			args := []string{"addr", "add", p.String(), "dev", e.Name}
			if p.Addr().Is6() {
				args = append(args, "nodad")
			}
			if _, err := e.NS.IP(args...); err != nil {
				return err
			}
		}
		if _, err := e.NS.IP("link", "set", e.Name, "up"); err != nil {
			return err
		}
	}
	for _, e := range []*End{k.A, k.B} {
		ifi, err := e.waitReady(linkReadyTimeout)
		if err != nil {
			return err
		}
		e.Index, e.MAC = ifi.Index, ifi.HardwareAddr
	}
	// GRO only once both ends are up: turned on while they were down (kernel
	// 6.18), redirected frames were still dropped; the veth sets up its NAPI
	// and the peer's NDO_XMIT support when GRO changes on a running device.
	if o.GRO {
		for _, e := range []*End{k.A, k.B} {
			if err := e.setFeature(ethtoolSGRO, true); err != nil {
				return err
			}
		}
	}
	if o.XDPPassA {
		if err := l.AttachXDPPass(k.A); err != nil {
			return err
		}
	}
	if o.XDPPassB {
		if err := l.AttachXDPPass(k.B); err != nil {
			return err
		}
	}
	return nil
}

// linkReadyTimeout bounds the wait for a new veth to become operational.
const linkReadyTimeout = 5 * time.Second

// waitReady waits until the end is operationally up (IFF_RUNNING, set when
// linkwatch has processed the carrier) and, unless IPv6 is disabled on it,
// has its link-local address, so the first datagrams sent are not lost.
func (e *End) waitReady(timeout time.Duration) (*net.Interface, error) {
	deadline := time.Now().Add(timeout)
	for {
		ifi, ready, err := e.ready()
		if err != nil || ready {
			return ifi, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("testbed: %s not ready after %v (flags %v)", e, timeout, ifi.Flags)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *End) ready() (*net.Interface, bool, error) {
	var (
		ifi   *net.Interface
		ready bool
	)
	err := e.NS.Do(func() error {
		var err error
		if ifi, err = net.InterfaceByName(e.Name); err != nil {
			return fmt.Errorf("testbed: %s: %w", e, err)
		}
		if ifi.Flags&net.FlagRunning == 0 {
			return nil
		}
		v6off, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + e.Name + "/disable_ipv6")
		if err != nil || strings.TrimSpace(string(v6off)) == "1" {
			ready = true // no IPv6 to wait for
			return nil
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return fmt.Errorf("testbed: %s: %w", e, err)
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.IsLinkLocalUnicast() && ipn.IP.To4() == nil {
				ready = true
			}
		}
		return nil
	})
	return ifi, ready, err
}

// Links returns the lab's veth pairs in creation order.
func (l *Lab) Links() []*Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Link(nil), l.links...)
}

func (n *NS) reserveIfname(name, def string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name != "" {
		if len(name) > 15 || !nameRE.MatchString(name) {
			return "", fmt.Errorf("%w: interface %q", ErrBadName, name)
		}
		if n.ifnames[name] {
			return "", fmt.Errorf("%w: interface %q in %s", ErrDuplicate, name, n.Name)
		}
		n.ifnames[name] = true
		return name, nil
	}
	for i := 1; ; i++ {
		suffix := ""
		if i > 1 {
			suffix = strconv.Itoa(i)
		}
		name = def
		if len(name)+len(suffix) > 15 {
			name = name[:15-len(suffix)]
		}
		name += suffix
		if !n.ifnames[name] {
			n.ifnames[name] = true
			return name, nil
		}
	}
}

func (n *NS) releaseIfname(name string) {
	n.mu.Lock()
	delete(n.ifnames, name)
	n.mu.Unlock()
}
