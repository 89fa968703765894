package sip

import (
	"strings"
	"testing"
)

func FuzzParseSipMessage(f *testing.F) {
	// Creates Race when run
	rawMsg := []string{
		"INVITE sip:bob@127.0.0.1:5060 SIP/2.0",
		"Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK.VYWrxJJyeEJfngAjKXELr8aPYuX8tR22",
		"From: \"Alice\" <sip:alice@127.0.0.2:5060>;tag=1928301774",
		"To: \"Bob\" <sip:bob@127.0.0.1:5060>",
		"Contact: <sip:alice@127.0.0.2:5060;expires=3600>",
		"Content-Type: application/sdp",
		"Content-Length: 0",
		"",
	}

	f.Add(strings.Join(rawMsg, "\r\n"))

	parser := NewParser()

	f.Fuzz(func(t *testing.T, orig string) {
		parser.ParseSIP([]byte(orig))
	})
}

// FuzzParseSipMessageOwnsData: a parsed message shares no memory with the
// buffer it was parsed from (the transport reuses its read buffer): after
// the buffer is overwritten the message reads as before.
func FuzzParseSipMessageOwnsData(f *testing.F) {
	f.Add("INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK.x\r\n" +
		"From: \"Alice\" <sip:alice@127.0.0.2:5060>;tag=1928301774\r\nTo: <sip:bob@127.0.0.1:5060>\r\nCall-ID: a84b4c76e66710\r\n" +
		"CSeq: 1 INVITE\r\nX-Custom: folded\r\n value\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n")
	parser := NewParser()
	f.Fuzz(func(t *testing.T, orig string) {
		buf := []byte(orig)
		msg, err := parser.ParseSIP(buf)
		if err != nil {
			return
		}
		before := msg.String()
		for i := range buf {
			buf[i] = 'x'
		}
		if after := msg.String(); after != before {
			t.Fatalf("the message changed with its read buffer:\n%q\n%q", before, after)
		}
	})
}
