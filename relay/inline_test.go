package relay

import (
	"testing"

	"github.com/xtrunk/xtrunk/control/ng"
)

// TestInlineNG: call setup and teardown are answered inline, what reads or
// writes files goes to the NG server's workers.
func TestInlineNG(t *testing.T) {
	for _, c := range []struct {
		req  ng.Dict
		want bool
	}{
		{ng.Dict{"command": "ping"}, true},
		{ng.Dict{"command": "offer", "flags": []any{"trust-address"}}, true},
		{ng.Dict{"command": "Answer"}, true},
		{ng.Dict{"command": "delete"}, true},
		{ng.Dict{"command": "query"}, true},
		{ng.Dict{"command": "list"}, true},
		{ng.Dict{"command": "offer", "record call": "yes"}, false},
		{ng.Dict{"command": "answer", "record-call": "on"}, false},
		{ng.Dict{"command": "offer", "flags": []any{"trust-address", "RECORD-CALL"}}, false},
		{ng.Dict{"command": "start recording"}, false},
		{ng.Dict{"command": "play media"}, false},
		{ng.Dict{"command": "stop media"}, false},
		{ng.Dict{}, false},
	} {
		if got := InlineNG(c.req); got != c.want {
			t.Errorf("%v: inline %v, want %v", c.req, got, c.want)
		}
	}
}
