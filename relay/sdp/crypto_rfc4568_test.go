package sdp

import (
	"reflect"
	"testing"
)

// The a=crypto values from RFC 4568's examples (sections 4, 6.1 and 8.x),
// with the RFC's line folding undone.
func TestCryptoRFC4568Examples(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		want        Crypto
	}{{
		name:  "section 4: lifetime and MKI",
		value: "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
		want: Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: []KeyParam{{
			Method: "inline", Key: []byte("=-n@%^x!Bjufr9)?,#5h\\`=&]{qiPQ"),
			Lifetime: 1 << 20, MKIValue: 1, MKILength: 32, HasMKI: true,
			Info: "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
		}}},
	}, {
		name:  "section 6.1: MKI without lifetime",
		value: "1 AES_CM_128_HMAC_SHA1_32 inline:YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1066:4",
		want: Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_32", KeyParams: []KeyParam{{
			Method: "inline", Key: []byte("aBCdefghiJKLmoPQrsTuVwyz123456"),
			MKIValue: 1066, MKILength: 4, HasMKI: true,
			Info: "YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1066:4",
		}}},
	}, {
		name:  "offer, line 1: session parameter",
		value: "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 FEC_ORDER=FEC_SRTP",
		want: Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: []KeyParam{{
			Method: "inline", Key: []byte("YS___semctl () {\t220;}\n}\nunles"),
			Lifetime: 1 << 20, MKIValue: 1, MKILength: 4, HasMKI: true,
			Info: "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
		}}, SessionParams: []string{"FEC_ORDER=FEC_SRTP"}},
	}, {
		name: "offer, line 2: two key-params",
		value: "2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;" +
			"inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP",
		want: Crypto{Tag: 2, Suite: "F8_128_HMAC_SHA1_80", KeyParams: []KeyParam{{
			Method: "inline", Key: []byte("123456789ABCDE0123456789ABcdef"),
			Lifetime: 1 << 20, MKIValue: 1, MKILength: 4, HasMKI: true,
			Info: "MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4",
		}, {
			Method: "inline", Key: []byte("ABcdef123456789ABCDE0123456789"),
			Lifetime: 1 << 20, MKIValue: 2, MKILength: 4, HasMKI: true,
			Info: "QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4",
		}}, SessionParams: []string{"FEC_ORDER=FEC_SRTP"}},
	}, {
		name:  "answer",
		value: "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
		want: Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", KeyParams: []KeyParam{{
			Method: "inline", Key: []byte("=-n@%^x!Bjufr9)?,#5h\\`=&]{qiPQ"),
			Lifetime: 1 << 20, MKIValue: 1, MKILength: 4, HasMKI: true,
			Info: "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
		}}},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCrypto(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, tt.want) {
				t.Errorf("ParseCrypto:\n got %+v\nwant %+v", c, tt.want)
			}
			if !c.KnownSuite() {
				t.Error("suite not known")
			}
			// The RFC writes canonical form, so String reproduces it.
			if got := c.String(); got != tt.value {
				t.Errorf("String = %q, want %q", got, tt.value)
			}
		})
	}
}
