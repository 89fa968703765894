package sdp

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// derive refreshes the views computed from the attributes, Port and Conn.
func (m *Media) derive(sessDir string) {
	m.sessDir = sessDir
	m.RTCPPort, m.RTCPAddr, m.RTCPMux = 0, m.Conn, false
	if m.Port > 0 && m.Port < 65535 {
		m.RTCPPort = m.Port + 1
	}
	dir, haveRTCP := "", false
	for i := range m.Attrs {
		a := &m.Attrs[i]
		switch a.Key {
		case "rtcp":
			if haveRTCP {
				break
			}
			// A value set by hand that does not parse is ignored here; Parse
			// rejects one on the wire.
			if port, addr, ok := parseRTCP(a.Value); ok {
				haveRTCP, m.RTCPPort = true, port
				if addr.IsValid() {
					m.RTCPAddr = addr
				}
			}
		case "rtcp-mux":
			m.RTCPMux = true
		case "sendrecv", "sendonly", "recvonly", "inactive":
			if dir == "" {
				dir = a.Key
			}
		}
	}
	switch {
	case dir != "":
		m.Direction = dir
	case sessDir != "":
		m.Direction = sessDir
	default:
		m.Direction = "sendrecv"
	}
}

// IsRTP reports whether the transport carries RTP (RTP/AVP, RTP/SAVPF,
// UDP/TLS/RTP/SAVP, ...), so that the formats are payload types.
func (m *Media) IsRTP() bool { return strings.Contains(m.Proto, "RTP/") }

// PayloadTypes returns the numeric formats (0..127) of RTP media, skipping
// any other; nil for non-RTP media.
func (m *Media) PayloadTypes() []uint8 { return m.AppendPayloadTypes(nil) }

// AppendPayloadTypes is PayloadTypes appending to dst.
func (m *Media) AppendPayloadTypes(dst []uint8) []uint8 {
	if !m.IsRTP() {
		return dst
	}
	for _, f := range m.Formats {
		if len(f) <= 3 {
			if pt, ok := atoiMax(f, 127); ok {
				dst = append(dst, uint8(pt))
			}
		}
	}
	return dst
}

// SetPort sets the m= port (0 disables the stream).
func (m *Media) SetPort(port int) {
	m.Port = port
	m.derive(m.sessDir)
}

// SetProto sets the m= transport protocol.
func (m *Media) SetProto(proto string) { m.Proto = proto }

// SetRTCP rewrites the first a=rtcp to "PORT IN IP4|IP6 ADDR" (just "PORT"
// if addr is not valid), or adds one after the last rtcp-related attribute
// (rtcp-mux, rtcp-fb, ...) or, if there is none, at the end.
func (m *Media) SetRTCP(port int, addr netip.Addr) {
	var buf [64]byte
	b := strconv.AppendInt(buf[:0], int64(port), 10)
	if addr = addr.Unmap().WithZone(""); addr.IsValid() {
		b = append(b, " IN "...)
		b = append(b, addrType(addr)...)
		b = append(b, ' ')
		b = addr.AppendTo(b)
	}
	v := string(b)
	for i := range m.Attrs {
		if m.Attrs[i].Key == "rtcp" {
			m.Attrs[i].Value, m.Attrs[i].HasValue = v, true
			m.derive(m.sessDir)
			return
		}
	}
	at := len(m.Attrs)
	for i := len(m.Attrs) - 1; i >= 0; i-- {
		if strings.HasPrefix(m.Attrs[i].Key, "rtcp") {
			at = i + 1
			break
		}
	}
	m.Attrs = insertAttr(m.Attrs, m.lines, at, Attr{Key: "rtcp", Value: v, HasValue: true})
	m.derive(m.sessDir)
}

// Cryptos parses every a=crypto of m. It returns the ones that parse and
// the first error, if any, so that an answerer can still pick a good line
// from an offer that also carries a bad one.
func (m *Media) Cryptos() ([]Crypto, error) {
	var (
		out   []Crypto
		first error
	)
	for i := range m.Attrs {
		if m.Attrs[i].Key != "crypto" {
			continue
		}
		c, err := ParseCrypto(m.Attrs[i].Value)
		if err == nil {
			for _, o := range out {
				if o.Tag == c.Tag {
					err = ErrDuplicateCrypto
					break
				}
			}
		}
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		out = append(out, c)
	}
	return out, first
}

// SSRCs returns the distinct SSRCs of m's a=ssrc lines (RFC 5576), in
// order, at most max of them; lines that do not parse are skipped.
func (m *Media) SSRCs(max int) []uint32 {
	var out []uint32
	for i := range m.Attrs {
		if m.Attrs[i].Key != "ssrc" || len(out) >= max {
			continue
		}
		id, _ := field(m.Attrs[i].Value)
		n, err := strconv.ParseUint(id, 10, 32)
		if err != nil || slices.Contains(out, uint32(n)) {
			continue
		}
		out = append(out, uint32(n))
	}
	return out
}

func addrType(a netip.Addr) string {
	if a.Is4() {
		return "IP4"
	}
	return "IP6"
}
