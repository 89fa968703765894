package ng

import (
	"strconv"
	"strings"
)

// A "delete" reply carries the call's statistics (per tag, per media, per
// stream), and signalling reads one at the end of every call. Decoding it
// into Dicts first cost a map per dictionary and an interface box per
// value: ~100 allocations a call, 8 % of xtrunk sip's (issue 13). The
// walk below fills a QueryReply straight from the bencode. It accepts and
// refuses exactly what [ParseMessage] does and reads each field as
// [DecodeQueryReply] does (absent or of another type: zero; a repeated key:
// the last one), which FuzzParseQueryMessage checks against the two.

// ParseQueryMessage parses an NG reply to "query" or "delete" ("cookie SP
// bencode") into the reply and its "result" and "error-reason".
func ParseQueryMessage(msg []byte) (q QueryReply, result, reason string, err error) {
	return parseQueryMessage(string(msg))
}

func parseQueryMessage(s string) (q QueryReply, result, reason string, err error) {
	i := strings.IndexByte(s, ' ')
	if i <= 0 {
		return QueryReply{}, "", "", ErrNoCookie
	}
	body := strings.TrimRight(s[i+1:], " \t\r\n")
	d := decoderPool.Get().(*decoder)
	defer d.release()
	d.s, d.pos, d.depth = body, 0, 0
	if d.pos < len(body) && body[0] != 'd' {
		// Any other value: valid bencode is ErrNotDict, as in parseMessage.
		if err := d.skip(); err != nil {
			return QueryReply{}, "", "", err
		}
		if d.pos != len(body) {
			return QueryReply{}, "", "", errAt(ErrTrailing, d.pos)
		}
		return QueryReply{}, "", "", ErrNotDict
	}
	err = d.each(true, func(k string) (err error) {
		switch k {
		case "result":
			result, err = d.strVal()
		case "error-reason":
			reason, err = d.strVal()
		default:
			err = d.queryField(&q, k)
		}
		return err
	})
	if err == nil && d.pos != len(body) {
		err = errAt(ErrTrailing, d.pos)
	}
	if err != nil {
		return QueryReply{}, "", "", err
	}
	return q, result, reason, nil
}

// queryField decodes the value of the reply's key k into q.
func (d *decoder) queryField(q *QueryReply, k string) (err error) {
	switch k {
	case "created":
		q.Created, err = d.intVal()
	case "created_us":
		q.CreatedUs, err = d.intVal()
	case "last signal":
		q.LastSignal, err = d.intVal()
	case "status":
		q.Status, err = d.strVal()
	case "warning":
		q.Warning, err = d.strVal()
	case "timed out":
		var n int64
		n, err = d.intVal()
		q.TimedOut = n != 0
	case "tags":
		q.Tags = nil
		err = d.dictVal(func(tag string) error {
			if q.Tags == nil {
				q.Tags = map[string]Party{}
			}
			var p Party
			err := d.dictVal(func(k string) error { return d.partyField(&p, k) })
			q.Tags[tag] = p
			return err
		})
	case "totals":
		q.Totals = Totals{}
		err = d.dictVal(func(k string) error {
			switch k {
			case "RTP":
				q.Totals.RTP = Counts{}
				return d.dictVal(func(k string) error { return d.countsField(&q.Totals.RTP, k) })
			case "RTCP":
				q.Totals.RTCP = Counts{}
				return d.dictVal(func(k string) error { return d.countsField(&q.Totals.RTCP, k) })
			}
			return d.skip()
		})
	case "recording":
		var r Recording
		err = d.dictVal(func(k string) error { return d.recordingField(&r, k) })
		if r.Error != "" {
			r = Recording{Error: r.Error}
		}
		q.Recording = &r
	default:
		err = d.skip()
	}
	return err
}

