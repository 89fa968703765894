package sdp

import (
	"net/netip"
	"strings"
)

// SetConnection points the session and every media at addr: it rewrites
// the session-level c= (adding one if some media had no c= of its own) and
// every media-level c=. An IPv4-mapped address is written as IP4; an
// invalid one changes nothing (to drop a c=, set Conn to the zero Addr).
func (s *Session) SetConnection(addr netip.Addr) {
	if addr = addr.Unmap().WithZone(""); !addr.IsValid() {
		return
	}
	need := s.cLine > 0 || s.Conn.IsValid()
	for _, m := range s.Media {
		if m.cLine == 0 {
			need = true
		}
	}
	if need {
		s.Conn = addr
	}
	for _, m := range s.Media {
		m.Conn = addr
		m.derive(m.sessDir)
	}
}

// SetOriginAddr rewrites the o= address (the NG protocol's replace=origin).
func (s *Session) SetOriginAddr(addr netip.Addr) {
	addr = addr.Unmap().WithZone("")
	s.Origin.NetType, s.Origin.AddrType, s.Origin.Addr = "IN", addrType(addr), addr.String()
}

// BumpVersion increments the o= sess-version, as RFC 3264 requires of every
// changed offer or answer. The version is decimal text of any length (some
// stacks use 20-digit timestamps); one that is not decimal is left alone.
func (s *Session) BumpVersion() {
	v := s.Origin.SessVersion
	if !isDigits(v) {
		return
	}
	k := len(v) - 1 // the digit that absorbs the carry
	for k >= 0 && v[k] == '9' {
		k--
	}
	var b strings.Builder
	b.Grow(len(v) + 1)
	if k < 0 {
		b.WriteByte('1')
	} else {
		b.WriteString(v[:k])
		b.WriteByte(v[k] + 1)
	}
	for i := k + 1; i < len(v); i++ {
		b.WriteByte('0')
	}
	s.Origin.SessVersion = b.String()
}

// Clone returns a deep copy of s, for rewriting one parsed SDP two ways
// (say, for two forked branches). Strings are shared; they are immutable.
func (s *Session) Clone() *Session {
	c := *s
	c.Attrs = cloneSlice(s.Attrs)
	c.lines = cloneSlice(s.lines)
	if s.Media != nil {
		c.Media = make([]*Media, len(s.Media))
		for i, m := range s.Media {
			mc := *m
			mc.Formats = cloneSlice(m.Formats)
			mc.Attrs = cloneSlice(m.Attrs)
			mc.lines = cloneSlice(m.lines)
			c.Media[i] = &mc
		}
	}
	return &c
}

// cloneSlice copies s, keeping nil as nil and leaving attrSlack spare capacity.
func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)+attrSlack), s...)
}
