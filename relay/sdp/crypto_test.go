package sdp

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const rfcKey = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR" // 30 bytes

func TestParseCryptoForms(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		check       func(t *testing.T, c Crypto)
		str         string // canonical String, if not the value
	}{
		{"key only", "1 AES_CM_128_HMAC_SHA1_32 inline:" + rfcKey, func(t *testing.T, c Crypto) {
			k := c.KeyParams[0]
			if k.Lifetime != 0 || k.HasMKI || len(k.Key) != 30 {
				t.Errorf("%+v", k)
			}
		}, ""},
		{"decimal lifetime", "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|1048576", func(t *testing.T, c Crypto) {
			if c.KeyParams[0].Lifetime != 1<<20 {
				t.Errorf("lifetime %d", c.KeyParams[0].Lifetime)
			}
		}, "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20"},
		{"odd decimal lifetime", "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|1000000", func(t *testing.T, c Crypto) {
			if c.KeyParams[0].Lifetime != 1000000 {
				t.Errorf("lifetime %d", c.KeyParams[0].Lifetime)
			}
		}, ""},
		{"2^31", "1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^31", func(t *testing.T, c Crypto) {
			if c.KeyParams[0].Lifetime != 1<<31 {
				t.Errorf("lifetime %d", c.KeyParams[0].Lifetime)
			}
		}, ""},
		{"session params and tabs", "9\tAES_CM_128_HMAC_SHA1_80  inline:" + rfcKey + "  KDR=1 UNENCRYPTED_SRTCP\tWSH=64 ", func(t *testing.T, c Crypto) {
			if c.Tag != 9 || strings.Join(c.SessionParams, ",") != "KDR=1,UNENCRYPTED_SRTCP,WSH=64" {
				t.Errorf("%+v", c)
			}
		}, "9 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + " KDR=1 UNENCRYPTED_SRTCP WSH=64"},
		{"AES-256 with padding", "1 AES_256_CM_HMAC_SHA1_80 inline:" + b64(46), func(t *testing.T, c Crypto) {
			if len(c.KeyParams[0].Key) != 46 {
				t.Errorf("key %d", len(c.KeyParams[0].Key))
			}
		}, ""},
		{"AES-256 without padding", "1 AES_256_CM_HMAC_SHA1_32 inline:" + strings.TrimRight(b64(46), "="), nil,
			"1 AES_256_CM_HMAC_SHA1_32 inline:" + b64(46)},
		{"GCM", "3 AEAD_AES_128_GCM inline:" + b64(28), nil, ""},
		{"unknown suite, odd key-info", "5 ARIA_CM_192_HMAC_SHA1_80 inline:not*base64|x;sdes:whatever", func(t *testing.T, c Crypto) {
			if c.KnownSuite() || c.KeyParams[0].Key != nil || c.KeyParams[0].Info != "not*base64|x" || c.KeyParams[1].Method != "sdes" {
				t.Errorf("%+v", c)
			}
		}, ""},
		{"unknown suite, SRTP key-info", "5 SEED_CTR_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20", func(t *testing.T, c Crypto) {
			if c.KnownSuite() || len(c.KeyParams[0].Key) != 30 || c.KeyParams[0].Lifetime != 1<<20 {
				t.Errorf("%+v", c)
			}
		}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCrypto(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
			want := tt.str
			if want == "" {
				want = tt.value
			}
			if got := c.String(); got != want {
				t.Errorf("String = %q, want %q", got, want)
			}
		})
	}
}

func TestParseCryptoErrors(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  error
	}{
		{"", ErrBadCrypto},
		{"1", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80", ErrBadCrypto},
		{"x AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, ErrBadCrypto},
		{"1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, ErrBadCrypto},
		{"1 AES-CM inline:" + rfcKey, ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(16), ErrBadCryptoKey},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(46), ErrBadCryptoKey},
		{"1 AEAD_AES_256_GCM inline:" + b64(46), ErrBadCryptoKey},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB!", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1u=QCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + ";", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 uri:http://example.com/key", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^64", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|0", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20|1:0", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20|1:129", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20|256:1", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|2^20|1:4|9", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "||1:4", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + "|x:4", ErrBadCrypto},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey + " KDR=\x01", ErrBadCrypto},
	} {
		if c, err := ParseCrypto(tt.value); !errors.Is(err, tt.want) {
			t.Errorf("ParseCrypto(%q) = %+v, %v; want %v", tt.value, c, err, tt.want)
		}
	}
}

func TestMediaCryptos(t *testing.T) {
	m := &Media{Attrs: []Attr{
		{Key: "crypto", Value: "1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(10), HasValue: true},
		{Key: "crypto", Value: "2 AES_CM_128_HMAC_SHA1_32 inline:" + rfcKey, HasValue: true},
		{Key: "crypto", Value: "2 AES_CM_128_HMAC_SHA1_80 inline:" + rfcKey, HasValue: true},
	}}
	cs, err := m.Cryptos()
	if len(cs) != 1 || cs[0].Tag != 2 || !errors.Is(err, ErrBadCryptoKey) {
		t.Errorf("Cryptos = %+v, %v", cs, err)
	}
	m.Attrs = m.Attrs[1:]
	if _, err := m.Cryptos(); !errors.Is(err, ErrDuplicateCrypto) {
		t.Errorf("duplicate tag: %v", err)
	}
}

// b64 is the padded base64 of n distinct bytes.
func b64(n int) string {
	key := make([]byte, n)
	for i := range key {
		key[i] = byte(i*37 + 11)
	}
	return base64.StdEncoding.EncodeToString(key)
}
