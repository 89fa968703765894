package ng

// Typed replies. rtpengine answers "query" and "delete" with a call's
// state in one shape (totals, and per tag, per media, per stream the
// counters of what that party sent); QueryReply is that shape, with the
// keys xtrunk's relay adds marked as such. The relay encodes it and
// signalling decodes it, here, in one place.

// QueryReply is the reply to "query", and to "delete" (with Warning or
// Recording). Absent keys decode as zero values.
type QueryReply struct {
	Created    int64  // "created", Unix seconds
	CreatedUs  int64  // "created_us": the microseconds of Created
	LastSignal int64  // "last signal", Unix seconds
	Status     string // "status" (xtrunk: "active", "timed out")
	TimedOut   bool   // "timed out" (xtrunk: no media for the media timeout)
	// Tags are the parties by tag ("(pending)" for a party whose tag is
	// not known yet).
	Tags   map[string]Party
	Totals Totals
	// Warning is "warning": a delete whose tags named no party of the
	// call, which stays.
	Warning string
	// Recording is "recording" (xtrunk): what a delete or "stop
	// recording" ended; nil when none.
	Recording *Recording
}

// Totals are "totals": the call's packets, bytes and errors.
type Totals struct{ RTP, RTCP Counts }

// Counts are "packets", "bytes" and "errors".
type Counts struct{ Packets, Bytes, Errors int64 }

// Party is one entry of "tags".
type Party struct {
	Tag           string
	Created       int64
	Medias        []Media
	Subscriptions []Subscription // "subscriptions"; rtpengine 10's "subscribers" the same
}

// Subscription names the other party of an offer/answer.
type Subscription struct{ Tag, Type string }

// Media is one entry of a party's "medias": one m= line.
type Media struct {
	Index    int64
	Type     string
	Protocol string
	Flags    []string // "RTCP-mux", ...
	Streams  []Stream
}

// Stream is one of a media's "streams": its RTP or its RTCP port.
type Stream struct {
	LocalPort          int64    // "local port"
	LocalAddress       string   // "local address"
	Family             string   // "family": IPv4, IPv6
	Endpoint           Endpoint // "endpoint": where the party's media comes from (or its SDP says)
	AdvertisedEndpoint Endpoint // "advertised endpoint": what its SDP says
	Flags              []string // "RTP" or "RTCP" first, then "confirmed", "filled"
	LastPacket         int64    // "last packet", Unix seconds
	SSRC               int64    // "SSRC"; 0 when none
	Stats              StreamStats
}

// IsRTCP says whether s is a media's RTCP stream.
func (s Stream) IsRTCP() bool { return len(s.Flags) > 0 && s.Flags[0] == "RTCP" }

// Endpoint is a transport address; the zero value encodes as an empty
// dictionary, as rtpengine writes one it does not know.
type Endpoint struct {
	Family  string
	Address string
	Port    int64
}

// StreamStats are a stream's "stats": what the party sent.
type StreamStats struct {
	Counts
	Drops     int64 // xtrunk: "drops"
	FastPath  int64 // xtrunk: "fast path", packets forwarded by XDP
	Userspace int64 // xtrunk: "userspace"
	// Reception quality, when the relay has it ("expected", "lost",
	// "jitter" in ms, "jitter us").
	HasQuality bool
	Expected   int64
	Lost       int64
	Jitter     int64
	JitterUs   int64
}

// Recording is xtrunk's "recording" entry of a delete or "stop
// recording" reply.
type Recording struct {
	Files       []string // "files"
	Metadata    string   // "metadata": the sidecar file
	DurationMs  int64    // "duration ms"
	PacketsLost int64    // "packets lost"
	CopiesLost  int64    // "copies lost"
	Channels    string   // "channels"
	Error       string   // "error": the recording was lost
}

