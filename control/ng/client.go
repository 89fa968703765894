package ng

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/xtrunk/xtrunk/control/sockbuf"
)

// Defaults for the client's options.
const (
	DefaultTimeout    = 3 * time.Second
	DefaultRetransmit = 500 * time.Millisecond
)

// Client sends NG commands to one rtpengine (or xtrunk) over UDP.
//
// All requests share one connected socket. A reader goroutine hands each
// reply to the request waiting on its cookie and drops replies nobody waits
// for (late answers to requests that timed out). Client is safe for
// concurrent use.
type Client struct {
	conn       *net.UDPConn
	timeout    time.Duration
	retransmit time.Duration
	laddr      string // WithLocalAddr
	rcvbuf     int    // WithReceiveBuffer
	rcv        sockbuf.Result

	mu      sync.Mutex
	pending map[string]chan string
	closed  bool

	done      chan struct{} // closed when the reader exits
	closeOnce sync.Once
	closeErr  error
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithTimeout bounds each request, retransmits included (default 3s).
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithRetransmit sets how long to wait for a reply before sending the
// request again, with the same cookie (default 500ms).
func WithRetransmit(d time.Duration) ClientOption {
	return func(c *Client) {
		if d > 0 {
			c.retransmit = d
		}
	}
}

// WithLocalAddr sends from addr ("ip:port", port 0 for any): the relay
// serves only the sources its --ng-allow lists.
func WithLocalAddr(addr string) ClientOption {
	return func(c *Client) { c.laddr = addr }
}

// WithReceiveBuffer asks for a receive buffer of n bytes on the client's
// socket (default sockbuf.DefaultReceive; <= 0: the kernel's default):
// replies arriving in a burst while the reader is stalled are dropped
// when it is full, and each costs its request a retransmission.
func WithReceiveBuffer(n int) ClientOption {
	return func(c *Client) { c.rcvbuf = n }
}

// Dial returns a client for the NG port at addr ("host:port").
func Dial(addr string, opts ...ClientOption) (*Client, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("ng: dial %s: %w", addr, err)
	}
	c := &Client{
		timeout:    DefaultTimeout,
		retransmit: DefaultRetransmit,
		rcvbuf:     sockbuf.DefaultReceive,
		pending:    make(map[string]chan string),
		done:       make(chan struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	var laddr *net.UDPAddr
	if c.laddr != "" {
		if laddr, err = net.ResolveUDPAddr("udp", c.laddr); err != nil {
			return nil, fmt.Errorf("ng: local address %s: %w", c.laddr, err)
		}
	}
	if c.conn, err = net.DialUDP("udp", laddr, raddr); err != nil {
		return nil, fmt.Errorf("ng: dial %s: %w", addr, err)
	}
	if c.rcv, err = sockbuf.SetReceive(c.conn, c.rcvbuf); err != nil {
		_ = c.conn.Close()
		return nil, fmt.Errorf("ng: dial %s: %w", addr, err)
	}
	go c.readLoop()
	return c, nil
}

// ReceiveBuffer is what the client's socket got of WithReceiveBuffer.
func (c *Client) ReceiveBuffer() sockbuf.Result { return c.rcv }

// SyscallConn is the client socket's, for sockbuf.Collector (its drops).
func (c *Client) SyscallConn() (syscall.RawConn, error) { return c.conn.SyscallConn() }

// LocalAddr returns the client socket's address.
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Close stops the client; requests in progress fail with ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.closeErr = c.conn.Close()
		<-c.done
	})
	return c.closeErr
}

func (c *Client) readLoop() {
	defer close(c.done)
	buf := make([]byte, MaxDatagram)
	var backoff time.Duration
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED after an ICMP port unreachable, mostly: the
			// daemon may be restarting, and the requests keep retrying.
			backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		i := bytes.IndexByte(buf[:n], ' ')
		if i <= 0 {
			continue
		}
		c.mu.Lock()
		ch := c.pending[string(buf[:i])]
		c.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case ch <- string(buf[:n]):
		default: // already has a reply: this is a duplicate
		}
	}
}

