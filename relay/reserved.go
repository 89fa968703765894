package relay

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// In xdp mode the XDP program owns the media port range: no relay socket
// holds those ports, so nothing stops the kernel from handing one of them
// to a host program as its ephemeral port (a DNS lookup's), whose replies
// would then meet a relay session. The relay adds its range to
// net.ipv4.ip_local_reserved_ports (which covers IPv6 too) at start and
// removes what it added at a clean exit; a restart keeps the reservation,
// as it keeps the program forwarding. Host sockets bound in the range
// before the relay started keep working (the program passes their
// traffic, see host_socket in relay.bpf.c).

const reservedPortsPath = "/proc/sys/net/ipv4/ip_local_reserved_ports"

// localPortRangePath is the kernel's ephemeral port range (two numbers).
const localPortRangePath = "/proc/sys/net/ipv4/ip_local_port_range"

// minEphemeralPorts is how many of the kernel's ephemeral ports must stay
// free of reservations: a media range that takes (nearly) all of them
// leaves every outgoing connection on the host — the signalling's TCP
// and TLS to carriers, DNS, the store — failing with EAGAIN. The relay
// refuses to start then rather than break its host.
const minEphemeralPorts = 1024

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

// portSet is a set of ports as sorted, disjoint, non-adjacent ranges: the
// sysctl's own format ("1-3,7").
type portSet []portRange

// parsePortSet reads the sysctl's format: comma-separated ports and
// inclusive ranges, in any order, overlapping or not.
func parsePortSet(s string) (portSet, error) {
	var out portSet
	for f := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, b, isRange := strings.Cut(f, "-")
		lo, err := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%w: reserved ports %q: %w", ErrReservedPorts, f, err)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(strings.TrimSpace(b), 10, 16); err != nil {
				return nil, fmt.Errorf("%w: reserved ports %q: %w", ErrReservedPorts, f, err)
			}
		}
		if hi < lo {
			return nil, fmt.Errorf("%w: reserved ports %q: range ends before it starts", ErrReservedPorts, f)
		}
		out = append(out, portRange{uint16(lo), uint16(hi)})
	}
	return out.normal(), nil
}

// normal sorts s and merges overlapping and adjacent ranges.
func (s portSet) normal() portSet {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	var out portSet
	for _, r := range s {
		if n := len(out); n > 0 && int(r.lo) <= int(out[n-1].hi)+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func (s portSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(r.lo)))
		if r.hi != r.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(r.hi)))
		}
	}
	return b.String()
}

func (s portSet) union(o portSet) portSet { return append(slices.Clone(s), o...).normal() }

// minus is the ports of s not in o.
func (s portSet) minus(o portSet) portSet {
	var out portSet
	for _, r := range s {
		lo := int(r.lo)
		for _, x := range o {
			if int(x.hi) < lo || x.lo > r.hi {
				continue
			}
			if int(x.lo) > lo {
				out = append(out, portRange{uint16(lo), x.lo - 1})
			}
			lo = int(x.hi) + 1
		}
		if lo <= int(r.hi) {
			out = append(out, portRange{uint16(lo), r.hi})
		}
	}
	return out.normal()
}

// reservation is the relay's hold on ip_local_reserved_ports: the sysctl
// opened in the relay's network namespace (a descriptor keeps pointing
// there, whichever thread later writes through it), and the ports this
// relay — or the one before it, through the pins — added.
type reservation struct {
	f     *os.File
	added portSet
}

// reservePorts adds want to the sysctl; prev is what earlier relays of
// the same pins added (still theirs to remove). It returns the
// reservation, whose added is everything a clean exit removes.
func reservePorts(want, prev portSet) (*reservation, error) {
	f, err := os.OpenFile(reservedPortsPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReservedPorts, err)
	}
	res := &reservation{f: f}
	cur, err := res.read()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := checkEphemeral(cur.union(want)); err != nil {
		f.Close()
		return nil, err
	}
	res.added = prev.union(want.minus(cur))
	if missing := want.minus(cur); len(missing) > 0 {
		if err := res.write(cur.union(want)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return res, nil
}

// size is how many ports s holds.
func (s portSet) size() int {
	n := 0
	for _, r := range s {
		n += int(r.hi) - int(r.lo) + 1
	}
	return n
}

// ephemeralRange reads the kernel's ephemeral port range (in the calling
// thread's network namespace, like the reservation).
func ephemeralRange() (portRange, error) {
	b, err := os.ReadFile(localPortRangePath)
	if err != nil {
		return portRange{}, fmt.Errorf("%w: %w", ErrReservedPorts, err)
	}
	r, ok := parseEphemeral(string(b))
	if !ok {
		return portRange{}, fmt.Errorf("%w: %s: %q", ErrReservedPorts, localPortRangePath, b)
	}
	return r, nil
}

// parseEphemeral reads ip_local_port_range ("32768\t60999").
func parseEphemeral(s string) (portRange, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return portRange{}, false
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || hi < lo {
		return portRange{}, false
	}
	return portRange{uint16(lo), uint16(hi)}, true
}

// checkEphemeral refuses a reservation that would leave fewer than
// minEphemeralPorts of the kernel's ephemeral range.
func checkEphemeral(reserved portSet) error {
	eph, err := ephemeralRange()
	if err != nil {
		return err
	}
	all := portSet{eph}
	if left := all.minus(reserved).size(); left < min(minEphemeralPorts, all.size()) {
		return fmt.Errorf("%w: reserving the media ports would leave %d of the kernel's %d ephemeral ports (net.ipv4.ip_local_port_range %d-%d): every outgoing connection on this host would fail; narrow --port-min/--port-max or move ip_local_port_range away from them",
			ErrEphemeralPorts, left, all.size(), eph.lo, eph.hi)
	}
	return nil
}

func (r *reservation) read() (portSet, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Pread(int(r.f.Fd()), buf, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", ErrReservedPorts, err)
	}
	return parsePortSet(string(buf[:n]))
}

func (r *reservation) write(s portSet) error {
	// an empty list is written as a newline: the kernel clears the set
	if _, err := unix.Pwrite(int(r.f.Fd()), []byte(s.String()+"\n"), 0); err != nil {
		return fmt.Errorf("%w: write %q: %w", ErrReservedPorts, s.String(), err)
	}
	return nil
}

// release removes the ports this reservation added (and only those: an
// operator's own reservations inside the range stay) and closes it.
func (r *reservation) release() error {
	defer r.f.Close()
	cur, err := r.read()
	if err != nil {
		return err
	}
	return r.write(cur.minus(r.added))
}

// close forgets the reservation and leaves the ports reserved (a restart:
// the program still owns the range).
func (r *reservation) close() { r.f.Close() }

// hostUDPPorts lists the ports in [lo, hi] that UDP sockets of the
// relay's network namespace hold (read from /proc/thread-self/net, so
// from the namespace of the calling thread): the socketless relay never
// allocates them, so a host program bound inside the range before the
// relay started keeps its traffic.
func hostUDPPorts(lo, hi int) map[uint16]bool {
	out := map[uint16]bool{}
	for _, f := range []string{"/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if i == 0 || len(fields) < 2 {
				continue
			}
			_, port, ok := strings.Cut(fields[1], ":") // local_address, hex ADDR:PORT
			if !ok {
				continue
			}
			p, err := strconv.ParseUint(port, 16, 16)
			if err == nil && int(p) >= lo && int(p) <= hi {
				out[uint16(p)] = true
			}
		}
	}
	return out
}
