package relay

import (
	"errors"
	"fmt"
	"testing"

	"github.com/xtrunk/xtrunk/control/ng"
)

// Every refusal of the relay reaches signalling as an "error-reason" that
// ng.ClassOf puts in the class it means (signalling/relayerr.go turns the
// class into 488, 503, 481 or 500): a reworded error must not silently
// become a 500.
func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want ng.Class
	}{
		{ErrNoPorts, ng.ClassNoCapacity},
		{ErrUnknownCall, ng.ClassUnknownCall},
		{ErrUnknownTag, ng.ClassUnknownCall},
		{errors.New(errTagsMismatch), ng.ClassUnknownCall},
		{fmt.Errorf("%w: x", ErrBadSDP), ng.ClassBadSDP},
		{ErrTooManyStreams, ng.ClassBadSDP},
		{ErrAnswerStreams, ng.ClassBadSDP},
		{ErrMKI, ng.ClassBadSDP},
		{ErrNoCrypto, ng.ClassBadSDP},
		{fmt.Errorf("%w: call-id", ErrMissingKey), ng.ClassInternal},
		{ErrBadInterface, ng.ClassInternal},
	} {
		reason := errReply(tc.err).Str("error-reason")
		if got := ng.NewReplyError(reason).Class; got != tc.want {
			t.Errorf("%q is %v, want %v", reason, got, tc.want)
		}
	}
}
