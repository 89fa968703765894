package sip

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lingerServer serves a transaction layer with the given linger on a real
// UDP socket of 127.0.0.1 and answers every request 200; it returns the
// socket's address and the count of requests the handler saw.
func lingerServer(t *testing.T, linger time.Duration) (string, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	tp := NewTransportLayer(net.DefaultResolver, NewParser(), nil)
	txl := NewTransactionLayer(tp, WithTransactionLayerLinger(linger))
	var seen atomic.Int32
	txl.OnRequest(func(req *Request, tx *ServerTx) {
		seen.Add(1)
		if req.IsAck() {
			return
		}
		res := NewResponseFromRequest(req, 200, "OK", nil)
		if req.IsInvite() {
			res.To().Params.Add("tag", "uas")
			res.AppendHeader(&ContactHeader{Address: Uri{Host: "127.0.0.1", Port: 5060}})
		}
		require.NoError(t, tx.Respond(res))
	})
	go tp.ServeUDP(pc)
	t.Cleanup(func() { txl.Close(); tp.Close() })
	return pc.LocalAddr().String(), &seen
}

// rawRequest is a request as a peer would put it on the wire; sending the
// same bytes again is a retransmission (same Via branch).
func rawRequest(method, peer, server string) []byte {
	cseq := 1
	return []byte(fmt.Sprintf("%s sip:bob@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-linger-%s\r\n"+
		"From: <sip:alice@%s>;tag=a1\r\nTo: <sip:bob@%s>\r\n"+
		"Call-ID: linger-%s@test\r\nCSeq: %d %s\r\nContact: <sip:alice@%s>\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		method, server, peer, method, peer, server, method, cseq, method, peer))
}

// exchange sends b and returns the status line of the first answer.
func exchange(t *testing.T, c net.Conn, b []byte) string {
	t.Helper()
	_, err := c.Write(b)
	require.NoError(t, err)
	buf := make([]byte, 4096)
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := c.Read(buf)
		require.NoError(t, err, "no final answer")
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line
		}
	}
}

// TestTransactionLingerRetransmission: with the RFC timers a retransmitted
// OPTIONS is absorbed by its Completed transaction (Timer J, 32 s): the
// handler sees it once and the 200 is resent. With a linger shorter than
// the gap, the transaction is gone and the retransmission is a new request.
// The same holds for an answered INVITE in Accepted (Timer L).
func TestTransactionLingerRetransmission(t *testing.T) {
	const gap = 1500 * time.Millisecond
	// RFC timers (T1 500 ms: Timer J 32 s); other tests of the package
	// shrink the globals and do not restore them.
	t1, t2, t4 := T1, T2, T4
	SetTimers(500*time.Millisecond, 4*time.Second, 5*time.Second)
	t.Cleanup(func() { SetTimers(t1, t2, t4) })
	for _, tc := range []struct {
		method string
		linger time.Duration
		seen   int32
	}{
		{"OPTIONS", 0, 1},
		{"OPTIONS", 300 * time.Millisecond, 2},
		{"INVITE", 300 * time.Millisecond, 2},
	} {
		t.Run(fmt.Sprintf("%s/%v", tc.method, tc.linger), func(t *testing.T) {
			addr, seen := lingerServer(t, tc.linger)
			c, err := net.Dial("udp4", addr)
			require.NoError(t, err)
			defer c.Close()
			req := rawRequest(tc.method, c.LocalAddr().String(), addr)
			require.Equal(t, "SIP/2.0 200 OK", exchange(t, c, req))
			time.Sleep(gap)
			// the Completed transaction resends its 200, or a new one answers
			require.Equal(t, "SIP/2.0 200 OK", exchange(t, c, req))
			require.Equal(t, tc.seen, seen.Load())
		})
	}
}
