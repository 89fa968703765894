package ng

import (
	"fmt"
	"sort"
	"testing"
)

func TestStreams(t *testing.T) {
	reply := Dict{"result": "ok", "tags": Dict{
		"a": Dict{"medias": []any{Dict{"streams": []any{
			Dict{"flags": []any{"RTP", "confirmed"}, "stats": Dict{"packets": int64(10)}},
			Dict{"flags": []any{"RTCP"}, "stats": Dict{"packets": int64(1)}},
		}}}},
		"b": Dict{"medias": []any{Dict{"streams": []any{
			Dict{"flags": []any{"RTP"}, "stats": Dict{"packets": int64(20)}},
			"not a stream",
		}}}},
		"c": "not a tag",
	}}
	var got []string
	Streams(reply, func(tag string, s Dict, rtcp bool) {
		n, _ := s.Dict("stats").Int("packets")
		kind := "rtp"
		if rtcp {
			kind = "rtcp"
		}
		got = append(got, fmt.Sprintf("%s %s %02d", tag, kind, n))
	})
	sort.Strings(got)
	want := []string{"a rtcp 01", "a rtp 10", "b rtp 20"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	Streams(Dict{}, func(string, Dict, bool) { t.Error("a reply without tags has no streams") })
}
