package sip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// wireCapture measures setup latency on the wire: a packet socket on the
// PBX's veth sees every SIP datagram the PBX sends and receives, with the
// kernel's receive timestamp, and pairs each call's first INVITE with its
// first 200 to that INVITE (by Call-ID). Microsecond resolution, and none
// of SIPp's own scheduling on the PBX side (SIPp's response times are
// whole milliseconds of its event-loop clock: through Kamailio they read
// 0 ms where the wire shows 2).
type wireCapture struct {
	fd     int
	stopFl atomic.Bool
	done   chan struct{}

	mu      sync.Mutex
	invites map[string]int64 // Call-ID → first INVITE seen (ns)
	setups  []float64        // ms, INVITE → 200, per answered call
	packets uint64
	err     error
}

// startCapture opens the packet socket on end (the PBX's veth) and starts
// reading. It listens for every protocol (ETH_P_ALL): only such taps see
// the datagrams the host sends, not just those it receives.
func startCapture(end *testbed.End) (*wireCapture, error) {
	c := &wireCapture{fd: -1, done: make(chan struct{}), invites: map[string]int64{}}
	err := end.NS.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("sip: packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: end.Index}); err != nil {
			return fmt.Errorf("sip: bind packet socket to %s: %w", end, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("sip: SO_TIMESTAMPNS: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, err
	}
	go c.loop()
	return c, nil
}

// answered marks a Call-ID whose 200 was seen.
const answered = -1

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *wireCapture) loop() {
	defer close(c.done)
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for !c.stopFl.Load() {
		n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			c.mu.Lock()
			c.err = fmt.Errorf("sip: capture: %w", err)
			c.mu.Unlock()
			return
		}
		ts := time.Now().UnixNano()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
					ts = int64(binary.NativeEndian.Uint64(m.Data[0:8]))*1e9 + int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				}
			}
		}
		c.packet(buf[:n], ts)
	}
}

// packet handles one IPv4 datagram seen at ts (ns).
func (c *wireCapture) packet(p []byte, ts int64) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
		return
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8 {
		return
	}
	sip := p[ihl+8:]
	invite := bytes.HasPrefix(sip, []byte("INVITE "))
	ok := bytes.HasPrefix(sip, []byte("SIP/2.0 200 "))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.packets++
	if !invite && !ok {
		return
	}
	id, method := sipHeader(sip, "Call-ID", "i"), sipHeader(sip, "CSeq", "")
	if len(id) == 0 || !bytes.HasSuffix(bytes.TrimSpace(method), []byte("INVITE")) {
		return
	}
	if invite {
		if _, seen := c.invites[string(id)]; !seen {
			c.invites[string(id)] = ts
		}
		return
	}
	if t0, seen := c.invites[string(id)]; seen && t0 != answered {
		c.setups = append(c.setups, float64(ts-t0)/1e6)
		c.invites[string(id)] = answered // later 200s are retransmissions
	}
}

// sipHeader returns the value of the first header named name (or its
// compact form), or nil.
func sipHeader(msg []byte, name, compact string) []byte {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return nil // end of the headers
		}
		k, v, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		k = bytes.TrimSpace(k)
		if bytes.EqualFold(k, []byte(name)) || (compact != "" && bytes.EqualFold(k, []byte(compact))) {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}

// take returns the setups measured since the last take and forgets them
// and the INVITEs seen.
func (c *wireCapture) take() (setups []float64, packets uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	setups, packets, err = c.setups, c.packets, c.err
	c.setups, c.packets, c.invites = nil, 0, map[string]int64{}
	return setups, packets, err
}

func (c *wireCapture) close() error {
	c.stopFl.Store(true)
	<-c.done
	return unix.Close(c.fd)
}
