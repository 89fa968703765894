package ng

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
)

// Decode decodes exactly one bencode value from b; anything after it is an
// error. Byte strings decode to string, integers to int64, lists to []any
// and dictionaries to Dict.
func Decode(b []byte) (any, error) {
	return DecodeString(string(b))
}

// DecodeString is [Decode] for input already held in a string. Every
// decoded string (keys included) is a substring of s rather than a copy,
// so a decoded message costs one copy of its bytes, not one per field.
func DecodeString(s string) (any, error) {
	d := decoderPool.Get().(*decoder)
	d.s, d.pos, d.depth = s, 0, 0
	v, err := d.value()
	if err == nil && d.pos != len(s) {
		err = errAt(ErrTrailing, d.pos)
	}
	d.release()
	if err != nil {
		return nil, err
	}
	return v, nil
}

// decoder keeps the elements of the containers being decoded on two shared
// stacks, so each list or dictionary is allocated once at its final size.
type decoder struct {
	s     string
	pos   int
	depth int
	keys  []string
	vals  []any
}

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

// maxPooledStack keeps one pathological message from pinning a large
// scratch stack in the pool forever.
const maxPooledStack = 4096

func (d *decoder) release() {
	d.s = ""
	// After an error the stacks still hold parts of the input.
	clear(d.keys)
	clear(d.vals)
	d.keys, d.vals = d.keys[:0], d.vals[:0]
	if cap(d.keys) > maxPooledStack || cap(d.vals) > maxPooledStack {
		return
	}
	decoderPool.Put(d)
}

func errAt(err error, pos int) error {
	return fmt.Errorf("%w at offset %d", err, pos)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (d *decoder) value() (any, error) {
	if d.pos >= len(d.s) {
		return nil, errAt(ErrTruncated, d.pos)
	}
	switch c := d.s[d.pos]; {
	case isDigit(c):
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == 'i':
		n, err := d.int()
		if err != nil {
			return nil, err
		}
		return n, nil
	case c == 'l':
		return d.list()
	case c == 'd':
		return d.dict()
	}
	return nil, errAt(ErrInvalidType, d.pos)
}

// int decodes i<decimal>e, rejecting what the bencode spec calls
// non-canonical: leading zeros, "-0" and an empty number.
func (d *decoder) int() (int64, error) {
	s, start := d.s, d.pos
	i := start + 1
	neg := i < len(s) && s[i] == '-'
	if neg {
		i++
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	first := i
	var u uint64
	for ; i < len(s) && isDigit(s[i]); i++ {
		dig := uint64(s[i] - '0')
		if u > (limit-dig)/10 {
			return 0, errAt(ErrInvalidInt, start)
		}
		u = u*10 + dig
	}
	if i >= len(s) {
		return 0, errAt(ErrTruncated, i)
	}
	digits := i - first
	if s[i] != 'e' || digits == 0 || s[first] == '0' && (digits > 1 || neg) {
		return 0, errAt(ErrInvalidInt, start)
	}
	d.pos = i + 1
	if neg {
		// Conversion and negation both wrap, giving MinInt64 for u == 1<<63.
		return -int64(u), nil
	}
	return int64(u), nil
}

// str decodes <length>:<bytes>; the caller has checked the first digit.
func (d *decoder) str() (string, error) {
	s, start := d.s, d.pos
	i, n := start, 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		n = n*10 + int(s[i]-'0')
		if n > len(s) { // also keeps n from overflowing
			return "", errAt(ErrTruncated, start)
		}
	}
	if i >= len(s) {
		return "", errAt(ErrTruncated, i)
	}
	if s[i] != ':' || s[start] == '0' && i-start > 1 {
		return "", errAt(ErrInvalidLen, start)
	}
	i++
	if n > len(s)-i {
		return "", errAt(ErrTruncated, start)
	}
	d.pos = i + n
	return s[i : i+n], nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > MaxDepth {
		return errAt(ErrTooDeep, d.pos)
	}
	d.pos++ // the 'l' or 'd'
	return nil
}

func (d *decoder) list() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	base := len(d.vals)
	for {
		if d.pos >= len(d.s) {
			return nil, errAt(ErrTruncated, d.pos)
		}
		if d.s[d.pos] == 'e' {
			d.pos++
			break
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.vals = append(d.vals, v)
	}
	l := make([]any, len(d.vals)-base)
	copy(l, d.vals[base:])
	clear(d.vals[base:])
	d.vals = d.vals[:base]
	d.depth--
	return l, nil
}

func (d *decoder) dict() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	kbase, vbase := len(d.keys), len(d.vals)
	for {
		if d.pos >= len(d.s) {
			return nil, errAt(ErrTruncated, d.pos)
		}
		c := d.s[d.pos]
		if c == 'e' {
			d.pos++
			break
		}
		if !isDigit(c) {
			return nil, errAt(ErrDictKey, d.pos)
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, v)
	}
	keys, vals := d.keys[kbase:], d.vals[vbase:]
	m := make(Dict, len(keys))
	// Keys may come unsorted (Kamailio does not sort them) and a repeated
	// key keeps its last value, as when rtpengine walks the dictionary.
	for i, k := range keys {
		m[k] = vals[i]
	}
	clear(keys)
	clear(vals)
	d.keys, d.vals = d.keys[:kbase], d.vals[:vbase]
	d.depth--
	return m, nil
}

