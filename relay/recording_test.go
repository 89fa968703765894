package relay

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
)

// Ending a recording answers at once: its files are written by a
// goroutine of their own, not on the NG worker under the call's lock, so
// a slow disk delays no command (here the writing is held until the
// delete has been answered and another call has been served).
func TestRecordingWrittenOffTheNGPath(t *testing.T) {
	r := loopbackRelay(t)
	r.cfg.RecordingDir = t.TempDir()
	lo := netip.MustParseAddr("127.0.0.1")
	caller := netip.AddrPortFrom(lo, 20000)
	for _, id := range []string{"rec", "other"} {
		offer := ng.Dict{"command": "offer", "call-id": id, "from-tag": "a", "sdp": g711SDP(lo, 20000)}
		if id == "rec" {
			offer["record call"] = "yes"
		}
		if rep := serve(r, offer); rep.Str("result") != "ok" {
			t.Fatal(rep)
		}
		if rep := serve(r, ng.Dict{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": g711SDP(lo, 40000)}); rep.Str("result") != "ok" {
			t.Fatal(rep)
		}
	}
	c := callByID(r, "rec")
	c.mu.Lock()
	in := c.streams[0].ep[0].rtp
	c.mu.Unlock()
	buf := make([]byte, 172)
	for i := 0; i < 50; i++ {
		feed(r, in, caller, rtpPacket(buf, 0, 0x1234, uint16(i)))
	}

	gate := make(chan struct{})
	finishHook = func() { <-gate }
	defer func() { finishHook = nil }()
	done := make(chan ng.Dict, 1)
	go func() { done <- serve(r, ng.Dict{"command": "delete", "call-id": "rec"}) }()
	var del ng.Dict
	select {
	case del = <-done:
	case <-time.After(30 * time.Second):
		close(gate)
		t.Fatal("delete waited for the recording's files to be written")
	}
	files := del.Dict("recording").Strings("files")
	if len(files) != 1 {
		t.Fatalf("delete reply recording: %v", del.Dict("recording"))
	}
	if q := serve(r, ng.Dict{"command": "query", "call-id": "other"}); q.Str("result") != "ok" {
		t.Errorf("query while a recording is being written: %v", q)
	}
	if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
		t.Errorf("%s exists before its writing was let go (%v)", files[0], err)
	}
	close(gate)
	r.finishing.Wait()
	if st, err := os.Stat(files[0]); err != nil || st.Size() < 44+2*8000 {
		t.Errorf("recording %s: %v (size %v), want about 1 s of audio", files[0], err, st)
	}
}
