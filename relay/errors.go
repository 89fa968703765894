package relay

import (
	"errors"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/wav"
)

var (
	// ErrConfig is returned for an unusable configuration.
	ErrConfig = errors.New("relay config")
	// ErrNoPorts is returned when the port range is exhausted.
	ErrNoPorts = errors.New("ran out of ports")
	// ErrUnknownCall is returned for commands naming no known call. The
	// capitalised wording is rtpengine's, which clients match on.
	//lint:ignore ST1005 rtpengine's wording
	ErrUnknownCall = errors.New("Unknown call-id")
	// ErrUnknownTag is returned when a tag does not belong to the call.
	//lint:ignore ST1005 rtpengine's wording
	ErrUnknownTag = errors.New("Unknown tag")
	// ErrBadSDP is returned when the SDP cannot be parsed or used.
	//lint:ignore ST1005 rtpengine's wording
	ErrBadSDP = errors.New("Failed to parse SDP")
	// ErrMissingKey is returned when a required NG key is absent (the
	// control/ng sentinel: its typed decoders return it too).
	ErrMissingKey = ng.ErrMissingKey
	// ErrBadInterface is returned when "direction" names no interface.
	ErrBadInterface = errors.New("unknown interface")
)

// SDP the relay refuses although it parses. Signalling answers these with
// 488 Not Acceptable Here: the body, not the relay, is at fault.
var (
	// ErrTooManyStreams is returned for an SDP with more m= lines than a
	// call may hold (maxStreams): each one takes two port pairs, so one
	// body with thousands would empty the port range.
	ErrTooManyStreams = errors.New("too many media streams")
	// ErrAnswerStreams is returned for an answer with more m= lines than
	// the offer it answers (RFC 3264 section 6: the same number).
	ErrAnswerStreams = errors.New("answer has more media streams than the offer")
	// ErrSelfTarget is returned for an SDP whose media address is one of
	// the relay's own ports (its media range or NG port) on its own host:
	// media sent there would loop through the relay or reach its control
	// port (spoof.go). The wording names the SDP: NG clients class it as
	// the body's fault.
	ErrSelfTarget = errors.New("SDP names a port of the relay itself")
)

var (
	// ErrMKI is returned for SDES offers that only use MKI, which the relay
	// does not support (signalling answers 488).
	ErrMKI = errors.New("SRTP MKI is not supported")
	// ErrNoCrypto is returned when an RTP/SAVP party offers no crypto suite
	// the relay accepts.
	ErrNoCrypto = errors.New("no acceptable SRTP crypto suite")
)

// ErrNotReady is returned by Ready when the relay cannot carry calls.
var ErrNotReady = errors.New("relay not ready")

// Media playback ("play media", play.go).
var (
	// ErrMediaFormat is returned for a media file the relay cannot play:
	// not a WAV of 8 kHz mono G.711 (μ-law or A-law).
	ErrMediaFormat = wav.ErrFormat
	// ErrMediaSource is returned for a "play media" whose source the
	// relay cannot read (a file it cannot open, a "db-id": no database).
	ErrMediaSource = errors.New("media source unavailable")
	// ErrNoMediaStream is returned when the selected party has no audio
	// stream the relay can send to (none, no address yet, or SRTP).
	ErrNoMediaStream = errors.New("no audio stream to play media to")
)

// ErrReservedPorts is returned when the relay cannot read or change
// net.ipv4.ip_local_reserved_ports.
var ErrReservedPorts = errors.New("ip_local_reserved_ports")

// ErrEphemeralPorts is returned when the media port range would take
// (nearly) all of the kernel's ephemeral ports.
var ErrEphemeralPorts = errors.New("media ports cover the ephemeral port range")

// Frames the AF_XDP path cannot use (counted, dropped).
var (
	errFrameShort     = errors.New("frame too short")
	errFrameMalformed = errors.New("frame malformed")
	errFrameNotUDP    = errors.New("frame is not UDP")
)

// ErrXSK is returned when the socketless path cannot open or register an
// AF_XDP socket, or cannot send a datagram.
var ErrXSK = errors.New("AF_XDP path")

// errNotRecording: a recording command for a call no recording runs on.
var errNotRecording = errors.New("call is not being recorded")

// SRTP packet failures (srtp.go); srtpDropReason labels the drops.
var (
	errKeyExpired = errors.New("srtp key lifetime exceeded")
	// errSSRCLimit: a new SSRC beyond maxSSRCs; pion never sees it.
	errSSRCLimit = errors.New("srtp: too many SSRCs")
	// errAuth: the first packet of a new SSRC did not authenticate.
	errAuth = errors.New("srtp: authentication failed")
	// errIndexUsed: after a restart, a packet whose index the previous
	// process may have used under this key.
	errIndexUsed = errors.New("srtp: packet index may have been used before the restart")
	errShort     = errors.New("srtp: packet too short")
	errReplay    = errors.New("srtp: replayed or too old")
)
