package ng

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// Kamailio's offer decodes to typed fields, flags normalised, what the
// package does not know kept, and encodes back to the keys rtpengine
// reads.
func TestDecodeOffer(t *testing.T) {
	o, err := DecodeOffer(offerDict())
	if err != nil {
		t.Fatal(err)
	}
	want := Params{
		CallID: "a84b4c76e66710@pc33.atlanta.example.com", FromTag: "1928301774", ViaBranch: "z9hG4bK776asdhds.0", SDP: offerSDP,
		Flags:        Flags{TrustAddress: true, Symmetric: true, Other: []string{"loop-protect-codec"}},
		Replace:      Replace{Origin: true, SessionConnection: true},
		RTCPMux:      RTCPMux{Demux: true},
		Direction:    []string{"external", "internal"},
		ReceivedFrom: netip.MustParseAddr("198.51.100.23"),
		RecordCall:   Off,
	}
	if !reflect.DeepEqual(o.Params, want) {
		t.Errorf("DecodeOffer:\n got %+v\nwant %+v", o.Params, want)
	}
	d := o.Dict()
	for k, v := range offerDict() {
		switch k {
		case "record call":
			if d[k] != "no" {
				t.Errorf("record call = %v", d[k])
			}
		case "flags": // canonical order: the typed flags, then the others
			if got := d.Strings(k); !reflect.DeepEqual(got, []string{"symmetric", "trust-address", "loop-protect-codec"}) {
				t.Errorf("flags = %v", got)
			}
		default:
			if !reflect.DeepEqual(d[k], v) {
				t.Errorf("%s = %#v, want %#v", k, d[k], v)
			}
		}
	}
	if len(d) != len(offerDict()) {
		t.Errorf("encoded %d keys, want %d: %v", len(d), len(offerDict()), d)
	}

	// spellings rtpengine accepts, and keys it does not know
	o, err = DecodeOffer(Dict{"call-id": "c", "from-tag": "a", "sdp": "v=0", "flags": []any{"SIP source address", "Strict_Source", "record-call"},
		"replace": []any{"session-conn"}, "ice": "remove", "SDES": []any{"No-aes_cm_128_hmac_sha1_32", "only-AES_CM_128_HMAC_SHA1_80", "pad"},
		"recording-channels": "DUAL", "flags-x": int64(3)})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Flags.SIPSourceAddress || !o.Flags.StrictSource || o.RecordCall != On || !o.Replace.SessionConnection || o.ICE != "remove" ||
		!reflect.DeepEqual(o.SDES, SDES{No: []string{"AES_CM_128_HMAC_SHA1_32"}, Only: []string{"AES_CM_128_HMAC_SHA1_80"}, Other: []string{"pad"}}) ||
		o.RecordingChannels != "dual" || o.Other["flags-x"] != int64(3) {
		t.Errorf("decoded %+v", o.Params)
	}
}

// The required keys, reported in the order the relay always did.
func TestDecodeOfferMissing(t *testing.T) {
	for _, tc := range []struct {
		d      Dict
		answer bool
		key    string
	}{
		{Dict{"from-tag": "a", "sdp": "v=0"}, false, "call-id"},
		{Dict{"call-id": "c", "sdp": "v=0"}, false, "from-tag"},
		{Dict{"call-id": "c", "from-tag": "a"}, false, "sdp"},
		{Dict{"call-id": "c", "from-tag": "a"}, true, "to-tag"},
	} {
		var err error
		if tc.answer {
			_, err = DecodeAnswer(tc.d)
		} else {
			_, err = DecodeOffer(tc.d)
		}
		if !errors.Is(err, ErrMissingKey) || err.Error() != "missing key: "+tc.key {
			t.Errorf("%v: %v, want missing key: %s", tc.d, err, tc.key)
		}
	}
}