// Dict encodes q, without "result".
func (q QueryReply) Dict() Dict {
	tags := Dict{}
	for k, p := range q.Tags {
		tags[k] = p.dict()
	}
	out := Dict{
		"created":     q.Created,
		"created_us":  q.CreatedUs,
		"last signal": q.LastSignal,
		"tags":        tags,
		"totals":      Dict{"RTP": q.Totals.RTP.dict(), "RTCP": q.Totals.RTCP.dict()},
	}
	putStr(out, "status", q.Status)
	if q.TimedOut {
		out["timed out"] = int64(1)
	}
	putStr(out, "warning", q.Warning)
	if q.Recording != nil {
		out["recording"] = q.Recording.Dict()
	}
	return out
}

func (c Counts) dict() Dict {
	return Dict{"packets": c.Packets, "bytes": c.Bytes, "errors": c.Errors}
}

func (p Party) dict() Dict {
	medias := make([]any, len(p.Medias))
	for i, m := range p.Medias {
		medias[i] = m.dict()
	}
	subs := make([]any, len(p.Subscriptions))
	for i, s := range p.Subscriptions {
		subs[i] = Dict{"tag": s.Tag, "type": s.Type}
	}
	return Dict{"tag": p.Tag, "created": p.Created, "medias": medias, "subscriptions": subs, "subscribers": subs}
}

func (m Media) dict() Dict {
	streams := make([]any, len(m.Streams))
	for i, s := range m.Streams {
		streams[i] = s.dict()
	}
	return Dict{"index": m.Index, "type": m.Type, "protocol": m.Protocol, "streams": streams, "flags": anyList(m.Flags)}
}

func (s Stream) dict() Dict {
	st := s.Stats
	stats := Dict{"packets": st.Packets, "bytes": st.Bytes, "errors": st.Errors,
		"drops": st.Drops, "fast path": st.FastPath, "userspace": st.Userspace}
	if st.HasQuality {
		stats["expected"], stats["lost"], stats["jitter"], stats["jitter us"] = st.Expected, st.Lost, st.Jitter, st.JitterUs
	}
	d := Dict{
		"local port":          s.LocalPort,
		"local address":       s.LocalAddress,
		"family":              s.Family,
		"endpoint":            s.Endpoint.dict(),
		"advertised endpoint": s.AdvertisedEndpoint.dict(),
		"flags":               anyList(s.Flags),
		"last packet":         s.LastPacket,
		"stats":               stats,
	}
	if s.SSRC != 0 {
		d["SSRC"] = s.SSRC
	}
	return d
}

func (e Endpoint) dict() Dict {
	if e == (Endpoint{}) {
		return Dict{}
	}
	return Dict{"family": e.Family, "address": e.Address, "port": e.Port}
}

// Dict encodes r.
func (r Recording) Dict() Dict {
	if r.Error != "" {
		return Dict{"error": r.Error}
	}
	return Dict{
		"files":        anyList(r.Files),
		"metadata":     r.Metadata,
		"duration ms":  r.DurationMs,
		"packets lost": r.PacketsLost,
		"copies lost":  r.CopiesLost,
		"channels":     r.Channels,
	}
}

// DecodeQueryReply reads a "query" or "delete" reply, rtpengine's or
// xtrunk's. What is missing or of another type reads as zero: a reply is
// information, not a request to refuse.
func DecodeQueryReply(d Dict) QueryReply {
	q := QueryReply{
		Created:    intOf(d, "created"),
		CreatedUs:  intOf(d, "created_us"),
		LastSignal: intOf(d, "last signal"),
		Status:     d.Str("status"),
		TimedOut:   intOf(d, "timed out") != 0,
		Warning:    d.Str("warning"),
	}
	if tags := d.Dict("tags"); len(tags) > 0 {
		q.Tags = make(map[string]Party, len(tags))
		for k := range tags {
			q.Tags[k] = decodeParty(tags.Dict(k))
		}
	}
	t := d.Dict("totals")
	q.Totals = Totals{RTP: decodeCounts(t.Dict("RTP")), RTCP: decodeCounts(t.Dict("RTCP"))}
	if _, ok := d["recording"]; ok {
		r := DecodeRecording(d.Dict("recording"))
		q.Recording = &r
	}
	return q
}

func decodeCounts(d Dict) Counts {
	return Counts{Packets: intOf(d, "packets"), Bytes: intOf(d, "bytes"), Errors: intOf(d, "errors")}
}

