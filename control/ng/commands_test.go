package ng

import (
	"errors"
	"reflect"
	"testing"
)

// The typed commands encode to rtpengine's keys exactly, and decode what
// any client (Kamailio included) sends back to the same value.
func TestTypedCommands(t *testing.T) {
	d := Delete{CallID: "c1", FromTag: "a", ToTag: "b", Fatal: true}
	wire, err := AppendMessage(nil, "k", d.Dict())
	if err != nil {
		t.Fatal(err)
	}
	// keys sorted on the wire, as rtpengine's own bencode writes them
	if want := "k d7:call-id2:c17:command6:delete5:flagsl5:fatale8:from-tag1:a6:to-tag1:be"; string(wire) != want {
		t.Errorf("delete on the wire: %s\nwant %s", wire, want)
	}
	_, back, err := ParseMessage(wire)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeDelete(back); err != nil || !reflect.DeepEqual(got, d) {
		t.Errorf("DecodeDelete = %+v, %v; want %+v", got, err, d)
	}
	if got, _ := DecodeDelete(Dict{"command": "delete", "call-id": "c1"}); got != (Delete{CallID: "c1"}) {
		t.Errorf("bare delete decoded as %+v", got)
	}
	if _, err := DecodeDelete(Dict{"command": "delete"}); !errors.Is(err, ErrMissingKey) {
		t.Errorf("delete without call-id: %v", err)
	}
	q := Query{CallID: "c1", FromTag: "a"}
	if got, err := DecodeQuery(q.Dict()); err != nil || got != q {
		t.Errorf("DecodeQuery = %+v, %v", got, err)
	}
	if _, err := DecodeQuery(Dict{"command": "query"}); !errors.Is(err, ErrMissingKey) {
		t.Errorf("query without call-id: %v", err)
	}
}
