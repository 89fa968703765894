package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// hostAddr is the address xtrunk init fills in for this host, and why.
type hostAddr struct {
	addr  netip.Addr
	iface string // the device carrying it
	how   string // "the default route's interface", "the first global address", "loopback"
}

// pickHostAddress finds the address an edge on this host is reached at:
// the first global address of the default route's interface (IPv4
// first, then IPv6), else the first global address of any interface
// that is up (a lab or an isolated host has no default route), else
// loopback, which only this host can reach (warn says so).
func pickHostAddress() (hostAddr, error) {
	var dev string
	if f, err := os.Open("/proc/net/route"); err == nil {
		dev = defaultRouteDev4(f)
		f.Close()
	}
	if dev == "" {
		if f, err := os.Open("/proc/net/ipv6_route"); err == nil {
			dev = defaultRouteDev6(f)
			f.Close()
		}
	}
	if dev != "" {
		if ifc, err := net.InterfaceByName(dev); err == nil {
			if a, ok := globalAddr(ifc); ok {
				return hostAddr{addr: a, iface: dev, how: "the default route's interface"}, nil
			}
		}
	}
	ifcs, err := net.Interfaces()
	if err != nil {
		return hostAddr{}, fmt.Errorf("list interfaces: %w", err)
	}
	for _, v4 := range []bool{true, false} {
		for _, ifc := range ifcs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			if a, ok := firstGlobal(&ifc, v4); ok {
				return hostAddr{addr: a, iface: ifc.Name, how: "the first global address (no default route)"}, nil
			}
		}
	}
	return hostAddr{addr: netip.MustParseAddr("127.0.0.1"), iface: "lo", how: "loopback"}, nil
}

// globalAddr is ifc's first global IPv4 address, else its first global
// IPv6 one.
func globalAddr(ifc *net.Interface) (netip.Addr, bool) {
	if a, ok := firstGlobal(ifc, true); ok {
		return a, true
	}
	return firstGlobal(ifc, false)
}

func firstGlobal(ifc *net.Interface, v4 bool) (netip.Addr, bool) {
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() == v4 && ip.IsGlobalUnicast() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// defaultRouteDev4 reads /proc/net/route and returns the device of the
// IPv4 default route with the lowest metric ("" if none).
func defaultRouteDev4(r io.Reader) string {
	const rtfUp = 0x1
	best, bestMetric := "", -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.Atoi(f[6])
		if err1 != nil || err2 != nil || flags&rtfUp == 0 {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	return best
}

// defaultRouteDev6 reads /proc/net/ipv6_route and returns the device of
// the IPv6 default route with the lowest metric; unreachable defaults
// (on lo, or RTF_REJECT) are no route.
func defaultRouteDev6(r io.Reader) string {
	const rtfUp, rtfReject = 0x1, 0x200
	best, bestMetric := "", uint64(0)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// dst dstlen src srclen nexthop metric refcnt use flags dev
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" || f[9] == "lo" {
			continue
		}
		flags, err1 := strconv.ParseUint(f[8], 16, 32)
		metric, err2 := strconv.ParseUint(f[5], 16, 32)
		if err1 != nil || err2 != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		if best == "" || metric < bestMetric {
			best, bestMetric = f[9], metric
		}
	}
	return best
}
