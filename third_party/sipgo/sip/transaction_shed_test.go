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

// requireShed: the transaction keeps of its request only the method (fork:
// shed), and of its responses only what keepResp says.
func requireShed(t *testing.T, tx *baseTx, method RequestMethod, keepResp bool) {
	t.Helper()
	require.Nil(t, tx.Origin(), "request kept")
	require.Equal(t, method, tx.method)
	tx.fsmMu.Lock()
	defer tx.fsmMu.Unlock()
	require.Equal(t, keepResp, tx.fsmResp != nil, "last response kept")
}

// TestServerTxShed: a non-INVITE server transaction in Completed keeps its
// final response (over UDP as the datagram sent) and resends it to a
// retransmission, which the handler
// does not see again; an INVITE server transaction in Accepted keeps
// neither request nor 2xx, absorbs a retransmitted INVITE without an
// answer, and is still held for Timer L by TerminateGracefully.
func TestServerTxShed(t *testing.T) {
	t1, t2, t4 := T1, T2, T4
	SetTimers(500*time.Millisecond, 4*time.Second, 5*time.Second)
	t.Cleanup(func() { SetTimers(t1, t2, t4) })
	for _, method := range []RequestMethod{OPTIONS, INVITE} {
		t.Run(string(method), func(t *testing.T) {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			require.NoError(t, err)
			tp := NewTransportLayer(net.DefaultResolver, NewParser(), nil)
			txl := NewTransactionLayer(tp)
			seen := make(chan *ServerTx, 4)
			txl.OnRequest(func(req *Request, tx *ServerTx) {
				if req.IsAck() {
					return
				}
				res := NewResponseFromRequest(req, 200, "OK", []byte("v=0\r\n"))
				if req.IsInvite() {
					res.To().Params.Add("tag", "uas")
					res.AppendHeader(&ContactHeader{Address: Uri{Host: "127.0.0.1", Port: 5060}})
				}
				require.NoError(t, tx.Respond(res))
				seen <- tx
			})
			go tp.ServeUDP(pc)
			t.Cleanup(func() { txl.Close(); tp.Close() })
			addr := pc.LocalAddr().String()

			c, err := net.Dial("udp4", addr)
			require.NoError(t, err)
			defer c.Close()
			req := rawRequest(string(method), c.LocalAddr().String(), addr)
			require.Equal(t, "SIP/2.0 200 OK", exchange(t, c, req))
			tx := <-seen
			// Over UDP neither keeps the parsed response: Completed
			// keeps the datagram it sent (passFinal).
			requireShed(t, &tx.baseTx, method, false)
			tx.fsmMu.Lock()
			wire := tx.wire
			tx.fsmMu.Unlock()
			require.Equal(t, method != INVITE, wire != nil, "final response's datagram kept")

			_, err = c.Write(req) // a retransmission
			require.NoError(t, err)
			buf := make([]byte, 4096)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
			n, err := c.Read(buf)
			if method == INVITE {
				require.Error(t, err, "Accepted answered a retransmitted INVITE: %q", buf[:n])
				tx.TerminateGracefully()
				select {
				case <-tx.Done():
					t.Fatal("TerminateGracefully ended an answered INVITE transaction before Timer L")
				default:
				}
			} else {
				require.NoError(t, err, "Completed did not resend its 200")
				require.True(t, bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200 OK")), "%q", buf[:n])
				require.Equal(t, string(wire), string(buf[:n]), "the resent 200 is not the datagram first sent")
				require.True(t, bytes.HasSuffix(wire, []byte("\r\n\r\nv=0\r\n")), "%q", wire)
			}
			select {
			case <-seen:
				t.Fatal("the handler saw the retransmission")
			default:
			}
		})
	}
}

// TestClientTxShed: an INVITE client transaction in Accepted keeps neither
// request nor 2xx and still passes a retransmitted 2xx to the hook; a
// non-INVITE one in Completed keeps neither.
func TestClientTxShed(t *testing.T) {
	t1, t2, t4 := T1, T2, T4
	SetTimers(500*time.Millisecond, 4*time.Second, 5*time.Second)
	t.Cleanup(func() { SetTimers(t1, t2, t4) })
	newTx := func(req *Request) *ClientTx {
		req.raddr = Addr{IP: net.ParseIP("127.0.0.99"), Port: 5060}
		conn := &UDPConnection{PacketConn: &fakes.UDPConn{
			Reader:  bytes.NewBuffer(nil),
			Writers: map[string]io.Writer{"127.0.0.99:5060": io.Discard},
		}}
		tx := NewClientTx("shed", req, conn, slog.Default())
		require.NoError(t, tx.Init())
		t.Cleanup(tx.Terminate)
		return tx
	}

	t.Run("INVITE", func(t *testing.T) {
		req, _, _ := testCreateInvite(t, "sip:127.0.0.99:5060", "udp", "127.0.0.2:5060")
		req.SetBody([]byte("v=0\r\n"))
		tx := newTx(req)
		again := make(chan *Response, 1)
		require.True(t, tx.OnRetransmission(func(r *Response) { again <- r }))
		res := NewResponseFromRequest(req, StatusOK, "OK", nil)
		go tx.Receive(res)
		require.Same(t, res, <-tx.Responses())
		require.Eventually(t, func() bool { return compareFunctions(tx.currentFsmState(), tx.inviteStateAccepted) == nil }, time.Second, time.Millisecond)
		requireShed(t, &tx.baseTx, INVITE, false)

		retr := NewResponseFromRequest(req, StatusOK, "OK", nil)
		tx.Receive(retr)
		require.Same(t, retr, <-again)
		requireShed(t, &tx.baseTx, INVITE, false)
	})
	t.Run("BYE", func(t *testing.T) {
		inv, _, _ := testCreateInvite(t, "sip:127.0.0.99:5060", "udp", "127.0.0.2:5060")
		req := inv.Clone()
		req.Method = BYE
		req.CSeq().MethodName = BYE
		tx := newTx(req)
		res := NewResponseFromRequest(req, StatusOK, "OK", nil)
		go tx.Receive(res)
		require.Same(t, res, <-tx.Responses())
		require.Eventually(t, func() bool { return compareFunctions(tx.currentFsmState(), tx.stateCompleted) == nil }, time.Second, time.Millisecond)
		requireShed(t, &tx.baseTx, BYE, false)
	})
}

// collectedSoon reports whether the object whose cleanup closes done is
// collected within a few GC cycles.
func collectedSoon(done <-chan struct{}) bool {
	for i := 0; i < 50; i++ {
		runtime.GC()
		select {
		case <-done:
			return true
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// TestTerminatedTxCollected: a transaction terminated in an absorbing
// state (ReadBye ends the INVITE server transaction in Accepted, WriteBye
// the INVITE client one) is garbage at once: its Timer L or M no longer
// holds it until the timer would have fired (32 s with the RFC timers).
func TestTerminatedTxCollected(t *testing.T) {
	t1, t2, t4 := T1, T2, T4
	SetTimers(500*time.Millisecond, 4*time.Second, 5*time.Second)
	t.Cleanup(func() { SetTimers(t1, t2, t4) })
	conn := func() *UDPConnection {
		return &UDPConnection{PacketConn: &fakes.UDPConn{
			Reader:  bytes.NewBuffer(nil),
			Writers: map[string]io.Writer{"127.0.0.99:5060": io.Discard, "127.0.0.2:5060": io.Discard},
		}}
	}

	t.Run("server", func(t *testing.T) {
		done := make(chan struct{})
		func() {
			req, _, _ := testCreateInvite(t, "sip:127.0.0.99:5060", "udp", "127.0.0.2:5060")
			req.raddr = Addr{IP: net.ParseIP("127.0.0.2"), Port: 5060}
			tx := NewServerTx("collect-s", req, conn(), slog.Default())
			require.NoError(t, tx.Init())
			res := NewResponseFromRequest(req, StatusOK, "OK", nil)
			require.NoError(t, tx.Respond(res))
			require.NoError(t, compareFunctions(tx.currentFsmState(), tx.inviteStateAccepted))
			tx.Terminate()
			runtime.AddCleanup(tx, func(ch chan struct{}) { close(ch) }, done)
		}()
		require.True(t, collectedSoon(done), "a terminated INVITE server transaction stays alive (Timer L)")
	})
	t.Run("client", func(t *testing.T) {
		done := make(chan struct{})
		func() {
			req, _, _ := testCreateInvite(t, "sip:127.0.0.99:5060", "udp", "127.0.0.2:5060")
			req.raddr = Addr{IP: net.ParseIP("127.0.0.99"), Port: 5060}
			tx := NewClientTx("collect-c", req, conn(), slog.Default())
			require.NoError(t, tx.Init())
			res := NewResponseFromRequest(req, StatusOK, "OK", nil)
			go tx.Receive(res)
			<-tx.Responses()
			require.Eventually(t, func() bool { return compareFunctions(tx.currentFsmState(), tx.inviteStateAccepted) == nil }, time.Second, time.Millisecond)
			tx.Terminate()
			runtime.AddCleanup(tx, func(ch chan struct{}) { close(ch) }, done)
		}()
		require.True(t, collectedSoon(done), "a terminated INVITE client transaction stays alive (Timer M)")
	})
}
