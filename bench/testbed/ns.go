package testbed

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// NS is one network namespace of a lab.
type NS struct {
	// Name is the logical name given to AddNS, e.g. "caller".
	Name string
	// NetnsName is the real name, for `ip netns exec` and `ip -n`.
	NetnsName string

	lab *Lab

	mu      sync.Mutex
	fd      int  // open /run/netns/NetnsName; 0 while being created, -1 after Close
	created bool // `ip netns add` succeeded: the name is ours to delete
	removed bool
	ifnames map[string]bool
}

func (n *NS) String() string { return n.NetnsName }

// Do runs fn on an OS thread switched into the namespace and switches the
// thread back afterwards. Sockets created in fn stay in the namespace for
// their whole life; goroutines started by fn do not run in it. fn must not
// call runtime.UnlockOSThread.
//
// If the thread cannot be switched back it stays locked, so the runtime
// terminates it when Do returns instead of reusing a thread that is in the
// wrong namespace.
func (n *NS) Do(fn func() error) error {
	n.mu.Lock()
	if n.fd <= 0 {
		n.mu.Unlock()
		return fmt.Errorf("%w: namespace %s", ErrClosed, n.NetnsName)
	}
	target, err := unix.Dup(n.fd)
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("testbed: dup netns fd: %w", err)
	}
	defer unix.Close(target)

	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testbed: open current netns: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("testbed: setns %s: %w", n.NetnsName, err)
	}
	defer func() {
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			return // stay locked: the thread dies with this goroutine's lock
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// Command returns `ip netns exec NetnsName name args...`. The caller owns
// the command; use Start for processes the lab should track and kill.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NetnsName, name}, args...)...)
}

// Run runs a command in the namespace and returns its combined output; a
// failure's error carries the output.
func (n *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testbed: %s: %s %s: %w: %s", n.NetnsName, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// IP runs ip(8) with args against the namespace (`ip -n NetnsName args...`).
func (n *NS) IP(args ...string) (string, error) {
	out, err := outputIP(append([]string{"-n", n.NetnsName}, args...)...)
	return string(out), err
}

// AddRoute adds a route to dst via the gateway via. Default routes are refused,
// and both addresses must be in the benchmarking ranges.
func (n *NS) AddRoute(dst netip.Prefix, via netip.Addr) error {
	if !dst.IsValid() || dst.Bits() == 0 {
		return fmt.Errorf("%w: %v", ErrDefaultRoute, dst)
	}
	if err := checkPrefix(dst); err != nil {
		return err
	}
	if err := checkAddr(via); err != nil {
		return err
	}
	_, err := n.IP("route", "add", dst.Masked().String(), "via", via.String())
	return err
}

// AddNeighbor adds (or replaces) a permanent neighbour entry on dev.
func (n *NS) AddNeighbor(dev string, ip netip.Addr, mac net.HardwareAddr) error {
	if err := checkAddr(ip); err != nil {
		return err
	}
	_, err := n.IP("neigh", "replace", ip.String(), "lladdr", mac.String(), "dev", dev, "nud", "permanent")
	return err
}

// SetSysctl writes a sysctl inside the namespace, e.g.
// SetSysctl("net.ipv4.ip_forward", "1"). A key containing '/' is taken as a
// path under /proc/sys, for interface names with dots in them.
func (n *NS) SetSysctl(key, value string) error {
	p := sysctlPath(key)
	return n.Do(func() error {
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return fmt.Errorf("testbed: %s: sysctl %s=%s: %w", n.NetnsName, key, value, err)
		}
		return nil
	})
}

// Sysctl reads a sysctl inside the namespace.
func (n *NS) Sysctl(key string) (string, error) {
	var v string
	err := n.Do(func() error {
		b, err := os.ReadFile(sysctlPath(key))
		if err != nil {
			return fmt.Errorf("testbed: %s: sysctl %s: %w", n.NetnsName, key, err)
		}
		v = strings.TrimSpace(string(b))
		return nil
	})
	return v, err
}

func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return "/proc/sys/" + strings.TrimPrefix(key, "/")
}

// Interface looks up an interface of the namespace by name.
func (n *NS) Interface(name string) (*net.Interface, error) {
	var ifi *net.Interface
	err := n.Do(func() error {
		var err error
		ifi, err = net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("testbed: %s: %w", n.NetnsName, err)
		}
		return nil
	})
	return ifi, err
}

// remove deletes the namespace's name, once, and only if the lab created it:
// never a namespace of the same name that someone else made.
func (n *NS) remove() error {
	n.mu.Lock()
	if !n.created || n.removed {
		n.mu.Unlock()
		return nil
	}
	n.removed = true
	n.mu.Unlock()
	if _, err := os.Stat(netnsPath(n.NetnsName)); err != nil {
		return nil // deleted behind our back
	}
	return runIP("netns", "delete", n.NetnsName)
}

func (n *NS) hasLink(name string) bool {
	_, err := n.Interface(name)
	return err == nil
}

var (
	bench4 = netip.MustParsePrefix("198.18.0.0/15")
	bench6 = netip.MustParsePrefix("2001:2::/48")
)

func checkAddr(a netip.Addr) error {
	a = a.Unmap()
	if !bench4.Contains(a) && !bench6.Contains(a) {
		return fmt.Errorf("%w: %v", ErrAddrNotAllowed, a)
	}
	return nil
}

func checkPrefix(p netip.Prefix) error {
	a := p.Addr()
	for _, r := range []netip.Prefix{bench4, bench6} {
		if r.Contains(a) && p.Bits() >= r.Bits() {
			return nil
		}
	}
	return fmt.Errorf("%w: %v", ErrAddrNotAllowed, p)
}
