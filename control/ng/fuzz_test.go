package ng

import (
	"bytes"
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func addDecodeSeeds(f *testing.F) {
	for _, s := range []string{
		"i42e", "i-9223372036854775808e", "i03e", "i-0e", "4:spam", "0:", "5:spam",
		"le", "l4:spami7ee", "de", "d3:cow3:moo4:spam4:eggse", "d1:ai1e1:ai2ee",
		"d4:listl1:ad1:bi1eee5:innerd1:xl1:y1:zeee", "di1e3:mooe", "l4:spam",
		strings.Repeat("l", MaxDepth) + strings.Repeat("e", MaxDepth),
	} {
		f.Add([]byte(s))
	}
	msg := offerMessage()
	f.Add(msg[bytes.IndexByte(msg, ' ')+1:])
}

// FuzzDecode checks that decoding never panics, and that whatever decodes
// re-encodes to something that decodes to the same value and encodes to
// the same bytes.
func FuzzDecode(f *testing.F) {
	addDecodeSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			if v != nil {
				t.Fatalf("Decode returned %#v with error %v", v, err)
			}
			return
		}
		enc, err := AppendEncode(nil, v)
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		if len(enc) > len(b) {
			// Re-encoding only sorts and de-duplicates keys.
			t.Fatalf("re-encoding grew %d bytes to %d", len(b), len(enc))
		}
		v2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("decode(encode(v)) = %#v, want %#v", v2, v)
		}
		enc2, err := AppendEncode(nil, v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %q then %q (%v)", enc, enc2, err)
		}
	})
}

// FuzzParseMessage checks message parsing, and the server's answer to any
// datagram: it never panics and always replies with the request's cookie.
func FuzzParseMessage(f *testing.F) {
	f.Add(offerMessage())
	for _, s := range []string{
		"5a1f d7:command4:pinge", "c1 d7:command4:pinge\r\n", "d7:command4:pinge", " de",
		"c1 ", "c1  de", "c1 l4:pinge", "c1 d7:commande", "c1 dex", "\x00 de",
	} {
		f.Add([]byte(s))
	}
	srv := NewServer(HandlerFunc(func(ctx context.Context, from netip.AddrPort, req Dict) Dict {
		if req.Str("command") == "boom" {
			panic("boom")
		}
		delete(req, "result")
		return req // echo, with whatever types and depth the request had
	}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cookie, d, err := ParseMessage(b)
		if strings.Contains(cookie, " ") {
			t.Fatalf("cookie %q contains a space", cookie)
		}
		if cookie != "" && !bytes.HasPrefix(b, []byte(cookie+" ")) {
			t.Fatalf("cookie %q is not the datagram's prefix", cookie)
		}
		if err == nil {
			if cookie == "" || d == nil {
				t.Fatalf("no error but cookie %q, dict %#v", cookie, d)
			}
			msg, err := AppendMessage(nil, cookie, d)
			if err != nil {
				t.Fatalf("parsed message does not encode: %v", err)
			}
			cookie2, d2, err := ParseMessage(msg)
			if err != nil || cookie2 != cookie || !reflect.DeepEqual(d2, d) {
				t.Fatalf("re-parse = %q %#v %v, want %q %#v", cookie2, d2, err, cookie, d)
			}
		}
		if cookie == "" {
			return
		}
		out, _ := srv.answer(context.Background(), job{key: cacheKey{cookie: cookie}, msg: string(b)}, nil)
		rc, reply, err := ParseMessage(out)
		if err != nil || rc != cookie {
			t.Fatalf("server reply %q: cookie %q, %v", out, rc, err)
		}
		if r := reply.Str("result"); r != "ok" && r != "error" {
			t.Fatalf("server reply %q has result %q", out, r)
		}
	})
}

// ClassOf takes any peer's error-reason: it never panics and always
// answers a known class.
func FuzzClassOf(f *testing.F) {
	for _, s := range []string{"Ran out of ports", "Failed to parse SDP", "Unknown call-id", "", "\xff\xfe", "SDP limit exceeded"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reason string) {
		c := ClassOf(reason)
		if c < ClassInternal || c > ClassUnknownCall {
			t.Fatalf("ClassOf(%q) = %d", reason, c)
		}
		if e := NewReplyError(reason); e.Class != c || e.Reason != reason {
			t.Fatalf("NewReplyError(%q) = %+v", reason, e)
		}
	})
}
