package sdp

import (
	"net/netip"
	"strconv"
	"strings"
)

// AppendMarshal appends the SDP to dst and returns the extended slice. Lines
// whose fields are unchanged are copied as they were parsed; edited ones are
// regenerated with their original line ending, and added ones take the
// ending of the input.
func (s *Session) AppendMarshal(dst []byte) []byte {
	w := writer{b: dst, eol: s.eol}
	if w.eol == "" {
		w.eol = "\r\n"
	}

	addC := -1 // a c= goes after line addC-1 (0: first thing)
	if s.cLine == 0 && s.Conn.IsValid() {
		addC = connSlot(s.lines, "btrzk")
		if addC == 0 {
			w.conn(s.Conn, "")
		}
	}
	w.section(s.Attrs, s.lines, func(i int) {
		l := s.lines[i].raw
		switch i + 1 {
		case s.oLine:
			text, term := splitTerm(l)
			if o, ok := parseOrigin(trimWS(text[2:])); ok && o == s.Origin {
				w.raw(l)
			} else {
				w.origin(&s.Origin, term)
			}
		case s.cLine:
			w.connLine(l, s.Conn, s.origConn)
		default:
			w.raw(l)
		}
		if i+1 == addC {
			w.conn(s.Conn, "")
		}
	})

	for _, m := range s.Media {
		w.media(m, s.Conn)
	}
	return w.b
}

func (w *writer) media(m *Media, sessConn netip.Addr) {
	w.mline(m)
	// Without a c= of its own the media takes the session's, so it needs one
	// when its Conn differs: what is parsed back matches the fields.
	addC := -1
	if m.cLine == 0 && m.Conn.IsValid() && m.Conn != sessConn {
		addC = connSlot(m.lines, "bk")
		if addC == 0 {
			w.conn(m.Conn, "")
		}
	}
	w.section(m.Attrs, m.lines, func(i int) {
		l := m.lines[i].raw
		if i+1 == m.cLine {
			w.connLine(l, m.Conn, m.origConn)
		} else {
			w.raw(l)
		}
		if i+1 == addC {
			w.conn(m.Conn, "")
		}
	})
}

// connSlot is where an added c= goes: before the first line of one of the
// types that RFC 8866 orders after c=, else after the last line.
func connSlot(lines []line, after string) int {
	for i, l := range lines {
		for j := 0; j < len(after); j++ {
			if len(l.raw) > 1 && l.raw[0] == after[j] && l.raw[1] == '=' {
				return i
			}
		}
	}
	return len(lines)
}

type writer struct {
	b    []byte
	eol  string
	open bool // the last line written had no terminator (it ended the input)
}

// section interleaves attributes and the other lines in their order.
func (w *writer) section(attrs []Attr, lines []line, emit func(int)) {
	li := 0
	for ai := range attrs {
		for li < len(lines) && lines[li].at <= ai {
			emit(li)
			li++
		}
		w.attr(&attrs[ai])
	}
	for ; li < len(lines); li++ {
		emit(li)
	}
}

func (w *writer) begin() {
	if w.open {
		w.b = append(w.b, w.eol...)
		w.open = false
	}
}

// end terminates a regenerated line like the one it replaces; "" keeps an
// input's missing final line ending missing.
func (w *writer) end(term string) {
	if term == "" {
		w.open = true
		return
	}
	w.b = append(w.b, term...)
}

// termOf is the ending for a line regenerated from raw ("" for a new line).
func (w *writer) termOf(raw string) string {
	if raw == "" {
		return w.eol
	}
	_, term := splitTerm(raw)
	return term
}

func (w *writer) raw(raw string) {
	w.begin()
	w.b = append(w.b, raw...)
	w.open = raw[len(raw)-1] != '\n'
}

func (w *writer) attr(a *Attr) {
	if a.raw != "" {
		text, _ := splitTerm(a.raw)
		k, v, has := splitAttr(trimWS(text[2:]))
		if k == a.Key && v == a.Value && has == a.HasValue {
			w.raw(a.raw)
			return
		}
	}
	w.begin()
	w.b = append(w.b, "a="...)
	w.b = append(w.b, a.Key...)
	if a.HasValue {
		w.b = append(w.b, ':')
		w.b = append(w.b, a.Value...)
	}
	w.end(w.termOf(a.raw))
}

func (w *writer) origin(o *Origin, term string) {
	w.begin()
	w.b = append(w.b, "o="...)
	for i, f := range [...]string{o.Username, o.SessID, o.SessVersion, o.NetType, o.AddrType, o.Addr} {
		if i > 0 {
			w.b = append(w.b, ' ')
		}
		w.b = append(w.b, f...)
	}
	w.end(term)
}

// connLine writes an existing c= line: as it was, regenerated for a new
// address, or not at all if the address was cleared.
func (w *writer) connLine(raw string, addr, orig netip.Addr) {
	switch {
	case addr == orig:
		w.raw(raw)
	case addr.IsValid():
		w.conn(addr, raw)
	}
}

// conn writes "c=IN IP4|IP6 addr", ended like raw (a new line if "").
func (w *writer) conn(addr netip.Addr, raw string) {
	w.begin()
	w.b = append(w.b, "c=IN "...)
	w.b = append(w.b, addrType(addr)...)
	w.b = append(w.b, ' ')
	w.b = addr.AppendTo(w.b)
	w.end(w.termOf(raw))
}

func (w *writer) mline(m *Media) {
	var portTok string
	if m.mline != "" {
		text, _ := splitTerm(m.mline)
		typ, v := field(trimWS(text[2:]))
		var proto string
		portTok, v = field(v)
		proto, v = field(v)
		if typ == m.Type && proto == m.Proto && sameFormats(v, m.Formats) {
			if port, num, ok := parsePortTok(portTok); ok && port == m.Port && num == m.NumPorts {
				w.raw(m.mline)
				return
			}
		}
	}
	w.begin()
	w.b = append(w.b, "m="...)
	w.b = append(w.b, m.Type...)
	w.b = append(w.b, ' ')
	w.b = strconv.AppendInt(w.b, int64(m.Port), 10)
	// Keep an explicit "/1" if the line had one.
	if m.NumPorts > 1 || strings.IndexByte(portTok, '/') >= 0 {
		w.b = append(w.b, '/')
		w.b = strconv.AppendInt(w.b, int64(max(m.NumPorts, 1)), 10)
	}
	w.b = append(w.b, ' ')
	w.b = append(w.b, m.Proto...)
	for _, f := range m.Formats {
		w.b = append(w.b, ' ')
		w.b = append(w.b, f...)
	}
	w.end(w.termOf(m.mline))
}

// sameFormats compares the fmt list as written with fmts.
func sameFormats(written string, fmts []string) bool {
	for _, f := range fmts {
		var g string
		g, written = field(written)
		if g != f {
			return false
		}
	}
	g, _ := field(written)
	return g == ""
}

func trimWS(s string) string {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
