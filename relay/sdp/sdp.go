// Package sdp parses and rewrites SDP bodies (RFC 8866) for the media relay.
//
// Like rtpengine's sdp.c it edits only the lines it must. Parse keeps every
// line of the input: unknown attributes, their order, odd spacing, blank
// lines and each line's own CRLF or LF ending. AppendMarshal writes each line
// back byte for byte unless the fields it was parsed into have changed, so an
// untouched SDP comes out identical and an edited one differs only in the
// edited lines. Round-tripping through a full SDP model would normalise
// everything the relay does not understand, and peers notice.
//
// What AppendMarshal writes back:
//   - Session.Origin (o=), Session.Conn and Media.Conn (c=), and Media.Type,
//     Port, NumPorts, Proto and Formats (m=): change a field and its line is
//     regenerated. A c= line is added where an address has none (a media
//     gets its own when its Conn differs from the session's), and dropped
//     when its address is set to the zero netip.Addr.
//   - Session.Attrs and Media.Attrs (a=): the slices are the attributes, in
//     order; edit, insert or delete entries freely, or use the methods.
//   - Everything else (v=, s=, t=, b=, k=, i= ...) is copied as written.
//
// Media.RTCPPort, RTCPAddr, RTCPMux and Direction are read-only views of the
// attributes. Parse and this package's setters keep them current; assigning
// them changes nothing on the wire (use SetRTCP or SetAttr).
//
// The input is untrusted. Parse takes one copy of it and every string in the
// result is a slice of that copy, so parsing costs a handful of allocations
// whatever the size. It rejects what would be ambiguous to the relay or to
// the next hop: a second o= or c= in one section, an address that is not an
// IP literal, a bare CR or NUL inside a line (a peer that splits lines on CR
// would see lines we did not).
package sdp

import "net/netip"

// Session is a parsed SDP body. Sessions come from Parse: a zero Session
// has no v=, o= or s= lines to write.
type Session struct {
	Origin Origin     // o= line fields
	Conn   netip.Addr // session-level c= (invalid if none)
	Attrs  []Attr     // session-level a= lines in order
	Media  []*Media

	eol      string     // line ending of the input, used for lines we add
	lines    []line     // session-level lines other than a=, in order
	oLine    int        // 1 + index in lines of the o= line
	cLine    int        // 1 + index in lines of the c= line, 0 if none
	origConn netip.Addr // Conn as parsed
	dir      string     // session-level direction attribute, "" if none
}

// Origin holds the fields of the o= line.
type Origin struct{ Username, SessID, SessVersion, NetType, AddrType, Addr string }

// Media is one m= section.
type Media struct {
	Type      string     // audio, video, ...
	Port      int        // m= port (0 = disabled stream)
	NumPorts  int        // from "port/num", 1 if absent
	Proto     string     // RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, ...
	Formats   []string   // fmt list as written
	Conn      netip.Addr // media-level c= if present, else the session-level one
	RTCPPort  int        // from a=rtcp, else Port+1 (0 when Port is 0 or 65535)
	RTCPAddr  netip.Addr // from a=rtcp if it gives an address, else Conn
	RTCPMux   bool       // a=rtcp-mux present; RTCPPort is still what a=rtcp or Port+1 says
	Direction string     // sendrecv, sendonly, recvonly or inactive, from the media or session level
	Attrs     []Attr     // media-level a= lines in order

	mline    string     // the m= line as written, "" for media built by hand
	lines    []line     // media-level lines other than m= and a=, in order
	cLine    int        // 1 + index in lines of the c= line, 0 if none (as when built by hand)
	origConn netip.Addr // Conn as parsed (inherited from the session if no c=)
	sessDir  string     // session-level direction when last derived
}

// Attr is one a= line: "a=rtpmap:0 PCMU/8000" is Key "rtpmap", Value
// "0 PCMU/8000", HasValue true; "a=sendrecv" is Key "sendrecv". Trailing
// blanks on the line are not part of Value. AppendMarshal writes Key and
// Value as given, so they must not contain CR or LF; values taken from a
// parsed SDP never do.
type Attr struct {
	Key      string
	Value    string
	HasValue bool

	raw string // the line as parsed, terminator included; "" if built by hand
}

// line is a non-attribute line kept verbatim.
type line struct {
	raw string // the line as written, terminator included
	at  int    // how many of the section's attributes precede it
}

// attrSlack is spare capacity left after each section's attributes in the
// shared backing array, so that the usual one or two insertions (a=rtcp,
// a=crypto) do not reallocate.
const attrSlack = 2
