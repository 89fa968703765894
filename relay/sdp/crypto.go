package sdp

import (
	"encoding/base64"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Crypto is an RFC 4568 SDES a=crypto value:
// "tag suite key-param[;key-param...] [session-param...]".
type Crypto struct {
	Tag           int
	Suite         string
	KeyParams     []KeyParam
	SessionParams []string // KDR=, UNENCRYPTED_SRTP, FEC_ORDER=, WSH=, ... as written
}

// KeyParam is one key-param: "inline:<key||salt>[|lifetime][|mki:length]".
type KeyParam struct {
	Method    string // "inline", the only method RFC 4568 defines for SRTP
	Key       []byte // decoded master key || master salt; nil if not decoded (see ParseCrypto)
	Lifetime  uint64 // in packets; 0 = unset
	MKIValue  int
	MKILength int // bytes, 1..128
	HasMKI    bool
	Info      string // the key-info as written after "method:"; all there is when Key is nil
}

// SuiteKeyLen returns the length of the inline key||salt for an SRTP
// crypto suite this package knows (RFC 4568, RFC 6188, RFC 7714).
func SuiteKeyLen(suite string) (n int, ok bool) {
	switch suite {
	case "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
		"F8_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_32":
		return 16 + 14, true
	case "AES_192_CM_HMAC_SHA1_80", "AES_192_CM_HMAC_SHA1_32":
		return 24 + 14, true
	case "AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32":
		return 32 + 14, true
	case "AEAD_AES_128_GCM":
		return 16 + 12, true
	case "AEAD_AES_256_GCM":
		return 32 + 12, true
	}
	return 0, false
}

// KnownSuite reports whether c.Suite is one SuiteKeyLen knows, and so
// whether its keys were checked.
func (c Crypto) KnownSuite() bool {
	_, ok := SuiteKeyLen(c.Suite)
	return ok
}

// ParseCrypto parses an a=crypto value (the text after "a=crypto:").
//
// For a known suite (SuiteKeyLen) every key-param must be inline, with
// valid base64 (padded or not) decoding to exactly the suite's key||salt
// length, and a valid lifetime and MKI; anything else is an error. An
// unknown suite still parses, so the relay can pass it through or decline
// it: its key-params are decoded when they follow the SRTP inline syntax,
// and otherwise kept only as Method and Info with Key nil. KnownSuite tells
// the two cases apart.
func ParseCrypto(value string) (Crypto, error) {
	var c Crypto
	v := trimWS(value)
	tag, v := wsField(v)
	suite, v := wsField(v)
	kps, v := wsField(v)
	if len(tag) > 9 || !isDigits(tag) {
		return c, fmt.Errorf("%w: bad tag", ErrBadCrypto)
	}
	c.Tag, _ = strconv.Atoi(tag)
	if !isToken(suite) {
		return c, fmt.Errorf("%w: bad suite", ErrBadCrypto)
	}
	c.Suite = suite
	if kps == "" {
		return c, fmt.Errorf("%w: no key-params", ErrBadCrypto)
	}
	for v != "" {
		var p string
		if p, v = wsField(v); p == "" {
			continue
		}
		if !isVisible(p, 0) {
			return c, fmt.Errorf("%w: bad session-param", ErrBadCrypto)
		}
		c.SessionParams = append(c.SessionParams, p)
	}

	keyLen, known := SuiteKeyLen(suite)
	c.KeyParams = make([]KeyParam, 0, strings.Count(kps, ";")+1)
	for kp := range strings.SplitSeq(kps, ";") {
		method, info, _ := strings.Cut(kp, ":")
		if !isToken(method) || info == "" || !isVisible(info, ';') {
			return c, fmt.Errorf("%w: bad key-param", ErrBadCrypto)
		}
		k := KeyParam{Method: method, Info: info}
		switch {
		case method == "inline":
			if err := parseInline(&k, info); err != nil {
				if known {
					return c, err
				}
				k = KeyParam{Method: method, Info: info}
			} else if known && len(k.Key) != keyLen {
				return c, fmt.Errorf("%w: %s takes %d bytes, got %d", ErrBadCryptoKey, suite, keyLen, len(k.Key))
			}
		case known:
			return c, fmt.Errorf("%w: key method is not inline", ErrBadCrypto)
		}
		c.KeyParams = append(c.KeyParams, k)
	}
	return c, nil
}

// parseInline parses SRTP key-info: key-salt ["|" lifetime] ["|" mki].
func parseInline(k *KeyParam, info string) error {
	key, rest, _ := strings.Cut(info, "|")
	var err error
	if k.Key, err = decodeKey(key); err != nil {
		return err
	}
	if rest == "" {
		return nil
	}
	lifetime, mki, two := strings.Cut(rest, "|")
	if !two && strings.IndexByte(lifetime, ':') >= 0 { // a lone MKI always has the colon
		lifetime, mki = "", lifetime
	}
	if two && (lifetime == "" || mki == "") {
		return fmt.Errorf("%w: empty lifetime or MKI", ErrBadCrypto)
	}
	if lifetime != "" {
		if k.Lifetime, err = parseLifetime(lifetime); err != nil {
			return err
		}
	}
	if mki != "" {
		val, length, ok := strings.Cut(mki, ":")
		n, err1 := strconv.ParseInt(val, 10, 64)
		l, ok2 := atoiMax(length, 128)
		if !ok || !isDigits(val) || err1 != nil || !ok2 || len(length) > 3 || l == 0 ||
			(l < 8 && uint64(n) >= 1<<(8*l)) {
			return fmt.Errorf("%w: bad MKI", ErrBadCrypto)
		}
		k.MKIValue, k.MKILength, k.HasMKI = int(n), l, true
	}
	return nil
}

// parseLifetime parses "2^n" or a decimal packet count.
func parseLifetime(s string) (uint64, error) {
	if exp, ok := strings.CutPrefix(s, "2^"); ok {
		if n, ok := atoiMax(exp, 63); ok && len(exp) <= 2 {
			return 1 << n, nil
		}
	} else if isDigits(s) {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: bad lifetime", ErrBadCrypto)
}

// decodeKey decodes base64 with or without padding. Go's decoder skips CR
// and LF, so the alphabet is checked first: a key must be one token.
func decodeKey(s string) ([]byte, error) {
	pad := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			pad++
		case pad > 0, !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'):
			return nil, fmt.Errorf("%w: key is not base64", ErrBadCrypto)
		}
	}
	enc := base64.StdEncoding
	if pad == 0 && len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	key, err := enc.DecodeString(s)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%w: key is not base64", ErrBadCrypto)
	}
	return key, nil
}

