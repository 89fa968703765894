// Package testbed builds network-namespace labs for integration tests, the demo
// and the benchmarks.
//
// A Lab is a set of network namespaces joined by veth pairs. Every lab gets a
// random name prefix (NetnsPrefix followed by hex), so labs in parallel tests and
// in parallel test binaries never collide, and Close removes everything the lab
// created: processes started through it, XDP attachments, veth pairs and
// namespaces. The veth ends are created directly inside their namespaces, so
// nothing ever appears in the host's namespace.
//
// Labs cannot reach a real network: addresses and routes are only accepted from
// the benchmarking ranges 198.18.0.0/15 (RFC 2544) and 2001:2::/48 (RFC 5180),
// and AddRoute refuses default routes.
//
// Everything here needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF). The
// package does not import testing, so `xtrunk demo` and `xtrunk bench` can
// use it without test code in the binary; tests use the wrappers in
// bench/testbed/labtest (NewLab, NewTriangle, RequirePrivileged, ...), which
// skip without privileges unless XTRUNK_REQUIRE_PRIVILEGED=1, in which case
// they fail.
//
// Link, address and namespace setup shells out to ip(8) from iproute2;
// switching a thread into a namespace (NS.Do), sysctls and XDP attachment are
// done in-process.
package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// NetnsPrefix starts the name of every namespace a lab creates with the
// default (random) prefix; CleanupStale looks for it.
const NetnsPrefix = "xtb"

// ipTimeout bounds every ip(8) invocation, so a wedged command cannot hang
// a test or Close.
const ipTimeout = 20 * time.Second

// Option configures a Lab or a Triangle.
type Option func(*config)

type config struct {
	prefix          string
	staticNeighbors bool
	mtu             int
	gro             bool
	txChecksum      bool // keep TX checksum offload on the triangle's veths
	noIPv6          bool
}

// WithPrefix replaces the random namespace-name prefix, e.g. "demo-" for a
// demo whose namespaces people type by hand. Labs with the same prefix collide,
// and CleanupStale does not recognise them.
func WithPrefix(prefix string) Option { return func(c *config) { c.prefix = prefix } }

// WithStaticNeighbors makes NewTriangle add permanent neighbour entries for
// every peer on every host, so no ARP or neighbour discovery happens.
func WithStaticNeighbors() Option { return func(c *config) { c.staticNeighbors = true } }

// WithMTU sets the MTU of the triangle's veths (default 1500).
func WithMTU(mtu int) Option { return func(c *config) { c.mtu = mtu } }

// WithGRO turns GRO on for the triangle's veths (LinkOptions.GRO).
func WithGRO() Option { return func(c *config) { c.gro = true } }

// WithTxChecksumOffload keeps TX checksum offload on the triangle's veths.
// By default the triangle turns it off (LinkOptions.TxChecksumOff): a datagram
// sent from a socket on a veth leaves with only a partial checksum, and once an
// XDP program redirects the frame nothing completes it, so the receiver drops
// it as corrupt.
func WithTxChecksumOffload() Option { return func(c *config) { c.txChecksum = true } }

// WithoutIPv6 makes NewTriangle assign IPv4 addresses only.
func WithoutIPv6() Option { return func(c *config) { c.noIPv6 = true } }

// Lab is a set of network namespaces joined by veth pairs. Its methods are safe
// for concurrent use.
type Lab struct {
	// Prefix starts the real name of every namespace in the lab.
	Prefix string

	cfg config

	mu     sync.Mutex
	closed bool
	nss    []*NS
	links  []*Link
	procs  []*Process
	xdp    []link.Link
	passFn *ebpf.Program

	ifindexes int // veth ifindexes handed out, from firstIfindex
}

// New creates an empty lab with a unique name prefix.
func New(opts ...Option) (*Lab, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.prefix == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("testbed: random prefix: %w", err)
		}
		c.prefix = NetnsPrefix + hex.EncodeToString(b[:]) + "-"
	}
	return &Lab{Prefix: c.prefix, cfg: c}, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// AddNS creates a namespace with logical name name (real name Prefix+name) and
