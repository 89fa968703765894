package ng

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"i42e", int64(42)},
		{"i0e", int64(0)},
		{"i-42e", int64(-42)},
		{"i9223372036854775807e", int64(math.MaxInt64)},
		{"i-9223372036854775808e", int64(math.MinInt64)},
		{"0:", ""},
		{"4:spam", "spam"},
		{"7:a:e\x00dl ", "a:e\x00dl "},
		{"le", []any{}},
		{"l4:spami7ee", []any{"spam", int64(7)}},
		{"de", Dict{}},
		{"d3:cow3:moo4:spam4:eggse", Dict{"cow": "moo", "spam": "eggs"}},
		// Kamailio does not sort keys.
		{"d7:command4:ping3:abc1:xe", Dict{"command": "ping", "abc": "x"}},
		// A repeated key keeps its last value.
		{"d1:ai1e1:ai2ee", Dict{"a": int64(2)}},
		{"d0:0:e", Dict{"": ""}},
		{
			"d4:listl1:ad1:bi1eee5:innerd1:xl1:y1:zeee",
			Dict{"list": []any{"a", Dict{"b": int64(1)}}, "inner": Dict{"x": []any{"y", "z"}}},
		},
		{"llleee", []any{[]any{[]any{}}}},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in))
		if err != nil {
			t.Errorf("Decode(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrTruncated},
		{"leading zero int", "i03e", ErrInvalidInt},
		{"negative zero", "i-0e", ErrInvalidInt},
		{"negative leading zero", "i-03e", ErrInvalidInt},
		{"empty int", "ie", ErrInvalidInt},
		{"bare minus", "i-e", ErrInvalidInt},
		{"plus sign", "i+1e", ErrInvalidInt},
		{"junk in int", "i1xe", ErrInvalidInt},
		{"int overflow", "i9223372036854775808e", ErrInvalidInt},
		{"int underflow", "i-9223372036854775809e", ErrInvalidInt},
		{"huge int", "i99999999999999999999999e", ErrInvalidInt},
		{"unterminated int", "i12", ErrTruncated},
		{"negative length", "-1:a", ErrInvalidType},
		{"length beyond input", "5:spam", ErrTruncated},
		{"huge length", "99999999999999999999999:x", ErrTruncated},
		{"leading zero length", "04:spam", ErrInvalidLen},
		{"missing colon", "4spam", ErrInvalidLen},
		{"only length", "4", ErrTruncated},
		{"trailing garbage", "4:spamx", ErrTrailing},
		{"two values", "i1ei2e", ErrTrailing},
		{"trailing newline", "de\n", ErrTrailing},
		{"unterminated list", "l4:spam", ErrTruncated},
		{"bare list", "l", ErrTruncated},
		{"unterminated dict", "d3:cow3:moo", ErrTruncated},
		{"bare dict", "d", ErrTruncated},
		{"dict key without value", "d3:cowe", ErrInvalidType},
		{"dict key cut short", "d3:co", ErrTruncated},
		{"int dict key", "di1e3:mooe", ErrDictKey},
		{"list dict key", "dl1:aei1ee", ErrDictKey},
		{"dict dict key", "ddei1ee", ErrDictKey},
		{"unknown type", "x", ErrInvalidType},
		{"too deep lists", strings.Repeat("l", MaxDepth+1) + strings.Repeat("e", MaxDepth+1), ErrTooDeep},
		{"too deep dicts", strings.Repeat("d1:a", MaxDepth+1) + "i1e" + strings.Repeat("e", MaxDepth+1), ErrTooDeep},
		{"deep and unterminated", strings.Repeat("l", 100000), ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%.40q) = %#v, %v; want error %v", tt.in, v, err, tt.want)
			}
			if v != nil {
				t.Errorf("Decode(%.40q) returned value %#v along with error", tt.in, v)
			}
		})
	}
}

func TestDecodeMaxDepth(t *testing.T) {
	in := strings.Repeat("l", MaxDepth) + strings.Repeat("e", MaxDepth)
	v, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode of %d nested lists: %v", MaxDepth, err)
	}
	out, err := AppendEncode(nil, v)
	if err != nil || string(out) != in {
		t.Fatalf("re-encoding %d nested lists = %q, %v", MaxDepth, out, err)
	}
}

// Decoding after an error must not be affected by what the failed decode
// left on the pooled scratch stacks.
func TestDecodeAfterError(t *testing.T) {
	for range 3 {
		if _, err := Decode([]byte("d1:al1:b1:c")); err == nil {
			t.Fatal("truncated input decoded")
		}
		got, err := Decode([]byte("d1:xl1:yee"))
		if err != nil || !reflect.DeepEqual(got, Dict{"x": []any{"y"}}) {
			t.Fatalf("Decode after error = %#v, %v", got, err)
		}
	}
}

