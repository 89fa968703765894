package sipgo

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
)

// TestDialogInheritsDialCheck: a dialog's INVITE dial check goes with
// every request of the dialog — ACK, BYE, an in-dialog request — and with
// the CANCEL built from the INVITE, so they are vetted as the INVITE was
// (the peer's Contact may name another address). (Fork.)
func TestDialogInheritsDialCheck(t *testing.T) {
	var mu sync.Mutex
	checked := map[sip.RequestMethod]bool{}
	client := testClientResponder(t, func(req *sip.Request, w *siptest.ClientTxResponder) {
		mu.Lock()
		checked[req.Method] = req.DialCheck() != nil
		mu.Unlock()
		if req.IsAck() {
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "198.51.100.7", Port: 5070}})
		w.Receive(res)
	})
	dua := DialogUA{Client: client}
	inv := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "test", Host: "localhost"})
	inv.SetDialCheck(func(netip.Addr) error { return nil })
	d, err := dua.WriteInvite(context.TODO(), inv)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WaitAnswer(context.TODO(), AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(context.TODO()); err != nil {
		t.Fatal(err)
	}
	info := sip.NewRequest(sip.INFO, sip.Uri{Scheme: "sip", Host: "198.51.100.7", Port: 5070})
	if _, err := d.Do(context.TODO(), info); err != nil {
		t.Fatal(err)
	}
	if err := d.Bye(context.TODO()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		_, acked := checked[sip.ACK]
		mu.Unlock()
		if acked { // the ACK reaches the responder on its own goroutine
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.INFO, sip.BYE} {
		if !checked[m] {
			t.Errorf("%s sent without the INVITE's dial check (seen: %v)", m, checked)
		}
	}
	if newCancelRequest(inv).DialCheck() == nil {
		t.Error("CANCEL built without the INVITE's dial check")
	}
}
