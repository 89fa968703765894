package sip

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/emiago/sipgo/fakes"
	"github.com/stretchr/testify/require"
)

// TestRequestCloneOwnTo: the copy owns its To (a tag added to it is the
// copy's alone) and shares every other header object and the body.
func TestRequestCloneOwnTo(t *testing.T) {
	req, _, _ := testCreateInvite(t, "sip:bob@127.0.0.99:5060", "udp", "127.0.0.2:5060")
	req.SetBody([]byte("v=0\r\n"))
	req.SetDestination("127.0.0.99:5060")
	before := req.String()

	c := req.CloneOwnTo()
	require.NotSame(t, req.To(), c.To())
	c.To().Params.Add("tag", "dialog")
	require.Equal(t, before, req.String(), "the original changed")
	require.Contains(t, c.String(), ";tag=dialog")
	require.Equal(t, before, stripTag(c.String(), ";tag=dialog"))

	require.Len(t, c.headerOrder, len(req.headerOrder))
	for i, h := range req.headerOrder {
		if h.Name() == "To" {
			continue
		}
		require.Same(t, h, c.headerOrder[i], "%s is a copy", h.Name())
	}
	require.Same(t, req.From(), c.From())
	require.Same(t, req.CallID(), c.CallID())
	require.Same(t, req.Via(), c.Via())
	require.Same(t, &req.Body()[0], &c.Body()[0])
	require.Equal(t, req.Destination(), c.Destination())
	require.Equal(t, req.Transport(), c.Transport())
}

func stripTag(s, tag string) string {
	return string(bytes.Replace([]byte(s), []byte(tag), nil, 1))
}

// TestRequestWire: a request kept as its bytes comes back as the same
// text with the same routing, a new request each time, whatever the
// original became meanwhile.
func TestRequestWire(t *testing.T) {
	req, _, _ := testCreateInvite(t, "sip:bob@127.0.0.99:5060", "udp", "127.0.0.2:5060")
	req.Method = ACK
	req.CSeq().MethodName = ACK
	req.SetBody([]byte("v=0\r\n"))
	req.SetDestination("127.0.0.99:5060")
	req.Laddr = Addr{IP: net.ParseIP("127.0.0.2"), Port: 5060}
	req.raddr = Addr{IP: net.ParseIP("127.0.0.99"), Port: 5060}
	want, tp := req.String(), req.Transport()

	w := NewRequestWire(req)
	req.CSeq().SeqNo++ // the original changes afterwards
	req.SetDestination("127.0.0.98:5060")

	for i := 0; i < 2; i++ {
		got, err := w.Request()
		require.NoError(t, err)
		require.NotSame(t, req, got)
		require.Equal(t, want, got.String())
		require.Equal(t, ACK, got.Method)
		require.Equal(t, "127.0.0.99:5060", got.Destination())
		require.Equal(t, tp, got.Transport())
		require.Equal(t, "127.0.0.2:5060", got.Laddr.String())
		require.Equal(t, "127.0.0.99:5060", got.raddr.String())
		got.CSeq().SeqNo += 10 // not the kept one
	}
}

// TestTerminatedTxDropsHooks: a terminated transaction, still referenced
// (a dialog keeps its INVITE transaction for the whole call), no longer
// holds its hooks or what they hold.
func TestTerminatedTxDropsHooks(t *testing.T) {
	conn := func() *UDPConnection {
		return &UDPConnection{PacketConn: &fakes.UDPConn{
			Reader:  bytes.NewBuffer(nil),
			Writers: map[string]io.Writer{"127.0.0.99:5060": io.Discard, "127.0.0.2:5060": io.Discard},
		}}
	}
	// held is what a hook holds; done closes when it is collected.
	held := func() (*[256]byte, chan struct{}) {
		p, done := new([256]byte), make(chan struct{})
		runtime.AddCleanup(p, func(ch chan struct{}) { close(ch) }, done)
		return p, done
	}

	t.Run("server", func(t *testing.T) {
		req, _, _ := testCreateInvite(t, "sip:127.0.0.99:5060", "udp", "127.0.0.2:5060")
		req.raddr = Addr{IP: net.ParseIP("127.0.0.2"), Port: 5060}
		tx := NewServerTx("hooks-s", req, conn(), slog.Default())
		require.NoError(t, tx.Init())
		var dones []chan struct{}
		func() {
			a, da := held()
			b, db := held()
			dones = append(dones, da, db)
			require.True(t, tx.OnCancel(func(*Request) { a[0]++ }))
			require.True(t, tx.OnTerminate(func(string, error) { b[0]++ }))
		}()
		tx.Terminate()
		for _, d := range dones {
			require.True(t, collectedSoon(d), "a terminated server transaction holds its hooks")
		}
		runtime.KeepAlive(tx)
	})
	t.Run("client", func(t *testing.T) {
		req, _, _ := testCreateInvite(t, "sip:127.0.0.99:5060", "udp", "127.0.0.2:5060")
		req.raddr = Addr{IP: net.ParseIP("127.0.0.99"), Port: 5060}
		tx := NewClientTx("hooks-c", req, conn(), slog.Default())
		require.NoError(t, tx.Init())
		var dones []chan struct{}
		terminated := make(chan struct{})
		func() {
			a, da := held()
			b, db := held()
			dones = append(dones, da, db)
			require.True(t, tx.OnRetransmission(func(*Response) { a[0]++ }))
			require.True(t, tx.OnTerminate(func(string, error) { b[0]++; close(terminated) }))
		}()
		res := NewResponseFromRequest(req, StatusOK, "OK", nil)
		go tx.Receive(res)
		<-tx.Responses()
		tx.Terminate()
		select {
		case <-terminated: // the hook still ran, once
		case <-time.After(time.Second):
			t.Fatal("OnTerminate not called")
		}
		for _, d := range dones {
			require.True(t, collectedSoon(d), "a terminated client transaction holds its hooks")
		}
		runtime.KeepAlive(tx)
	})
}
