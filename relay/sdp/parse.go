package sdp

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse parses an SDP body. It accepts CRLF or LF line endings (and remembers
// each line's), and requires v=0 first, one o= and an s= before the first m=,
// well-formed m= lines, and a connection address for every m= whose port is
// not 0. It does not require t= or any particular line order.
func Parse(b []byte) (*Session, error) {
	src := string(b) // the one copy; every string below is a slice of it
	if i := strings.IndexByte(src, 0); i >= 0 {
		return nil, fmt.Errorf("%w at line %d: NUL byte", ErrBadLine, strings.Count(src[:i], "\n")+1)
	}
	p := newParser(src)
	for rest := src; rest != ""; {
		var raw string
		raw, rest = cutLine(rest)
		if err := p.line(raw); err != nil {
			return nil, err
		}
	}
	if p.lineNo == 0 {
		return nil, ErrNoVersion
	}
	p.lineNo++ // "before line N" for a missing o= or s= means end of input
	if err := p.sectionEnd(); err != nil {
		return nil, err
	}
	return p.s, nil
}

// parser is Parse's state: the session being built, the backing arrays its
// sections share, and where the current section starts in them.
type parser struct {
	s       *Session
	lines   []line
	attrs   []Attr
	formats []string
	medias  []Media

	cur      *Media // nil while in the session section
	curLine  int    // line number of cur's m= line
	secLines int    // start of the current section in lines
	secAttrs int    // start of the current section in attrs
	haveName bool
	lineNo   int
}

// newParser sizes the shared backing arrays in one cheap pass, so the parse
// proper does not grow slices line by line.
func newParser(src string) parser {
	var nMedia, nAttrs, nLines, nFormats int
	for rest := src; rest != ""; {
		var raw string
		raw, rest = cutLine(rest)
		switch raw[0] {
		case 'a':
			nAttrs++
		case 'm':
			nMedia++
			nFormats += strings.Count(raw, " ")
		default:
			nLines++
		}
	}
	p := parser{
		s:       &Session{eol: "\r\n"},
		lines:   make([]line, 0, nLines),
		attrs:   make([]Attr, 0, nAttrs+attrSlack*(nMedia+1)),
		formats: make([]string, 0, nFormats),
	}
	if nMedia > 0 {
		p.medias = make([]Media, nMedia)
		p.s.Media = make([]*Media, 0, nMedia)
	}
	return p
}

// line parses one line, terminator included.
func (p *parser) line(raw string) error {
	p.lineNo++
	text, term := splitTerm(raw)
	if p.lineNo == 1 {
		if trimWS(text) != "v=0" {
			return ErrNoVersion
		}
		if term != "" {
			p.s.eol = term
		}
	}
	if strings.IndexByte(text, '\r') >= 0 {
		return fmt.Errorf("%w at line %d: CR inside the line", ErrBadLine, p.lineNo)
	}
	if isBlank(text) {
		p.keep(raw)
		return nil
	}
	if len(text) < 2 || text[1] != '=' || text[0] < 'a' || text[0] > 'z' {
		return fmt.Errorf("%w at line %d: not <letter>=<value>", ErrBadLine, p.lineNo)
	}
	value := trimWS(text[2:])

	var err error
	switch text[0] {
	case 'v':
		if p.lineNo != 1 {
			err = fmt.Errorf("%w at line %d: v= again", ErrBadLine, p.lineNo)
		}
	case 'o':
		err = p.origin(value)
	case 's':
		if p.cur != nil {
			err = fmt.Errorf("%w at line %d: s= inside a media section", ErrBadLine, p.lineNo)
		}
		p.haveName = true
	case 'c':
		err = p.conn(value)
	case 'a':
		return p.attr(raw, value)
	case 'm':
		return p.media(raw, value)
	}
	if err != nil {
		return err
	}
	p.keep(raw)
	return nil
}

// keep records a line of the current section that is not an attribute,
// with how many of the section's attributes precede it.
func (p *parser) keep(raw string) {
	p.lines = append(p.lines, line{raw: raw, at: len(p.attrs) - p.secAttrs})
}

// sectionLine is the 1-based index in its section the next kept line gets.
func (p *parser) sectionLine() int { return len(p.lines) - p.secLines + 1 }

func (p *parser) origin(value string) error {
	if p.cur != nil {
		return fmt.Errorf("%w at line %d: o= inside a media section", ErrBadLine, p.lineNo)
	}
	if p.s.oLine > 0 {
		return fmt.Errorf("%w at line %d: second o=", ErrBadOrigin, p.lineNo)
	}
	o, ok := parseOrigin(value)
	if !ok {
		return fmt.Errorf("%w at line %d", ErrBadOrigin, p.lineNo)
	}
	p.s.Origin, p.s.oLine = o, p.sectionLine()
	return nil
}

func (p *parser) conn(value string) error {
	addr, ok := parseConn(value, true)
	if !ok {
		return fmt.Errorf("%w at line %d", ErrBadConnection, p.lineNo)
	}
	if p.cur == nil {
		if p.s.cLine > 0 {
			return fmt.Errorf("%w at line %d: second c=", ErrBadConnection, p.lineNo)
		}
		p.s.Conn, p.s.origConn, p.s.cLine = addr, addr, p.sectionLine()
		return nil
	}
	if p.cur.cLine > 0 {
		return fmt.Errorf("%w at line %d: second c=", ErrBadConnection, p.lineNo)
	}
	p.cur.Conn, p.cur.cLine = addr, p.sectionLine()
	return nil
}

func (p *parser) attr(raw, value string) error {
	k, v, has := splitAttr(value)
	if p.cur != nil && k == "rtcp" {
		if _, _, ok := parseRTCP(v); !ok {
			return fmt.Errorf("%w at line %d", ErrBadRTCP, p.lineNo)
		}
	}
	p.attrs = append(p.attrs, Attr{Key: k, Value: v, HasValue: has, raw: raw})
	return nil
}

// media ends the current section and starts the one of an m= line.
func (p *parser) media(raw, value string) error {
	if err := p.sectionEnd(); err != nil {
		return err
	}
	m := &p.medias[len(p.s.Media)]
	if err := parseMLine(m, value, &p.formats); err != "" {
		return fmt.Errorf("%w at line %d: %s", ErrBadMedia, p.lineNo, err)
	}
	m.mline, m.Conn = raw, p.s.Conn
	p.s.Media = append(p.s.Media, m)
	p.cur, p.curLine = m, p.lineNo
	return nil
}

// sectionEnd closes the current section: it gets its slices of the shared
// arrays and is checked for what it must have.
func (p *parser) sectionEnd() error {
	// The section's attributes keep attrSlack spare slots of the shared
	// array as capacity; the next section starts after them.
	end := min(len(p.attrs)+attrSlack, cap(p.attrs))
	secAttrList := p.attrs[p.secAttrs:len(p.attrs):end]
	secLineList := p.lines[p.secLines:len(p.lines):len(p.lines)]
	p.attrs = p.attrs[:end]
	if p.cur == nil {
		s := p.s
		s.lines, s.Attrs = secLineList, secAttrList
		if s.oLine == 0 {
			return fmt.Errorf("%w (before line %d)", ErrNoOrigin, p.lineNo)
		}
		if !p.haveName {
			return fmt.Errorf("%w (before line %d)", ErrNoSessionName, p.lineNo)
		}
		s.dir = direction(s.Attrs)
	} else {
		cur := p.cur
		cur.lines, cur.Attrs = secLineList, secAttrList
		if cur.Port != 0 && !cur.Conn.IsValid() {
			return fmt.Errorf("%w at line %d", ErrNoConnection, p.curLine)
		}
		cur.origConn = cur.Conn
		cur.derive(p.s.dir)
	}
	p.secLines, p.secAttrs = len(p.lines), len(p.attrs)
	return nil
}

// cutLine splits off the first line, terminator included.
func cutLine(s string) (raw, rest string) {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i+1], s[i+1:]
	}
	return s, ""
}