// newCookie returns a random cookie. rtpengine caches replies by cookie
// alone, whoever sent it, so cookies must be unique across all its clients.
func newCookie() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// Do sends req with a fresh cookie, retransmits it until a reply with that
// cookie arrives, and returns the reply. If the reply's result is "error",
// Do returns the reply and a *ReplyError. It returns an error wrapping
// ErrTimeout if no reply came within the client's timeout, and ctx.Err()
// if ctx ended first.
func (c *Client) Do(ctx context.Context, req Dict) (Dict, error) {
	cmd := req.Str("command")
	raw, err := c.roundTrip(ctx, req, cmd)
	if err != nil {
		return nil, err
	}
	_, d, err := parseMessage(raw)
	if err != nil {
		return nil, fmt.Errorf("%w (in the reply to %q)", err, cmd)
	}
	return d, replyErr(d.Str("result"), d.Str("error-reason"), cmd)
}

// Query is [Client.Do] for "query" and "delete": the reply, a call's
// statistics, is decoded straight into a QueryReply (no Dicts).
func (c *Client) Query(ctx context.Context, req Dict) (QueryReply, error) {
	cmd := req.Str("command")
	raw, err := c.roundTrip(ctx, req, cmd)
	if err != nil {
		return QueryReply{}, err
	}
	q, result, reason, err := parseQueryMessage(raw)
	if err != nil {
		return QueryReply{}, fmt.Errorf("%w (in the reply to %q)", err, cmd)
	}
	return q, replyErr(result, reason, cmd)
}

// replyErr is the error a reply's result stands for: none for "ok" (and
// anything else rtpengine may answer), a *ReplyError for "error".
func replyErr(result, reason, cmd string) error {
	switch result {
	case "":
		return fmt.Errorf("%w (command %q)", ErrNoResult, cmd)
	case "error":
		return NewReplyError(reason)
	}
	return nil
}

// roundTrip sends req and returns the raw reply ("cookie SP bencode").
func (c *Client) roundTrip(ctx context.Context, req Dict, cmd string) (string, error) {
	cookie := newCookie()
	msg, err := AppendMessage(nil, cookie, req)
	if err != nil {
		return "", fmt.Errorf("%w (command %q)", err, cmd)
	}
	if len(msg) > maxReply {
		return "", fmt.Errorf("%w: %d bytes (command %q)", ErrTooLarge, len(msg), cmd)
	}
	ch := make(chan string, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", ErrClosed
	}
	c.pending[cookie] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, cookie)
		c.mu.Unlock()
	}()

	// One timer serves both the retransmits and the timeout (a timer and
	// a ticker per request were two of the runtime's timers to add and
	// remove, three or four requests a call).
	deadline := time.Now().Add(c.timeout)
	tick := time.NewTimer(min(c.retransmit, c.timeout))
	defer tick.Stop()

	var sendErr error
	send := func() error {
		_, err := c.conn.Write(msg)
		switch {
		case err == nil:
		case errors.Is(err, net.ErrClosed):
			return ErrClosed
		case errors.Is(err, syscall.ECONNREFUSED):
			sendErr = err // nobody listening yet; keep trying
		default:
			return fmt.Errorf("ng: sending %q: %w", cmd, err)
		}
		return nil
	}
	if err := send(); err != nil {
		return "", err
	}
	for {
		select {
		case raw := <-ch:
			return raw, nil
		case now := <-tick.C:
			if left := deadline.Sub(now); left > 0 {
				if err := send(); err != nil {
					return "", err
				}
				tick.Reset(min(c.retransmit, left))
				continue
			}
			if sendErr != nil {
				return "", fmt.Errorf("%w: command %q after %v (last send error: %w)", ErrTimeout, cmd, c.timeout, sendErr)
			}
			return "", fmt.Errorf("%w: command %q after %v", ErrTimeout, cmd, c.timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		case <-c.done:
			return "", ErrClosed
		}
	}
}
