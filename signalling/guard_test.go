package signalling

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
	"github.com/rs/zerolog"
)

// TestGuard: what the guard refuses before a handler runs, and that a
// handler's panic becomes a logged 500 instead of the end of the process.
func TestGuard(t *testing.T) {
	var logs syncBuffer
	s := &Server{log: zerolog.New(&logs)}
	const head = "INVITE sip:+14155550123@open.pstn.example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-g1\r\n"
	full := head + "From: <sip:+14155550100@pbx>;tag=a\r\nTo: <sip:+14155550123@open.pstn.example.net>\r\nCall-ID: g1\r\nCSeq: 1 INVITE\r\n"
	for _, tc := range []struct {
		name, msg string
		panics    bool
		want      int // 0: the handler ran and answered 486
	}{
		{"well-formed", full + "Content-Length: 0\r\n\r\n", false, 486},
		{"no Call-ID (RFC 4475 insuf)", head + "From: <sip:a@b>;tag=a\r\nTo: <sip:c@d>\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", false, 400},
		{"no From", head + "To: <sip:c@d>\r\nCall-ID: g2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", false, 400},
		{"no To", head + "From: <sip:a@b>;tag=a\r\nCall-ID: g3\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", false, 400},
		{"CSeq of another method (mismatch01)", strings.Replace(full, "CSeq: 1 INVITE", "CSeq: 1 OPTIONS", 1) + "Content-Length: 0\r\n\r\n", false, 400},
		{"two Content-Length (mcl01)", full + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n", false, 400},
		{"handler panics", full + "Content-Length: 0\r\n\r\n", true, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := sip.ParseMessage([]byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			req := msg.(*sip.Request)
			req.SetTransport("TCP")
			req.SetSource("127.0.0.1:5999")
			tx := siptest.NewServerTxRecorder(req)
			defer tx.Terminate()
			ran := false
			s.guard(func(req *sip.Request, tx sip.ServerTransaction) {
				ran = true
				if tc.panics {
					var h *sip.CallIDHeader
					_ = h.Value() // the crash the guard exists for
				}
				respond(tx, req, 486, "Busy Here", nil)
			})(req, tx)
			res := tx.Result()
			if len(res) != 1 || res[0].StatusCode != tc.want {
				t.Fatalf("want one %d, got %v", tc.want, res)
			}
			if ran != (tc.want == 486 || tc.panics) {
				t.Fatalf("handler ran: %v", ran)
			}
			if l := logs.take(); tc.panics != strings.Contains(l, "request handler panicked") {
				t.Fatalf("log: %s", l)
			}
		})
	}
}