// splitTerm separates a line from its "\r\n", "\n" or (last line) "".
func splitTerm(raw string) (text, term string) {
	n := len(raw)
	switch {
	case n >= 2 && raw[n-2] == '\r' && raw[n-1] == '\n':
		return raw[:n-2], raw[n-2:]
	case n >= 1 && raw[n-1] == '\n':
		return raw[:n-1], raw[n-1:]
	}
	return raw, ""
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			return false
		}
	}
	return true
}

// field returns the first space-separated token of s and what follows it.
func field(s string) (tok, rest string) {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// atoiMax parses a decimal of at most 10 digits, no sign, not above max.
func atoiMax(s string, max int) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= max
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseOrigin parses "username sess-id sess-version nettype addrtype addr".
// sess-version must be decimal: BumpVersion increments it.
func parseOrigin(v string) (o Origin, ok bool) {
	o.Username, v = field(v)
	o.SessID, v = field(v)
	o.SessVersion, v = field(v)
	o.NetType, v = field(v)
	o.AddrType, v = field(v)
	o.Addr, v = field(v)
	ok = o.Username != "" && o.SessID != "" && isDigits(o.SessVersion) &&
		o.NetType != "" && o.AddrType != "" && o.Addr != "" && strings.Trim(v, " ") == ""
	return o, ok
}

// parseConn parses "IN IP4|IP6 address", with the multicast "/ttl[/n]"
// suffix when suffix is set. The address must be an IP literal of the stated
// family: a relay cannot resolve names on the call-setup path.
func parseConn(v string, suffix bool) (netip.Addr, bool) {
	nt, v := field(v)
	at, v := field(v)
	a, v := field(v)
	if nt != "IN" || strings.Trim(v, " ") != "" {
		return netip.Addr{}, false
	}
	host, sfx, hasSfx := strings.Cut(a, "/")
	if hasSfx {
		max := 1
		if at == "IP4" {
			max = 2
		}
		for i := 0; ; i++ {
			part, more, ok := strings.Cut(sfx, "/")
			if !suffix || i >= max || !isDigits(part) {
				return netip.Addr{}, false
			}
			if !ok {
				break
			}
			sfx = more
		}
	}
	if strings.IndexByte(host, '%') >= 0 { // zones mean nothing to a peer
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	switch {
	case at == "IP4" && ip.Is4(), at == "IP6" && ip.Is6():
		return ip, true
	}
	return netip.Addr{}, false
}

// parseRTCP parses an a=rtcp value (RFC 3605): "port [IN IP4|IP6 addr]".
func parseRTCP(v string) (port int, addr netip.Addr, ok bool) {
	p, rest := field(v)
	port, ok = atoiMax(p, 65535)
	if !ok {
		return 0, netip.Addr{}, false
	}
	if strings.Trim(rest, " ") == "" {
		return port, netip.Addr{}, true
	}
	addr, ok = parseConn(rest, false)
	return port, addr, ok
}

// parseMLine fills m's m= fields from "type port[/num] proto fmt...",
// appending the formats to the shared backing *fmts. It returns why the
// line is bad, or "".
func parseMLine(m *Media, v string, fmts *[]string) string {
	typ, v := field(v)
	portTok, v := field(v)
	proto, v := field(v)
	if typ == "" || portTok == "" || proto == "" {
		return "too few fields"
	}
	port, num, ok := parsePortTok(portTok)
	if !ok {
		return "port out of range"
	}
	start := len(*fmts)
	for {
		var f string
		f, v = field(v)
		if f == "" {
			break
		}
		*fmts = append(*fmts, f)
	}
	if len(*fmts) == start {
		return "no formats"
	}
	m.Type, m.Port, m.NumPorts, m.Proto = typ, port, num, proto
	m.Formats = (*fmts)[start:len(*fmts):len(*fmts)]
	return ""
}

func parsePortTok(tok string) (port, num int, ok bool) {
	p, n, slash := strings.Cut(tok, "/")
	port, ok = atoiMax(p, 65535)
	if !ok {
		return 0, 0, false
	}
	num = 1
	if slash {
		num, ok = atoiMax(n, 65535)
		if !ok || num == 0 {
			return 0, 0, false
		}
	}
	return port, num, true
}

// splitAttr splits the text after "a=" into key and value at the first colon.
func splitAttr(v string) (key, value string, has bool) {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		return v[:i], v[i+1:], true
	}
	return v, "", false
}

func isDirection(key string) bool {
	switch key {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return true
	}
	return false
}

// direction is the first direction attribute, "" if none.
func direction(attrs []Attr) string {
	for i := range attrs {
		if isDirection(attrs[i].Key) {
			return attrs[i].Key
		}
	}
	return ""
}
