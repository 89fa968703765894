package relay

import (
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// A relay binds on the calling thread only where every thread of the
// process is in its namespace; made inside a lab's namespace (the other
// threads elsewhere) it binds through the binder's thread.
func TestAllThreadsHere(t *testing.T) {
	ns, err := testbed.NewT(t).AddNS("here")
	if err != nil {
		t.Fatal(err)
	}
	if !allThreadsHere() {
		t.Error("in the process's own namespace: not every thread is here")
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
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
