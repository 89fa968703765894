package ng

import (
	"strconv"
	"strings"
)

// Dict is a decoded bencode dictionary. Values are string, int64, []any, or
// Dict. Dicts built by hand may also hold the other types [AppendEncode]
// accepts; the accessors understand the common ones.
type Dict map[string]any

// Str returns the string at key; an integer is rendered in decimal. It
// returns "" if the key is absent or holds anything else.
func (d Dict) Str(key string) string {
	switch v := d[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	}
	return ""
}

// Int returns the integer at key. Peers send numbers both as bencode
// integers and as decimal strings (Kamailio sends "delete-delay" as a
// string), so both are accepted.
func (d Dict) Int(key string) (int64, bool) {
	switch v := d[key].(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// List returns the list at key, or nil.
func (d Dict) List(key string) []any {
	switch v := d[key].(type) {
	case []any:
		return v
	case []string:
		l := make([]any, len(v))
		for i, s := range v {
			l[i] = s
		}
		return l
	}
	return nil
}

// Strings returns the strings in the list at key (such as "flags",
// "replace" or "rtcp-mux"), rendering integers in decimal and skipping
// anything else. A single string value yields a one-element slice.
func (d Dict) Strings(key string) []string {
	switch v := d[key].(type) {
	case string:
		return []string{v}
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			switch e := e.(type) {
			case string:
				out = append(out, e)
			case int64:
				out = append(out, strconv.FormatInt(e, 10))
			}
		}
		return out
	}
	return nil
}

// Dict returns the dictionary at key, or nil.
func (d Dict) Dict(key string) Dict {
	switch v := d[key].(type) {
	case Dict:
		return v
	case map[string]any:
		return v
	}
	return nil
}

// Has reports whether the list at flagList contains value, ignoring case,
// as rtpengine does for flags.
func (d Dict) Has(flagList, value string) bool {
	switch v := d[flagList].(type) {
	case string:
		return strings.EqualFold(v, value)
	case []any:
		for _, e := range v {
			switch e := e.(type) {
			case string:
				if strings.EqualFold(e, value) {
					return true
				}
			case int64:
				if strconv.FormatInt(e, 10) == value {
					return true
				}
			}
		}
	case []string:
		for _, s := range v {
			if strings.EqualFold(s, value) {
				return true
			}
		}
	}
	return false
}

// ErrorReply returns the reply rtpengine sends when a command fails.
func ErrorReply(reason string) Dict {
	return Dict{"result": "error", "error-reason": reason}
}
