package signalling

import (
	"errors"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/ng"
)

func TestParseCarrier(t *testing.T) {
	tg, err := parseCarrier("sip:198.18.2.2:5070;priority=5;weight=60;transport=udp")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Priority != 5 || tg.Weight != 60 || tg.Value.Host != "198.18.2.2" || tg.Value.Port != 5070 {
		t.Fatalf("got %+v", tg)
	}
	if tg.Value.UriParams.Has("priority") || tg.Value.UriParams.Has("weight") || !tg.Value.UriParams.Has("transport") {
		t.Fatalf("params not cleaned: %v", tg.Value.UriParams)
	}
	for _, bad := range []string{"", "sip:", "sip:gw;priority=x", "sip:gw;weight=0", "sip:gw;priority=70000"} {
		if _, err := parseCarrier(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: want ErrConfig, got %v", bad, err)
		}
	}
}

func TestLegQuality(t *testing.T) {
	stream := func(rtcp bool, packets, lost, jitterUs int64) ng.Dict {
		f := "RTP"
		if rtcp {
			f = "RTCP"
		}
		return ng.Dict{"flags": []any{f}, "stats": ng.Dict{"packets": packets, "bytes": packets * 172, "lost": lost, "jitter us": jitterUs}}
	}
	res := ng.Dict{"tags": ng.Dict{
		"cust": ng.Dict{"medias": []any{ng.Dict{"streams": []any{stream(false, 100, 2, 1500), stream(true, 5, 0, 0)}}}},
		"carr": ng.Dict{"medias": []any{ng.Dict{"streams": []any{stream(false, 90, 0, 250), stream(true, 4, 0, 0)}}}},
	}}
	q := legQuality(ng.DecodeQueryReply(res), "cust")
	if len(q) != 2 {
		t.Fatalf("got %+v", q)
	}
	c, k := q[0], q[1]
	if c.Leg != "customer" || c.PacketsReceived != 100 || c.PacketsSent != 90 || c.PacketsLost != 2 || c.JitterMs != 1.5 {
		t.Errorf("customer leg %+v", c)
	}
	if k.Leg != "carrier" || k.PacketsReceived != 90 || k.PacketsSent != 100 || k.BytesReceived != 90*172 {
		t.Errorf("carrier leg %+v", k)
	}
	if legQuality(ng.DecodeQueryReply(ng.Dict{"result": "ok"}), "cust") != nil {
		t.Error("a reply without tags gives quality")
	}
}

func TestCallStatus(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		code   int
		answer time.Time
		want   string
	}{
		{200, now, "completed"}, {486, time.Time{}, "busy"}, {487, time.Time{}, "canceled"},
		{480, time.Time{}, "no-answer"}, {503, time.Time{}, "failed"},
	} {
		if got := callStatus(tc.code, tc.answer); got != tc.want {
			t.Errorf("%d: got %q, want %q", tc.code, got, tc.want)
		}
	}
}
