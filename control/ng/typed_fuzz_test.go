package ng

import (
	"bytes"
	"reflect"
	"testing"
)

// typedSeeds are bencoded requests and replies for the typed decoders'
// fuzz targets.
func typedSeeds(f *testing.F) {
	msg := offerMessage()
	f.Add(msg[bytes.IndexByte(msg, ' ')+1:])
	for _, d := range []Dict{
		offerDict(),
		{"command": "answer", "call-id": "c", "from-tag": "a", "to-tag": "b", "sdp": "v=0", "ICE": "Remove",
			"SDES":     []any{"off", "no-AES_CM_128_HMAC_SHA1_32", "only-aes_cm_128_hmac_sha1_80", "lifetime"},
			"rtcp-mux": []any{"offer", "accept", "reject", "require"}, "record-call": "on", "recording-trim": "trim silence",
			"transport-protocol": "RTP/SAVP", "received-from": []any{"IP6", "::ffff:192.0.2.1"}, "DTLS": "off"},
		{"command": "play media", "call-id": "c", "from-tag": "a", "file": "/x.wav", "repeat-times": int64(2), "flags": []any{"all"}},
		{"command": "stop media", "call-id": "c", "label": "l"},
		{"command": "delete", "call-id": "c", "from-tag": "a", "flags": []any{"fatal"}},
		{"command": "list", "limit": "5"},
		{"command": "start recording", "call-id": "c", "recording-channels": "Dual", "flags": []any{"trim-silence"}},
		QueryReply{Created: 1, Status: "active", Tags: map[string]Party{"a": {Tag: "a", Medias: []Media{{Index: 1, Type: "audio",
			Streams: []Stream{{LocalPort: 30000, Flags: []string{"RTP", "confirmed"}, Stats: StreamStats{Counts: Counts{Packets: 5}, HasQuality: true, Lost: -1}}}}},
			Subscriptions: []Subscription{{Tag: "b", Type: "offer/answer"}}}}, Recording: &Recording{Files: []string{"f.wav"}}}.Dict(),
	} {
		b, err := AppendEncode(nil, d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// roundTrip checks that what a typed decoder read encodes (on the wire)
// to a request it reads back the same: decode never panics, and
// decode∘encode is the identity on what decoded.
func roundTrip[T any](t *testing.T, name string, v T, enc func(T) Dict, dec func(Dict) (T, error)) {
	t.Helper()
	wire, err := AppendEncode(nil, enc(v))
	if err != nil {
		t.Fatalf("%s: decoded %#v does not encode: %v", name, v, err)
	}
	back, err := Decode(wire)
	if err != nil {
		t.Fatalf("%s: encoded %q does not decode: %v", name, wire, err)
	}
	d, _ := back.(Dict)
	v2, err := dec(d)
	if err != nil {
		t.Fatalf("%s: re-decoding %q: %v", name, wire, err)
	}
	if !reflect.DeepEqual(v2, v) {
		t.Fatalf("%s: decode(encode(v)) = %#v\nwant %#v", name, v2, v)
	}
}

func fuzzDict(b []byte) Dict {
	v, err := Decode(b)
	if err != nil {
		return nil
	}
	d, _ := v.(Dict)
	return d
}

// FuzzDecodeOffer: DecodeOffer and DecodeAnswer never panic, and an
// offer or answer they read encodes to one they read the same.
func FuzzDecodeOffer(f *testing.F) {
	typedSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d := fuzzDict(b)
		if d == nil {
			return
		}
		if o, err := DecodeOffer(d); err == nil {
			roundTrip(t, "offer", o, Offer.Dict, DecodeOffer)
		}
		if a, err := DecodeAnswer(d); err == nil {
			roundTrip(t, "answer", a, Answer.Dict, DecodeAnswer)
		}
	})
}

// FuzzDecodeQueryReply: any reply decodes, without panicking, to a
// QueryReply that encodes to one that decodes the same.
func FuzzDecodeQueryReply(f *testing.F) {
	typedSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d := fuzzDict(b)
		if d == nil {
			return
		}
		noErr := func(dec func(Dict) QueryReply) func(Dict) (QueryReply, error) {
			return func(d Dict) (QueryReply, error) { return dec(d), nil }
		}
		roundTrip(t, "query reply", DecodeQueryReply(d), QueryReply.Dict, noErr(DecodeQueryReply))
		l := DecodeListReply(d)
		roundTrip(t, "list reply", l, ListReply.Dict, func(d Dict) (ListReply, error) { return DecodeListReply(d), nil })
	})
}

// FuzzDecodeCommands: the other typed requests likewise.
func FuzzDecodeCommands(f *testing.F) {
	typedSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d := fuzzDict(b)
		if d == nil {
			return
		}
		if v, err := DecodeDelete(d); err == nil {
			roundTrip(t, "delete", v, Delete.Dict, DecodeDelete)
		}
		if v, err := DecodeQuery(d); err == nil {
			roundTrip(t, "query", v, Query.Dict, DecodeQuery)
		}
		roundTrip(t, "list", DecodeList(d), List.Dict, func(d Dict) (List, error) { return DecodeList(d), nil })
		if v, err := DecodeStartRecording(d); err == nil {
			roundTrip(t, "start recording", v, StartRecording.Dict, DecodeStartRecording)
		}
		if v, err := DecodeStopRecording(d); err == nil {
			roundTrip(t, "stop recording", v, StopRecording.Dict, DecodeStopRecording)
		}
		if v, err := DecodePlayMedia(d); err == nil {
			roundTrip(t, "play media", v, PlayMedia.Dict, DecodePlayMedia)
		}
		if v, err := DecodeStopMedia(d); err == nil {
			roundTrip(t, "stop media", v, StopMedia.Dict, DecodeStopMedia)
		}
	})
}