// brings its loopback up. IPv6 duplicate address detection is turned off in the
// namespace, so IPv6 addresses can be bound as soon as they are added, and so
// are router solicitations, which would otherwise show up in captures.
func (l *Lab) AddNS(name string) (*NS, error) {
	if !nameRE.MatchString(name) || !nameRE.MatchString(l.Prefix+name) || len(l.Prefix+name) > 200 {
		return nil, fmt.Errorf("%w: namespace %q", ErrBadName, l.Prefix+name)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	for _, n := range l.nss {
		if n.Name == name {
			l.mu.Unlock()
			return nil, fmt.Errorf("%w: namespace %q", ErrDuplicate, name)
		}
	}
	n := &NS{Name: name, NetnsName: l.Prefix + name, lab: l, ifnames: map[string]bool{}}
	// Registered before it exists, so Close deletes it even if setup fails half way.
	l.nss = append(l.nss, n)
	l.mu.Unlock()

	if err := runIP("netns", "add", n.NetnsName); err != nil {
		return nil, err
	}
	fd, err := unix.Open(netnsPath(n.NetnsName), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	n.mu.Lock()
	n.created = true
	if n.fd < 0 { // the lab was closed meanwhile
		n.mu.Unlock()
		if err == nil {
			unix.Close(fd)
		}
		return nil, errors.Join(ErrClosed, n.remove())
	}
	if err == nil {
		n.fd = fd
	}
	n.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("testbed: open netns %s: %w", n.NetnsName, err)
	}
	if err := runIP("-n", n.NetnsName, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	for _, kv := range [][2]string{
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		// Keep router solicitations out of packet counts and captures.
		{"net.ipv6.conf.default.router_solicitations", "0"},
	} {
		if err := n.SetSysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// NS returns the namespace with logical name name, or nil.
func (l *Lab) NS(name string) *NS {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.nss {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Namespaces returns the lab's namespaces in creation order.
func (l *Lab) Namespaces() []*NS {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*NS(nil), l.nss...)
}

// Close kills the processes started through the lab, detaches its XDP
// programs, deletes its veth pairs and namespaces. It keeps going after errors
// and returns them all. Calling it again does nothing and returns nil.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs, xdps, links, nss, pass := l.procs, l.xdp, l.links, l.nss, l.passFn
	l.procs, l.xdp, l.links, l.passFn = nil, nil, nil, nil
	l.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if err := p.Kill(); err != nil {
			errs = append(errs, fmt.Errorf("killing %s: %w", p, err))
		}
	}
	for _, x := range xdps {
		if err := x.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detaching XDP: %w", err))
		}
	}
	if pass != nil {
		if err := pass.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing XDP program: %w", err))
		}
	}
	// Deleting the veths explicitly makes them go away now, even if something
	// (a socket, a stray process) keeps a namespace alive after it is unnamed.
	for _, k := range links {
		if k.A.NS.hasLink(k.A.Name) {
			if err := runIP("-n", k.A.NS.NetnsName, "link", "del", k.A.Name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for i := len(nss) - 1; i >= 0; i-- {
		n := nss[i]
		n.mu.Lock()
		if n.fd > 0 {
			unix.Close(n.fd)
		}
		n.fd = -1
		n.mu.Unlock()
		if err := n.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) track(p *Process) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.procs = append(l.procs, p)
	return nil
}

func netnsPath(name string) string { return "/run/netns/" + name }

// runIP runs ip(8) in the host namespace (or, with -n, in a named one) and
// returns its output in the error.
func runIP(args ...string) error {
	_, err := outputIP(args...)
	return err
}

func outputIP(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("testbed: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// CleanupStale deletes namespaces left behind by labs with the default prefix
// (by test binaries that were killed before Close could run) that are older
// than maxAge. It only removes the namespace names; veths inside go away with
// the namespaces, processes that still run in them are left alone.
func CleanupStale(maxAge time.Duration) error {
	return cleanupStale(regexp.MustCompile(`^`+NetnsPrefix+`[0-9a-f]{8}-`), maxAge, time.Now())
}

func cleanupStale(match *regexp.Regexp, maxAge time.Duration, now time.Time) error {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !match.MatchString(e.Name()) {
			continue
		}
		// The nsfs inode behind the bind mount carries the creation time.
		fi, err := os.Stat(netnsPath(e.Name()))
		if err != nil || now.Sub(fi.ModTime()) < maxAge {
			continue
		}
		if err := runIP("netns", "delete", e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