func (d *decoder) partyField(p *Party, k string) (err error) {
	switch k {
	case "tag":
		p.Tag, err = d.strVal()
	case "created":
		p.Created, err = d.intVal()
	case "medias":
		p.Medias = nil
		err = d.dictsVal(func() error {
			var m Media
			err := d.dictVal(func(k string) error { return d.mediaField(&m, k) })
			p.Medias = append(p.Medias, m)
			return err
		})
	case "subscriptions":
		p.Subscriptions = nil
		err = d.dictsVal(func() error {
			var s Subscription
			err := d.dictVal(func(k string) (err error) {
				switch k {
				case "tag":
					s.Tag, err = d.strVal()
				case "type":
					s.Type, err = d.strVal()
				default:
					err = d.skip()
				}
				return err
			})
			p.Subscriptions = append(p.Subscriptions, s)
			return err
		})
	default:
		err = d.skip()
	}
	return err
}

func (d *decoder) mediaField(m *Media, k string) (err error) {
	switch k {
	case "index":
		m.Index, err = d.intVal()
	case "type":
		m.Type, err = d.strVal()
	case "protocol":
		m.Protocol, err = d.strVal()
	case "flags":
		m.Flags, err = d.strsVal()
	case "streams":
		m.Streams = nil
		err = d.dictsVal(func() error {
			var s Stream
			err := d.dictVal(func(k string) error { return d.streamField(&s, k) })
			m.Streams = append(m.Streams, s)
			return err
		})
	default:
		err = d.skip()
	}
	return err
}

func (d *decoder) streamField(s *Stream, k string) (err error) {
	switch k {
	case "local port":
		s.LocalPort, err = d.intVal()
	case "local address":
		s.LocalAddress, err = d.strVal()
	case "family":
		s.Family, err = d.strVal()
	case "endpoint":
		s.Endpoint = Endpoint{}
		err = d.dictVal(func(k string) error { return d.endpointField(&s.Endpoint, k) })
	case "advertised endpoint":
		s.AdvertisedEndpoint = Endpoint{}
		err = d.dictVal(func(k string) error { return d.endpointField(&s.AdvertisedEndpoint, k) })
	case "flags":
		s.Flags, err = d.strsVal()
	case "last packet":
		s.LastPacket, err = d.intVal()
	case "SSRC":
		s.SSRC, err = d.intVal()
	case "stats":
		s.Stats = StreamStats{}
		err = d.dictVal(func(k string) error { return d.statsField(&s.Stats, k) })
	default:
		err = d.skip()
	}
	return err
}

func (d *decoder) statsField(st *StreamStats, k string) (err error) {
	switch k {
	case "packets", "bytes", "errors":
		return d.countsField(&st.Counts, k)
	case "drops":
		st.Drops, err = d.intVal()
	case "fast path":
		st.FastPath, err = d.intVal()
	case "userspace":
		st.Userspace, err = d.intVal()
	case "expected":
		st.HasQuality = true
		st.Expected, err = d.intVal()
	case "lost":
		st.HasQuality = true
		st.Lost, err = d.intVal()
	case "jitter":
		st.HasQuality = true
		st.Jitter, err = d.intVal()
	case "jitter us":
		st.HasQuality = true
		st.JitterUs, err = d.intVal()
	default:
		err = d.skip()
	}
	return err
}

func (d *decoder) countsField(c *Counts, k string) (err error) {
	switch k {
	case "packets":
		c.Packets, err = d.intVal()
	case "bytes":
		c.Bytes, err = d.intVal()
	case "errors":
		c.Errors, err = d.intVal()
	default:
		err = d.skip()
	}
	return err
}

func (d *decoder) endpointField(e *Endpoint, k string) (err error) {
	switch k {
	case "family":
		e.Family, err = d.strVal()
	case "address":
		e.Address, err = d.strVal()
	case "port":
		e.Port, err = d.intVal()
	default:
		err = d.skip()
	}
	return err
}

