package signalling

import (
	"fmt"
	"testing"

	"github.com/xtrunk/xtrunk/control/ng"
)

// Each class of relay failure becomes its SIP answer; only capacity and
// an unreachable relay say "try again" (Retry-After).
func TestRelayRefusal(t *testing.T) {
	for _, tc := range []struct {
		err      error
		inDialog bool
		status   int
		retry    bool
	}{
		{ng.NewReplyError("Failed to parse SDP"), false, 488, false},
		{ng.NewReplyError("Ran out of ports"), false, 503, true},
		{ng.NewReplyError("Parallel session limit reached"), true, 503, true},
		{ng.NewReplyError("Unknown call-id"), true, 481, false},
		{ng.NewReplyError("Unknown call-id"), false, 500, false},
		{ng.NewReplyError("Unrecognized command"), false, 500, false},
		{fmt.Errorf("relay offer: %w", ng.ErrTimeout), false, 503, true},
		{fmt.Errorf("relay offer: %w", ng.NewReplyError("ran out of ports: 30000-30003")), false, 503, true},
	} {
		status, _, hdrs := relayRefusal(tc.err, tc.inDialog)
		if status != tc.status || (len(hdrs) > 0) != tc.retry {
			t.Errorf("%v (in dialog %v): %d %v, want %d (Retry-After %v)", tc.err, tc.inDialog, status, hdrs, tc.status, tc.retry)
		}
		if tc.retry && (hdrs[0].Name() != "Retry-After" || hdrs[0].Value() != "10") {
			t.Errorf("%v: header %v, want Retry-After: 10", tc.err, hdrs[0])
		}
	}
}
