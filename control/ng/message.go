package ng

import (
	"strings"
)

// ParseMessage splits a datagram into its cookie and dictionary. The cookie
// is everything before the first space and must not be empty. Trailing
// whitespace after the dictionary is tolerated, because test tools such as
// `echo ... | nc -u` append a newline.
//
// When the cookie was found but the body is bad, ParseMessage returns the
// cookie along with the error, so that the error can still be answered.
func ParseMessage(b []byte) (cookie string, d Dict, err error) {
	return parseMessage(string(b))
}

// parseMessage is ParseMessage on a string; the results share its memory.
func parseMessage(s string) (string, Dict, error) {
	i := strings.IndexByte(s, ' ')
	if i <= 0 {
		return "", nil, ErrNoCookie
	}
	cookie := s[:i]
	v, err := DecodeString(strings.TrimRight(s[i+1:], " \t\r\n"))
	if err != nil {
		return cookie, nil, err
	}
	d, ok := v.(Dict)
	if !ok {
		return cookie, nil, ErrNotDict
	}
	return cookie, d, nil
}

// AppendMessage appends "cookie SP bencode(d)" to dst. A nil d is written as
// an empty dictionary. On error dst is returned unextended.
func AppendMessage(dst []byte, cookie string, d Dict) ([]byte, error) {
	return appendMessage(dst, cookie, d, "", nil)
}

// appendMessage is AppendMessage, writing extraKey: extraVal too if d has
// no extraKey.
func appendMessage(dst []byte, cookie string, d Dict, extraKey string, extraVal any) ([]byte, error) {
	if cookie == "" || strings.IndexByte(cookie, ' ') >= 0 {
		return dst, ErrBadCookie
	}
	n := len(dst)
	dst = append(dst, cookie...)
	dst = append(dst, ' ')
	out, err := appendDict(dst, d, extraKey, extraVal, 0)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}
