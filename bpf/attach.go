package bpf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// XDPMode is how the program is attached to a device.
type XDPMode string

// Attach modes. ModeAuto tries native (driver) XDP and falls back to
// generic only where the driver has none, saying so.
const (
	ModeAuto    XDPMode = "auto"
	ModeNative  XDPMode = "native"
	ModeGeneric XDPMode = "generic"
)

// Attachment describes the program on one device.
type Attachment struct {
	Device  string
	Ifindex int
	Mode    XDPMode // the mode actually in use
	Adopted bool    // the link was already pinned and has been updated in place
}

// linkPin is where the link on dev is pinned. bpffs refuses names with a
// dot, which device names may have (a VLAN such as eth0.100): a dot
// becomes "@", which no device name has.
func linkPin(dir, dev string) string {
	return filepath.Join(dir, "link_"+strings.ReplaceAll(dev, ".", "@"))
}

// modePin is where the mode a link was attached in is marked: a second
// pin of the link (bpffs holds no files), "@" and not "." (refused).
func modePin(pin string, m XDPMode) string { return pin + "@" + string(m) }

// Attach puts the program on device dev. A link pinned there by an earlier
// process is updated in place (no gap in forwarding); otherwise a new link
// is created and pinned. The device becomes a redirect target.
func (d *Dataplane) Attach(dev string, mode XDPMode) (Attachment, error) {
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return Attachment{}, fmt.Errorf("%w: %w", ErrNoXDP, err)
	}
	a := Attachment{Device: dev, Ifindex: ifc.Index}
	pin := linkPin(d.pinDir, dev)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(d.objs.XtrRelay); err != nil {
			l.Close()
			return a, fmt.Errorf("%w: update pinned link on %s: %w", ErrNoXDP, dev, err)
		}
		info, _ := l.Info()
		a.Mode = ModeNative
		if info != nil {
			if x := info.XDP(); x != nil && x.Ifindex != uint32(ifc.Index) {
				l.Close()
				return a, fmt.Errorf("%w: pinned link %s is on ifindex %d, not %s", ErrNoXDP, pin, x.Ifindex, dev)
			}
		}
		if m, ok := readMode(pin); ok {
			a.Mode = m
		}
		a.Adopted = true
		d.links[ifc.Index] = l
	} else {
		var l link.Link
		tryModes := []XDPMode{mode}
		if mode == ModeAuto || mode == "" {
			tryModes = []XDPMode{ModeNative, ModeGeneric}
		}
		var errs []error
		for _, m := range tryModes {
			flags := link.XDPDriverMode
			if m == ModeGeneric {
				flags = link.XDPGenericMode
			}
			l, err = link.AttachXDP(link.XDPOptions{Program: d.objs.XtrRelay, Interface: ifc.Index, Flags: flags})
			if err == nil {
				a.Mode = m
				break
			}
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
		}
		if l == nil {
			return a, fmt.Errorf("%w on %s: %w", ErrNoXDP, dev, errors.Join(errs...))
		}
		if err := l.Pin(pin); err != nil {
			l.Close()
			return a, fmt.Errorf("pin link: %w", err)
		}
		writeMode(pin, a.Mode)
		d.links[ifc.Index] = l
	}
	if err := enableForwarding(dev); err != nil {
		return a, err
	}
	if err := d.objs.XtrTxPortsV3.Put(uint32(ifc.Index), uint32(ifc.Index)); err != nil {
		return a, fmt.Errorf("add %s to tx ports: %w", dev, err)
	}
	d.attach = append(d.attach, a)
	return a, nil
}

// The kernel's link info does not say which XDP mode a link uses, so the
// mode is remembered as a second pin of the same link, "link_DEV@MODE"
// (bpffs holds no regular files).
func readMode(pin string) (XDPMode, bool) {
	for _, m := range []XDPMode{ModeNative, ModeGeneric} {
		if _, err := os.Stat(modePin(pin, m)); err == nil {
			return m, true
		}
	}
	return "", false
}

func writeMode(pin string, m XDPMode) {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return
	}
	defer l.Close()
	// A link loaded from a pin moves that pin when pinned again
	// (cilium/ebpf renames): pin a duplicate descriptor, which knows no
	// path, so that both pins stay.
	raw, ok := l.(interface{ FD() int })
	if !ok {
		return
	}
	fd, err := unix.FcntlInt(uintptr(raw.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return
	}
	dup, err := link.NewFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return
	}
	defer dup.Close()
	_ = dup.Pin(modePin(pin, m))
}

// Attachments lists the devices the program is on.
func (d *Dataplane) Attachments() []Attachment { return append([]Attachment(nil), d.attach...) }

// enableForwarding turns on IP forwarding for dev: bpf_fib_lookup answers
// "forwarding disabled" for packets arriving on a device without it, and
// the fast path is, to the kernel, forwarding. The caller's network
// namespace is the one changed.
func enableForwarding(dev string) error {
	for _, p := range []string{
		"/proc/sys/net/ipv4/conf/" + dev + "/forwarding",
		"/proc/sys/net/ipv6/conf/" + dev + "/forwarding",
	} {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
			continue
		}
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("enable forwarding on %s (bpf_fib_lookup needs it): %w", dev, err)
		}
	}
	return nil
}
