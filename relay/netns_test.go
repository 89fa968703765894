package relay

import (
	"net/netip"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// A relay made inside a lab's namespace, while the process's other threads
// are elsewhere, binds through the binder's thread. (The other case — every
// thread in one namespace, binding on the calling thread — is `xtrunk
// relay` as a process, which the process labs run: TestRestartKeepsMedia,
// TestNGAllowProcess. This test process cannot assert it: threads earlier
// tests locked into lab namespaces may still be there.)
func TestBinderInLabNamespace(t *testing.T) {
	ns, err := labtest.NewLab(t).AddNS("here")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error {
		if allThreadsHere() {
			t.Error("inside a lab namespace: every thread is said to be here")
		}
		b, err := newBinder()
		if err != nil {
			return err
		}
		defer b.close()
		if b.reqs == nil {
			t.Error("a relay made in a lab namespace binds on calling threads")
		}
		rtp, rtcp, err := b.bind(netip.MustParseAddr("127.0.0.1"), 40000)
		if err != nil {
			return err
		}
		defer rtp.Close()
		defer rtcp.Close()
		// the socket is in the lab's namespace: its port is free there
		// and taken by this socket, as a second bind there says
		if _, err := listenUDP(rtp.local); err == nil {
			t.Error("the binder's socket is not in the lab namespace")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
