package testbed

import (
	"fmt"
	"net"
)

// ListenUDP opens a UDP socket bound to addr ("198.18.1.2:5000", "[2001:2:0:1::2]:0")
// inside the namespace. A socket keeps the namespace it was created in, so
// the returned conn can be used from any goroutine.
func (n *NS) ListenUDP(addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := n.Do(func() error {
		la, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
		c, err = net.ListenUDP("udp", la)
		if err != nil {
			return fmt.Errorf("testbed: %s: %w", n.NetnsName, err)
		}
		return nil
	})
	return c, err
}

// DialUDP opens a UDP socket inside the namespace connected to raddr, with
// the source address and port the namespace's routing picks.
func (n *NS) DialUDP(raddr string) (*net.UDPConn, error) {
	return n.DialUDPFrom("", raddr)
}

// DialUDPFrom is DialUDP from the local address laddr ("" for any).
func (n *NS) DialUDPFrom(laddr, raddr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := n.Do(func() error {
		var la *net.UDPAddr
		if laddr != "" {
			var err error
			if la, err = net.ResolveUDPAddr("udp", laddr); err != nil {
				return fmt.Errorf("testbed: %w", err)
			}
		}
		ra, err := net.ResolveUDPAddr("udp", raddr)
		if err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
		c, err = net.DialUDP("udp", la, ra)
		if err != nil {
			return fmt.Errorf("testbed: %s: %w", n.NetnsName, err)
		}
		return nil
	})
	return c, err
}