// What signalling sends toward a Secure trunk's customer, on the wire,
// byte for byte.
func TestOfferWire(t *testing.T) {
	o := Offer{Params{CallID: "c", FromTag: "a", SDP: "v=0", Flags: Flags{Asymmetric: true}, Direction: []string{"customer", "carrier"},
		Replace: Replace{Origin: true, SessionConnection: true}, TransportProtocol: "RTP/SAVP",
		SDES: SDES{Only: []string{"AES_CM_128_HMAC_SHA1_80"}, No: []string{"AES_CM_128_HMAC_SHA1_32"}}}}
	wire, err := AppendMessage(nil, "k", o.Dict())
	if err != nil {
		t.Fatal(err)
	}
	want := "k d4:SDESl28:only-AES_CM_128_HMAC_SHA1_8026:no-AES_CM_128_HMAC_SHA1_32e7:call-id1:c7:command5:offer" +
		"9:directionl8:customer7:carriere5:flagsl10:asymmetrice8:from-tag1:a7:replacel6:origin18:session-connectione" +
		"3:sdp3:v=018:transport-protocol8:RTP/SAVPe"
	if string(wire) != want {
		t.Errorf("wire:\n%s\nwant\n%s", wire, want)
	}
}

// A query reply in rtpengine's shape decodes to the counters signalling
// reads; an absent key reads as zero.
func TestDecodeQueryReply(t *testing.T) {
	d := Dict{"result": "ok", "created": int64(100), "tags": Dict{
		"a": Dict{"tag": "a", "medias": []any{Dict{"index": int64(1), "type": "audio", "streams": []any{
			Dict{"local port": int64(30000), "flags": []any{"RTP", "filled"}, "last packet": "105",
				"stats": Dict{"packets": int64(10), "bytes": int64(1720), "errors": int64(0), "jitter us": int64(1500), "lost": int64(-2)}},
			Dict{"flags": []any{"RTCP"}, "stats": Dict{"packets": int64(1)}},
		}}}},
	}, "totals": Dict{"RTP": Dict{"packets": int64(20)}}, "recording": Dict{"error": "disk full"}}
	q := DecodeQueryReply(d)
	st := q.Tags["a"].Medias[0].Streams
	if q.Created != 100 || len(st) != 2 || st[0].Stats.Packets != 10 || st[0].LastPacket != 105 || !st[0].Stats.HasQuality ||
		st[0].Stats.Lost != -2 || st[0].Stats.JitterUs != 1500 || st[0].IsRTCP() || !st[1].IsRTCP() ||
		q.Totals.RTP.Packets != 20 || q.Recording == nil || q.Recording.Error != "disk full" {
		t.Errorf("decoded %+v", q)
	}
	if q := DecodeQueryReply(Dict{"result": "ok"}); q.Tags != nil || q.Recording != nil {
		t.Errorf("empty reply decoded %+v", q)
	}
}

// play media and stop media use rtpengine's keys.
func TestPlayMedia(t *testing.T) {
	p := PlayMedia{CallID: "c", Party: PartySelect{FromTag: "a"}, File: "/m.wav", RepeatTimes: 3, StartPos: 10}
	wire, err := AppendMessage(nil, "k", p.Dict())
	if err != nil {
		t.Fatal(err)
	}
	if want := "k d7:call-id1:c7:command10:play media4:file6:/m.wav8:from-tag1:a12:repeat-timesi3e9:start-posi10ee"; string(wire) != want {
		t.Errorf("wire %s\nwant %s", wire, want)
	}
	if _, err := DecodePlayMedia(Dict{"call-id": "c", "file": "x"}); !errors.Is(err, ErrMissingKey) {
		t.Errorf("play media without a party: %v", err)
	}
	if _, err := DecodePlayMedia(Dict{"call-id": "c", "flags": []any{"all"}}); err == nil || !strings.Contains(err.Error(), "file") {
		t.Errorf("play media without a source: %v", err)
	}
	s, err := DecodeStopMedia(StopMedia{CallID: "c", Party: PartySelect{All: true}}.Dict())
	if err != nil || !s.Party.All {
		t.Errorf("stop media all: %+v %v", s, err)
	}
	if r := DecodeStopMediaReply(Dict{"result": "ok", "last-frame-pos": int64(160)}); r.LastFramePos != 160 {
		t.Errorf("stop media reply %+v", r)
	}
}