func (d *decoder) recordingField(r *Recording, k string) (err error) {
	switch k {
	case "files":
		r.Files, err = d.strsVal()
	case "metadata":
		r.Metadata, err = d.strVal()
	case "duration ms":
		r.DurationMs, err = d.intVal()
	case "packets lost":
		r.PacketsLost, err = d.intVal()
	case "copies lost":
		r.CopiesLost, err = d.intVal()
	case "channels":
		r.Channels, err = d.strVal()
	case "error":
		r.Error, err = d.strVal()
	default:
		err = d.skip()
	}
	return err
}

// The walk's primitives. Each consumes exactly one value at d.pos and
// validates it as [decoder.value] would, so malformed input fails the
// same way whichever field it is in.

// peek is the first byte of the next value, 0 at the end of the input.
func (d *decoder) peek() byte {
	if d.pos >= len(d.s) {
		return 0
	}
	return d.s[d.pos]
}

// each walks the list or dictionary starting at d.pos (the caller has
// seen its 'l' or 'd'), calling fn for every element, with its key in a
// dictionary; fn must consume the element's value.
func (d *decoder) each(dict bool, fn func(key string) error) error {
	if err := d.enter(); err != nil {
		return err
	}
	for {
		c := d.peek()
		if d.pos >= len(d.s) {
			return errAt(ErrTruncated, d.pos)
		}
		if c == 'e' {
			d.pos++
			break
		}
		var k string
		if dict {
			if !isDigit(c) {
				return errAt(ErrDictKey, d.pos)
			}
			var err error
			if k, err = d.str(); err != nil {
				return err
			}
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	d.depth--
	return nil
}

// skip passes over one value.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case d.pos >= len(d.s):
		return errAt(ErrTruncated, d.pos)
	case isDigit(c):
		_, err := d.str()
		return err
	case c == 'i':
		_, err := d.int()
		return err
	case c == 'l' || c == 'd':
		return d.each(c == 'd', func(string) error { return d.skip() })
	}
	return errAt(ErrInvalidType, d.pos)
}

// intVal reads the value as [Dict.Int] does: an integer, or a decimal
// string; anything else is 0.
func (d *decoder) intVal() (int64, error) {
	switch c := d.peek(); {
	case c == 'i':
		return d.int()
	case isDigit(c):
		s, err := d.str()
		if err != nil {
			return 0, err
		}
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			return 0, nil
		}
		return n, nil
	}
	return 0, d.skip()
}

// strVal reads the value as [Dict.Str] does: a string, or an integer in
// decimal; anything else is "".
func (d *decoder) strVal() (string, error) {
	switch c := d.peek(); {
	case isDigit(c):
		return d.str()
	case c == 'i':
		n, err := d.int()
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(n, 10), nil
	}
	return "", d.skip()
}

// strsVal reads the value as strs does: a string is a list of one; a
// list's strings and integers (in decimal), other elements skipped; nil
// when that leaves none.
func (d *decoder) strsVal() ([]string, error) {
	switch c := d.peek(); {
	case isDigit(c):
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	case c == 'l':
		var out []string
		err := d.each(false, func(string) error {
			switch c := d.peek(); {
			case isDigit(c), c == 'i':
				s, err := d.strVal()
				out = append(out, s)
				return err
			}
			return d.skip()
		})
		return out, err
	}
	return nil, d.skip()
}

// dictVal walks the value's keys with fn if it is a dictionary and
// passes over anything else.
func (d *decoder) dictVal(fn func(key string) error) error {
	if d.peek() == 'd' {
		return d.each(true, fn)
	}
	return d.skip()
}

// dictsVal calls fn for each dictionary in the value if it is a list
// (other elements passed over), and passes over anything else.
func (d *decoder) dictsVal(fn func() error) error {
	if d.peek() != 'l' {
		return d.skip()
	}
	return d.each(false, func(string) error {
		if d.peek() == 'd' {
			return fn()
		}
		return d.skip()
	})
}
