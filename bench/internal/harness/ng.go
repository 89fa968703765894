package harness

import (
	"fmt"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/control/ng"
)

// outputTail is how much of a process's output a start error carries.
const outputTail = 2000

// DialNG waits until the NG server at addr in ns, run by p, answers ping
// (testbed.WaitNG), then dials the client the benchmark drives it with.
// It gives up when p exits or after within, with the end of p's output in
// the error.
func DialNG(ns *testbed.NS, addr string, p *testbed.Process, within time.Duration, opts ...ng.ClientOption) (*ng.Client, error) {
	if err := testbed.WaitNG(ns, addr, p.Done(), within); err != nil {
		select {
		case <-p.Done():
			return nil, fmt.Errorf("exited: %v\n%s", p.Wait(), Tail(p.Output(), outputTail))
		default:
		}
		return nil, fmt.Errorf("%w\n%s", err, Tail(p.Output(), outputTail))
	}
	var c *ng.Client
	err := ns.Do(func() error {
		var err error
		c, err = ng.Dial(addr, opts...)
		return err
	})
	return c, err
}