// String formats c canonically: single spaces, padded base64, a lifetime
// that is a power of two as "2^n". It is not byte-for-byte what was
// parsed; the a= line itself is kept as written unless it is replaced.
func (c Crypto) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Tag))
	b.WriteByte(' ')
	b.WriteString(c.Suite)
	for i, k := range c.KeyParams {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(';')
		}
		b.WriteString(k.String())
	}
	for _, p := range c.SessionParams {
		b.WriteByte(' ')
		b.WriteString(p)
	}
	return b.String()
}

// String formats one key-param: from Key and the fields when Key is set,
// else as Method:Info.
func (k KeyParam) String() string {
	method := k.Method
	if method == "" {
		method = "inline"
	}
	if k.Key == nil {
		return method + ":" + k.Info
	}
	b := []byte(method)
	b = append(b, ':')
	b = base64.StdEncoding.AppendEncode(b, k.Key)
	if k.Lifetime != 0 {
		b = append(b, '|')
		if k.Lifetime&(k.Lifetime-1) == 0 {
			b = append(b, "2^"...)
			b = strconv.AppendInt(b, int64(bits.TrailingZeros64(k.Lifetime)), 10)
		} else {
			b = strconv.AppendUint(b, k.Lifetime, 10)
		}
	}
	if k.HasMKI {
		b = append(b, '|')
		b = strconv.AppendInt(b, int64(k.MKIValue), 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(k.MKILength), 10)
	}
	return string(b)
}

// wsField returns the first token of s separated by spaces or tabs.
func wsField(s string) (tok, rest string) {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// isToken matches 1*(ALPHA / DIGIT / "_").
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isVisible matches 1*VCHAR, less the byte except (0 for none).
func isVisible(s string, except byte) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == except {
			return false
		}
	}
	return true
}
