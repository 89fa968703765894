package ng

// Streams calls fn for every stream of a query or delete reply
// (rtpengine's shape: tags → tag → medias → streams), with the tag of
// the party it belongs to. Each party has an RTP and an RTCP stream per
// media; rtcp tells them apart (the stream's flags start with "RTCP").
// Parts of the wrong type are skipped.
func Streams(reply Dict, fn func(tag string, stream Dict, rtcp bool)) {
	for tag, v := range reply.Dict("tags") {
		td, _ := asDict(v)
		for _, m := range td.List("medias") {
			md, _ := asDict(m)
			for _, s := range md.List("streams") {
				sd, ok := asDict(s)
				if !ok {
					continue
				}
				fl := sd.List("flags")
				rtcp := len(fl) > 0 && fl[0] == "RTCP"
				fn(tag, sd, rtcp)
			}
		}
	}
}

func asDict(v any) (Dict, bool) {
	switch d := v.(type) {
	case Dict:
		return d, true
	case map[string]any:
		return d, true
	}
	return nil, false
}
