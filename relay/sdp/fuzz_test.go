package sdp

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.sdp")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, in := range oddInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		// Untouched, the output is the input.
		out := s.AppendMarshal(nil)
		if !bytes.Equal(out, in) {
			t.Fatalf("round trip changed the SDP:\n in %q\nout %q", in, out)
		}

		// The relay's edits give SDP that parses back to what was set, and
		// that re-marshals identically.
		v4 := len(in)%2 == 0
		addr := netip.MustParseAddr("2001:db8::1")
		if v4 {
			addr = relayAddr
		}
		s.SetConnection(addr)
		s.SetOriginAddr(addr)
		s.BumpVersion()
		s.RemoveICE()
		for i, m := range s.Media {
			RemoveICE(m)
			m.SetPort(30000 + 2*i)
			m.SetRTCP(30001+2*i, addr)
			m.AddAttr("x-fuzz", "")
		}
		edited := s.AppendMarshal(nil)
		s2, err := Parse(edited)
		if err != nil {
			t.Fatalf("edited SDP does not parse: %v\n in %q\nout %q", err, in, edited)
		}
		if again := s2.AppendMarshal(nil); !bytes.Equal(again, edited) {
			t.Fatalf("edited SDP does not re-marshal identically:\n%q\n%q", edited, again)
		}
		if s2.Origin != s.Origin || len(s2.Media) != len(s.Media) {
			t.Fatalf("origin %+v / %+v, media %d / %d", s2.Origin, s.Origin, len(s2.Media), len(s.Media))
		}
		for i, m := range s2.Media {
			if m.Port != 30000+2*i || m.Conn != addr || m.RTCPPort != 30001+2*i || m.RTCPAddr != addr {
				t.Fatalf("media %d reads back as port %d conn %v rtcp %d %v\n%q", i, m.Port, m.Conn, m.RTCPPort, m.RTCPAddr, edited)
			}
			for _, a := range m.Attrs {
				if isICE(a.Key) {
					t.Fatalf("ICE attribute %q survived", a.Key)
				}
			}
		}
	})
}

func FuzzParseCrypto(f *testing.F) {
	for _, v := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
		"1 AES_CM_128_HMAC_SHA1_32 inline:YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1066:4",
		"2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP",
		"1 AES_256_CM_HMAC_SHA1_80 inline:" + b64(46) + " KDR=1 UNENCRYPTED_SRTCP",
		"5 ARIA_CM_192_HMAC_SHA1_80 inline:not*base64|x;sdes:whatever",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseCrypto(v)
		if err != nil {
			return
		}
		if n, ok := SuiteKeyLen(c.Suite); ok {
			for _, k := range c.KeyParams {
				if len(k.Key) != n {
					t.Fatalf("accepted a %d-byte key for %s", len(k.Key), c.Suite)
				}
			}
		}
		str := c.String()
		c2, err := ParseCrypto(str)
		if err != nil {
			t.Fatalf("String output %q does not parse: %v (from %q)", str, err, v)
		}
		if str2 := c2.String(); str2 != str {
			t.Fatalf("String not stable: %q then %q", str, str2)
		}
	})
}