func TestEncode(t *testing.T) {
	many := Dict{}
	var manyWant strings.Builder
	manyWant.WriteString("d")
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i)
		many[k] = i
		fmt.Fprintf(&manyWant, "3:%si%de", k, i)
	}
	manyWant.WriteString("e")

	tests := []struct {
		name string
		v    any
		want string
	}{
		{"string", "spam", "4:spam"},
		{"empty string", "", "0:"},
		{"bytes", []byte("a\x00b"), "3:a\x00b"},
		{"int", 42, "i42e"},
		{"negative", int64(-3), "i-3e"},
		{"zero", 0, "i0e"},
		{"min int64", int64(math.MinInt64), "i-9223372036854775808e"},
		{"int8", int8(-8), "i-8e"},
		{"int32", int32(1 << 30), "i1073741824e"},
		{"uint8", uint8(255), "i255e"},
		{"port", uint16(5060), "i5060e"},
		{"ssrc", uint32(math.MaxUint32), "i4294967295e"},
		{"uint64", uint64(math.MaxInt64), "i9223372036854775807e"},
		{"uint", uint(7), "i7e"},
		{"empty list", []any{}, "le"},
		{"list", []any{"a", 1, []string{"b"}}, "l1:ai1el1:bee"},
		{"strings", []string{"trust-address", "symmetric"}, "l13:trust-address9:symmetrice"},
		{"empty dict", Dict{}, "de"},
		{"nil dict", Dict(nil), "de"},
		{"sorted keys", Dict{"spam": "eggs", "cow": "moo", "a": 1}, "d1:ai1e3:cow3:moo4:spam4:eggse"},
		{"bytewise key order", Dict{"b": 1, "B": 2, "ab": 3, "a": 4, "": 5}, "d0:i5e1:Bi2e1:ai4e2:abi3e1:bi1ee"},
		{"map", map[string]any{"z": "1", "y": map[string]any{"x": []any{}}}, "d1:yd1:xlee1:z1:1e"},
		{"dict list", []Dict{{"b": 1, "a": 2}, {}}, "ld1:ai2e1:bi1eedee"},
		{"more keys than the stack array", many, manyWant.String()},
	}
	for _, tt := range tests {
		got, err := AppendEncode(nil, tt.v)
		if err != nil {
			t.Errorf("%s: AppendEncode: %v", tt.name, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s: AppendEncode = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	cyclic := Dict{}
	cyclic["self"] = cyclic
	deep := any("x")
	for range MaxDepth + 1 {
		deep = []any{deep}
	}
	tests := []struct {
		name string
		v    any
		want error
	}{
		{"bool", true, ErrUnsupportedType},
		{"nil", nil, ErrUnsupportedType},
		{"float", 1.5, ErrUnsupportedType},
		{"struct", struct{}{}, ErrUnsupportedType},
		{"nil in dict", Dict{"a": nil}, ErrUnsupportedType},
		{"bool in list", []any{"a", false}, ErrUnsupportedType},
		{"uint64 too big", uint64(math.MaxUint64), ErrIntRange},
		{"uint too big", uint(math.MaxUint), ErrIntRange},
		{"cyclic", cyclic, ErrTooDeep},
		{"too deep", deep, ErrTooDeep},
	}
	for _, tt := range tests {
		dst := []byte("keep")
		got, err := AppendEncode(dst, tt.v)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: AppendEncode error = %v, want %v", tt.name, err, tt.want)
		}
		if string(got) != "keep" {
			t.Errorf("%s: AppendEncode extended dst on error: %q", tt.name, got)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	values := []any{
		int64(0), int64(-1), int64(math.MaxInt64), "", "x y\r\n",
		[]any{}, Dict{},
		offerDict(),
		Dict{"a": Dict{"b": Dict{"c": []any{int64(1), "2", []any{Dict{}}}}}},
	}
	for _, v := range values {
		enc, err := AppendEncode(nil, v)
		if err != nil {
			t.Fatalf("AppendEncode(%#v): %v", v, err)
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(%q): %v", enc, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %#v = %#v", v, got)
		}
	}
}

func TestDecodeKamailioOffer(t *testing.T) {
	cookie, d, err := ParseMessage(offerMessage())
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "2187_3931468_1" {
		t.Errorf("cookie = %q", cookie)
	}
	if !reflect.DeepEqual(d, offerDict()) {
		t.Errorf("decoded offer = %#v\nwant %#v", d, offerDict())
	}
	// Re-encoding sorts the keys, and decodes to the same thing.
	enc, err := AppendMessage(nil, cookie, d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, []byte("2187_3931468_1 d7:call-id")) {
		t.Errorf("re-encoded offer does not start with the smallest key: %.40q", enc)
	}
	if _, d2, err := ParseMessage(enc); err != nil || !reflect.DeepEqual(d2, d) {
		t.Errorf("re-encoded offer decodes to %#v, %v", d2, err)
	}
}

func TestDictAccessors(t *testing.T) {
	d := Dict{
		"command":   "offer",
		"ttl":       int64(30),
		"delay":     "15",
		"bad-int":   "15s",
		"flags":     []any{"Trust-Address", "symmetric", int64(5), Dict{}},
		"direction": "external",
		"strs":      []string{"a", "B"},
		"sub":       Dict{"x": "y"},
		"map":       map[string]any{"x": "z"},
		"raw":       []byte("bytes"),
	}
	if got := d.Str("command"); got != "offer" {
		t.Errorf("Str(command) = %q", got)
	}
	if got := d.Str("ttl"); got != "30" {
		t.Errorf("Str(ttl) = %q", got)
	}
	if got := d.Str("raw"); got != "bytes" {
		t.Errorf("Str(raw) = %q", got)
	}
	for _, k := range []string{"missing", "flags", "sub"} {
		if got := d.Str(k); got != "" {
			t.Errorf("Str(%s) = %q, want empty", k, got)
		}
	}
	intTests := []struct {
		key  string
		want int64
		ok   bool
	}{{"ttl", 30, true}, {"delay", 15, true}, {"bad-int", 0, false}, {"missing", 0, false}, {"flags", 0, false}}
	for _, tt := range intTests {
		if got, ok := d.Int(tt.key); got != tt.want || ok != tt.ok {
			t.Errorf("Int(%s) = %d, %v; want %d, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
	if got := d.List("flags"); len(got) != 4 {
		t.Errorf("List(flags) = %#v", got)
	}
	if got := d.List("strs"); !reflect.DeepEqual(got, []any{"a", "B"}) {
		t.Errorf("List(strs) = %#v", got)
	}
	if got := d.List("command"); got != nil {
		t.Errorf("List(command) = %#v, want nil", got)
	}
	if got := d.Strings("flags"); !reflect.DeepEqual(got, []string{"Trust-Address", "symmetric", "5"}) {
		t.Errorf("Strings(flags) = %#v", got)
	}
	if got := d.Strings("direction"); !reflect.DeepEqual(got, []string{"external"}) {
		t.Errorf("Strings(direction) = %#v", got)
	}
	if got := d.Strings("ttl"); got != nil {
		t.Errorf("Strings(ttl) = %#v, want nil", got)
	}
	if got := d.Dict("sub").Str("x"); got != "y" {
		t.Errorf("Dict(sub)[x] = %q", got)
	}
	if got := d.Dict("map").Str("x"); got != "z" {
		t.Errorf("Dict(map)[x] = %q", got)
	}
	if got := d.Dict("command"); got != nil {
		t.Errorf("Dict(command) = %#v, want nil", got)
	}
	hasTests := []struct {
		list, value string
		want        bool
	}{
		{"flags", "trust-address", true},
		{"flags", "SYMMETRIC", true},
		{"flags", "5", true},
		{"flags", "asymmetric", false},
		{"direction", "External", true},
		{"strs", "b", true},
		{"missing", "x", false},
		{"ttl", "30", false},
	}
	for _, tt := range hasTests {
		if got := d.Has(tt.list, tt.value); got != tt.want {
			t.Errorf("Has(%s, %s) = %v, want %v", tt.list, tt.value, got, tt.want)
		}
	}
	var nilDict Dict
	if nilDict.Str("x") != "" || nilDict.Has("flags", "x") || nilDict.Dict("x") != nil {
		t.Error("accessors on a nil Dict found something")
	}
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantCookie string
		want       Dict
		wantErr    error
	}{
		{"ping", "5a1f d7:command4:pinge", "5a1f", Dict{"command": "ping"}, nil},
		{"trailing newline", "c1 d7:command4:pinge\r\n", "c1", Dict{"command": "ping"}, nil},
		{"odd cookie", "\x00\xff\t d1:ai1ee", "\x00\xff\t", Dict{"a": int64(1)}, nil},
		{"no space", "d7:command4:pinge", "", nil, ErrNoCookie},
		{"empty cookie", " d7:command4:pinge", "", nil, ErrNoCookie},
		{"empty", "", "", nil, ErrNoCookie},
		{"empty body", "c1 ", "c1", nil, ErrTruncated},
		{"two spaces", "c1  de", "c1", nil, ErrInvalidType},
		{"not a dict", "c1 l4:pinge", "c1", nil, ErrNotDict},
		{"bad bencode", "c1 d7:commande", "c1", nil, ErrInvalidType},
		{"trailing garbage", "c1 dex", "c1", nil, ErrTrailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cookie, d, err := ParseMessage([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if cookie != tt.wantCookie {
				t.Errorf("cookie = %q, want %q", cookie, tt.wantCookie)
			}
			if !reflect.DeepEqual(d, tt.want) {
				t.Errorf("dict = %#v, want %#v", d, tt.want)
			}
		})
	}
}

func TestAppendMessage(t *testing.T) {
	got, err := AppendMessage([]byte("x"), "c1", Dict{"result": "pong"})
	if err != nil || string(got) != "xc1 d6:result4:ponge" {
		t.Errorf("AppendMessage = %q, %v", got, err)
	}
	for _, cookie := range []string{"", "a b", "ab "} {
		if got, err := AppendMessage(nil, cookie, Dict{}); !errors.Is(err, ErrBadCookie) || len(got) != 0 {
			t.Errorf("AppendMessage with cookie %q = %q, %v; want ErrBadCookie", cookie, got, err)
		}
	}
	if got, err := AppendMessage([]byte("x"), "c", Dict{"a": true}); !errors.Is(err, ErrUnsupportedType) || string(got) != "x" {
		t.Errorf("AppendMessage with a bool = %q, %v", got, err)
	}
}
