package ng

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// deleteReply is what xtrunk's relay answers a "delete" of a finished
// call with: two parties, an audio media each, RTP and RTCP streams.
func deleteReply() Dict {
	stream := func(port int64, rtcp bool, pkts int64) Stream {
		flags := []string{"RTP", "confirmed", "filled"}
		if rtcp {
			flags[0] = "RTCP"
		}
		return Stream{LocalPort: port, LocalAddress: "198.18.1.1", Family: "IPv4",
			Endpoint:           Endpoint{Family: "IPv4", Address: "198.18.1.2", Port: port + 4000},
			AdvertisedEndpoint: Endpoint{Family: "IPv4", Address: "198.18.1.2", Port: port + 4000},
			Flags:              flags, LastPacket: 1765000000, SSRC: 0x1234,
			Stats: StreamStats{Counts: Counts{Packets: pkts, Bytes: pkts * 172}, FastPath: pkts,
				HasQuality: !rtcp, Expected: pkts, Lost: 1, Jitter: 2, JitterUs: 2100}}
	}
	party := func(tag, other string, port int64) Party {
		return Party{Tag: tag, Created: 1765000000, Medias: []Media{{Index: 1, Type: "audio", Protocol: "RTP/AVP",
			Flags: []string{"initialized", "send", "recv"}, Streams: []Stream{stream(port, false, 50), stream(port+1, true, 2)}}},
			Subscriptions: []Subscription{{Tag: other, Type: "offer/answer"}}}
	}
	d := QueryReply{Created: 1765000000, CreatedUs: 123456, LastSignal: 1765000001, Status: "active",
		Tags:   map[string]Party{"a": party("a", "b", 30000), "b": party("b", "a", 30002)},
		Totals: Totals{RTP: Counts{Packets: 100, Bytes: 17200}, RTCP: Counts{Packets: 4, Bytes: 300}},
	}.Dict()
	d["result"] = "ok"
	return d
}

// TestParseQueryMessage: the typed walk reads what DecodeQueryReply
// reads from the same message, with the result and error reason.
func TestParseQueryMessage(t *testing.T) {
	for name, d := range map[string]Dict{
		"delete": deleteReply(),
		"error":  ErrorReply("Unknown call-id"),
		"odd types": {"result": int64(7), "created": "42", "status": int64(3), "timed out": "1",
			"tags":   Dict{"a": "not a dict", "b": Dict{"medias": []any{"x", Dict{"flags": "one", "streams": []any{Dict{"stats": Dict{"jitter": "x"}}}}}}},
			"totals": []any{}, "recording": "x"},
		"recording error": {"result": "ok", "recording": Dict{"error": "disk full", "files": []any{"f"}}},
	} {
		msg, err := AppendMessage(nil, "c1", d)
		if err != nil {
			t.Fatal(err)
		}
		q, result, reason, err := ParseQueryMessage(msg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := DecodeQueryReply(d); !reflect.DeepEqual(q, want) {
			t.Errorf("%s: got %#v\nwant %#v", name, q, want)
		}
		if result != d.Str("result") || reason != d.Str("error-reason") {
			t.Errorf("%s: result %q reason %q", name, result, reason)
		}
	}
	for _, bad := range []string{"", "nocookie", "c ", "c i1e", "c d6:result2:ok", "c d6:result2:oke1:x", "c d1:ai01ee", "c l" + strings.Repeat("l", MaxDepth) + "e"} {
		if _, _, _, err := ParseQueryMessage([]byte(bad)); err == nil {
			t.Errorf("%q: parsed", bad)
		}
	}
	if _, _, _, err := ParseQueryMessage([]byte("c i1e")); !errors.Is(err, ErrNotDict) {
		t.Errorf("an integer reply: %v, want ErrNotDict", err)
	}
}

// FuzzParseQueryMessage: on any input the typed walk fails exactly when
// ParseMessage does, and otherwise reads what DecodeQueryReply reads.
func FuzzParseQueryMessage(f *testing.F) {
	typedSeeds(f)
	if b, err := AppendEncode(nil, deleteReply()); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg := append([]byte("c "), b...)
		_, d, err := ParseMessage(msg)
		q, result, reason, qerr := ParseQueryMessage(msg)
		if (err == nil) != (qerr == nil) {
			t.Fatalf("ParseMessage: %v, ParseQueryMessage: %v", err, qerr)
		}
		if err != nil {
			return
		}
		if want := DecodeQueryReply(d); !reflect.DeepEqual(q, want) {
			t.Fatalf("got %#v\nwant %#v", q, want)
		}
		if result != d.Str("result") || reason != d.Str("error-reason") {
			t.Fatalf("result %q reason %q, want %q %q", result, reason, d.Str("result"), d.Str("error-reason"))
		}
	})
}

// BenchmarkDeleteReply: a finished call's delete reply, through Dicts
// (ParseMessage + DecodeQueryReply) and typed (ParseQueryMessage).
func BenchmarkDeleteReply(b *testing.B) {
	msg, err := AppendMessage(nil, "c1", deleteReply())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("dict", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			_, d, err := ParseMessage(msg)
			if err != nil {
				b.Fatal(err)
			}
			_ = DecodeQueryReply(d)
		}
	})
	b.Run("typed", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := ParseQueryMessage(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
