package sdp

import "slices"

// The attribute helpers below are shared by the session and media sections.
// Each section keeps its non-attribute lines with the number of attributes
// that precede them, so inserting or removing attributes must move those
// counts to keep every other line where it was.

func attrValue(attrs []Attr, key string) (string, bool) {
	for i := range attrs {
		if attrs[i].Key == key {
			return attrs[i].Value, true
		}
	}
	return "", false
}

func attrValues(attrs []Attr, key string) []string {
	var vs []string
	for i := range attrs {
		if attrs[i].Key == key {
			vs = append(vs, attrs[i].Value)
		}
	}
	return vs
}

// setAttr replaces the value of the first key attribute, or appends one.
func setAttr(attrs []Attr, key, value string) []Attr {
	for i := range attrs {
		if attrs[i].Key == key {
			attrs[i].Value, attrs[i].HasValue = value, value != ""
			return attrs
		}
	}
	return append(attrs, Attr{Key: key, Value: value, HasValue: value != ""})
}

// insertAttr puts a at index i, after the attribute before it and before
// any other line that followed that attribute. At the end it simply
// appends, after any trailing non-attribute line.
func insertAttr(attrs []Attr, lines []line, i int, a Attr) []Attr {
	if i >= len(attrs) {
		return append(attrs, a)
	}
	for k := range lines {
		if lines[k].at >= i {
			lines[k].at++
		}
	}
	return slices.Insert(attrs, i, a)
}

// removeAttrs deletes, in place, every attribute whose key matches.
func removeAttrs(attrs []Attr, lines []line, match func(key string) bool) ([]Attr, int) {
	removed, li := 0, 0
	for i := range attrs {
		for li < len(lines) && lines[li].at <= i {
			lines[li].at -= removed
			li++
		}
		if match(attrs[i].Key) {
			removed++
			continue
		}
		attrs[i-removed] = attrs[i]
	}
	if removed == 0 {
		return attrs, 0
	}
	for ; li < len(lines); li++ {
		lines[li].at -= removed
	}
	clear(attrs[len(attrs)-removed:])
	return attrs[:len(attrs)-removed], removed
}

// isICE reports the ICE attributes (RFC 8839) that must go when the relay
// takes the media path over: left in, they would send the peer's
// connectivity checks around the relay.
func isICE(key string) bool {
	switch key {
	case "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch", "ice-pacing",
		"candidate", "end-of-candidates", "remote-candidates":
		return true
	}
	return false
}

// Attr returns the value of the first session-level attribute key.
func (s *Session) Attr(key string) (string, bool) { return attrValue(s.Attrs, key) }

// AttrValues returns the values of every session-level attribute key.
func (s *Session) AttrValues(key string) []string { return attrValues(s.Attrs, key) }

// SetAttr replaces the first session-level attribute key in place, or
// appends one. An empty value writes a flag ("a=key").
func (s *Session) SetAttr(key, value string) {
	s.Attrs = setAttr(s.Attrs, key, value)
	s.rederive()
}

// AddAttr appends a session-level attribute; an empty value writes "a=key".
func (s *Session) AddAttr(key, value string) {
	s.Attrs = append(s.Attrs, Attr{Key: key, Value: value, HasValue: value != ""})
	s.rederive()
}

// RemoveAttrs removes every session-level attribute key and returns how many.
func (s *Session) RemoveAttrs(key string) int {
	var n int
	s.Attrs, n = removeAttrs(s.Attrs, s.lines, func(k string) bool { return k == key })
	if n > 0 {
		s.rederive()
	}
	return n
}

// RemoveICE removes the session-level ICE attributes (ice-ufrag, ice-pwd,
// ice-options, ice-lite, ...) and returns how many. The media-level ones
// are removed by the function RemoveICE.
func (s *Session) RemoveICE() int {
	var n int
	s.Attrs, n = removeAttrs(s.Attrs, s.lines, isICE)
	return n
}

// rederive refreshes the media views that depend on session attributes.
func (s *Session) rederive() {
	s.dir = direction(s.Attrs)
	for _, m := range s.Media {
		m.derive(s.dir)
	}
}

// Attr returns the value of the first attribute key.
func (m *Media) Attr(key string) (string, bool) { return attrValue(m.Attrs, key) }

// AttrValues returns the values of every attribute key, in order.
func (m *Media) AttrValues(key string) []string { return attrValues(m.Attrs, key) }

// SetAttr replaces the first attribute key in place, or appends one. An
// empty value writes a flag ("a=key").
func (m *Media) SetAttr(key, value string) {
	m.Attrs = setAttr(m.Attrs, key, value)
	m.derive(m.sessDir)
}

// AddAttr appends an attribute; an empty value writes a flag ("a=key").
func (m *Media) AddAttr(key, value string) {
	m.Attrs = append(m.Attrs, Attr{Key: key, Value: value, HasValue: value != ""})
	m.derive(m.sessDir)
}

// RemoveAttrs removes every attribute key and returns how many.
func (m *Media) RemoveAttrs(key string) int {
	var n int
	m.Attrs, n = removeAttrs(m.Attrs, m.lines, func(k string) bool { return k == key })
	if n > 0 {
		m.derive(m.sessDir)
	}
	return n
}

// RemoveICE removes m's ICE attributes (ice-ufrag, ice-pwd, ice-options,
// ice-lite, ice-mismatch, ice-pacing, candidate, end-of-candidates,
// remote-candidates) and returns how many.
func RemoveICE(m *Media) int {
	var n int
	m.Attrs, n = removeAttrs(m.Attrs, m.lines, isICE)
	return n
}