func decodeParty(d Dict) Party {
	p := Party{Tag: d.Str("tag"), Created: intOf(d, "created")}
	for _, m := range dicts(d, "medias") {
		md := Media{Index: intOf(m, "index"), Type: m.Str("type"), Protocol: m.Str("protocol"), Flags: strs(m, "flags")}
		for _, s := range dicts(m, "streams") {
			md.Streams = append(md.Streams, decodeStream(s))
		}
		p.Medias = append(p.Medias, md)
	}
	for _, s := range dicts(d, "subscriptions") {
		p.Subscriptions = append(p.Subscriptions, Subscription{Tag: s.Str("tag"), Type: s.Str("type")})
	}
	return p
}

func decodeStream(d Dict) Stream {
	s := Stream{
		LocalPort:          intOf(d, "local port"),
		LocalAddress:       d.Str("local address"),
		Family:             d.Str("family"),
		Endpoint:           decodeEndpoint(d.Dict("endpoint")),
		AdvertisedEndpoint: decodeEndpoint(d.Dict("advertised endpoint")),
		Flags:              strs(d, "flags"),
		LastPacket:         intOf(d, "last packet"),
		SSRC:               intOf(d, "SSRC"),
	}
	st := d.Dict("stats")
	s.Stats = StreamStats{Counts: decodeCounts(st), Drops: intOf(st, "drops"),
		FastPath: intOf(st, "fast path"), Userspace: intOf(st, "userspace")}
	for _, k := range []string{"expected", "lost", "jitter", "jitter us"} {
		if _, ok := st[k]; ok {
			s.Stats.HasQuality = true
		}
	}
	if s.Stats.HasQuality {
		s.Stats.Expected, s.Stats.Lost = intOf(st, "expected"), intOf(st, "lost")
		s.Stats.Jitter, s.Stats.JitterUs = intOf(st, "jitter"), intOf(st, "jitter us")
	}
	return s
}

func decodeEndpoint(d Dict) Endpoint {
	return Endpoint{Family: d.Str("family"), Address: d.Str("address"), Port: intOf(d, "port")}
}

// DecodeRecording reads a "recording" entry.
func DecodeRecording(d Dict) Recording {
	if e := d.Str("error"); e != "" {
		return Recording{Error: e}
	}
	return Recording{
		Files:       strs(d, "files"),
		Metadata:    d.Str("metadata"),
		DurationMs:  intOf(d, "duration ms"),
		PacketsLost: intOf(d, "packets lost"),
		CopiesLost:  intOf(d, "copies lost"),
		Channels:    d.Str("channels"),
	}
}

// ListReply is the reply to "list": the calls' IDs.
type ListReply struct {
	Calls    []string // "calls"
	TimedOut []string // xtrunk: "timed out", which of Calls have no media
}

// Dict encodes l, without "result".
func (l ListReply) Dict() Dict {
	out := Dict{"calls": anyList(l.Calls)}
	if len(l.TimedOut) > 0 {
		out["timed out"] = anyList(l.TimedOut)
	}
	return out
}

// DecodeListReply reads a "list" reply.
func DecodeListReply(d Dict) ListReply {
	return ListReply{Calls: strs(d, "calls"), TimedOut: strs(d, "timed out")}
}

// intOf is the integer at key, 0 when absent or not a number.
func intOf(d Dict, key string) int64 {
	n, _ := d.Int(key)
	return n
}

// strs are the strings in the list at key; nil when there are none, so
// that an absent list and an empty one read the same.
func strs(d Dict, key string) []string {
	if l := d.Strings(key); len(l) > 0 {
		return l
	}
	return nil
}

// dicts are the dictionaries in the list at key.
func dicts(d Dict, key string) []Dict {
	var out []Dict
	for _, v := range d.List(key) {
		if e, ok := v.(Dict); ok {
			out = append(out, e)
		}
	}
	return out
}

func anyList(vs []string) []any {
	l := make([]any, len(vs))
	for i, v := range vs {
		l[i] = v
	}
	return l
}