// AppendEncode appends the bencoding of v to dst. It accepts string,
// []byte, the integer types, []any, []string, []Dict, Dict and
// map[string]any, nested up to [MaxDepth]; dictionary keys are written in
// sorted order. Anything else (bool, nil, floats...) is an error, and on
// error dst is returned unextended.
func AppendEncode(dst []byte, v any) ([]byte, error) {
	n := len(dst)
	out, err := appendValue(dst, v, 0)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return appendString(dst, v), nil
	case []byte:
		return appendString(dst, string(v)), nil
	case int:
		return appendInt(dst, int64(v)), nil
	case int64:
		return appendInt(dst, v), nil
	case int32:
		return appendInt(dst, int64(v)), nil
	case int16:
		return appendInt(dst, int64(v)), nil
	case int8:
		return appendInt(dst, int64(v)), nil
	case uint8:
		return appendInt(dst, int64(v)), nil
	case uint16:
		return appendInt(dst, int64(v)), nil
	case uint32:
		return appendInt(dst, int64(v)), nil
	case uint:
		return appendUint(dst, uint64(v))
	case uint64:
		return appendUint(dst, v)
	case Dict:
		return appendDict(dst, v, "", nil, depth)
	case map[string]any:
		return appendDict(dst, v, "", nil, depth)
	case []any:
		if depth >= MaxDepth {
			return dst, ErrTooDeep
		}
		dst = append(dst, 'l')
		for _, e := range v {
			var err error
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case []string:
		if depth >= MaxDepth {
			return dst, ErrTooDeep
		}
		dst = append(dst, 'l')
		for _, e := range v {
			dst = appendString(dst, e)
		}
		return append(dst, 'e'), nil
	case []Dict:
		if depth >= MaxDepth {
			return dst, ErrTooDeep
		}
		dst = append(dst, 'l')
		for _, e := range v {
			var err error
			if dst, err = appendDict(dst, e, "", nil, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	}
	return dst, fmt.Errorf("%w: %T", ErrUnsupportedType, v)
}

func appendString(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}

func appendUint(dst []byte, n uint64) ([]byte, error) {
	if n > math.MaxInt64 {
		return dst, ErrIntRange
	}
	return appendInt(dst, int64(n)), nil
}

// appendDict writes m with its keys sorted. If extraKey is set and m lacks
// it, extraVal is written under it too, so the server can add "result"
// without mutating (or copying) a reply the handler may share.
func appendDict(dst []byte, m map[string]any, extraKey string, extraVal any, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, ErrTooDeep
	}
	var arr [32]string // NG dictionaries rarely have more keys; spills to the heap if they do
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	if extraKey != "" {
		if _, ok := m[extraKey]; ok {
			extraKey = ""
		} else {
			keys = append(keys, extraKey)
		}
	}
	slices.Sort(keys)
	dst = append(dst, 'd')
	for _, k := range keys {
		dst = appendString(dst, k)
		v := m[k]
		if extraKey != "" && k == extraKey {
			v = extraVal
		}
		var err error
		if dst, err = appendValue(dst, v, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, 'e'), nil
}
