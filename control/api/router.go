package api

import (
	"net/http"
	"strings"

	"github.com/xtrunk/xtrunk/control/store"
)

// route is a path pattern: literal segments and sid parameters written as
// the sid prefix and a star ("TK*" matches TK + 32 hex digits and binds
// p["TK"]). On 2010 routes the last segment may carry ".json"; media
// routes need ".wav".
type route struct {
	tmpl    string // the pattern, the metrics' route label
	segs    []string
	v2010   bool
	media   bool
	methods map[string]handler
}

const (
	get  = http.MethodGet
	post = http.MethodPost
	del  = http.MethodDelete
)

func r1(path string, m map[string]handler) route {
	return route{tmpl: path, segs: strings.Split(strings.TrimPrefix(path, "/"), "/"), methods: m}
}

func r2010(path string, m map[string]handler) route {
	rt := r1("/2010-04-01"+path, m)
	rt.v2010 = true
	return rt
}

func (s *Server) table() []route {
	acls, cls := ipACLs(s.st), credentialLists(s.st)
	return []route{
		r1("/v1/Trunks", map[string]handler{get: s.listTrunks, post: s.createTrunk}),
		r1("/v1/Trunks/TK*", map[string]handler{get: s.fetchTrunk, post: s.updateTrunk, del: s.deleteTrunk}),
		r1("/v1/Trunks/TK*/OriginationUrls", map[string]handler{get: s.listOriginationURLs, post: s.createOriginationURL}),
		r1("/v1/Trunks/TK*/OriginationUrls/OU*", map[string]handler{get: s.fetchOriginationURL, post: s.updateOriginationURL, del: s.deleteOriginationURL}),
		r1("/v1/Trunks/TK*/IpAccessControlLists", map[string]handler{get: acls.listOnTrunkHandler, post: acls.attachHandler}),
		r1("/v1/Trunks/TK*/IpAccessControlLists/AL*", map[string]handler{get: acls.fetchOnTrunkHandler, del: acls.detachHandler}),
		r1("/v1/Trunks/TK*/CredentialLists", map[string]handler{get: cls.listOnTrunkHandler, post: cls.attachHandler}),
		r1("/v1/Trunks/TK*/CredentialLists/CL*", map[string]handler{get: cls.fetchOnTrunkHandler, del: cls.detachHandler}),
		r1("/v1/Trunks/TK*/PhoneNumbers", map[string]handler{get: s.listTrunkNumbers, post: s.associateNumber}),
		r1("/v1/Trunks/TK*/PhoneNumbers/PN*", map[string]handler{get: s.fetchTrunkNumber, del: s.disassociateNumber}),
		r1("/v1/Trunks/TK*/Recording", map[string]handler{get: s.fetchRecordingSettings, post: s.updateRecordingSettings}),

		r2010("/Accounts", map[string]handler{get: s.listAccounts, post: s.createAccount}),
		r2010("/Accounts/AC*", map[string]handler{get: s.fetchAccount, post: s.updateAccount}),
		r2010("/Accounts/AC*/SIP/IpAccessControlLists", map[string]handler{get: acls.listHandler, post: acls.createHandler}),
		r2010("/Accounts/AC*/SIP/IpAccessControlLists/AL*", map[string]handler{get: acls.fetchHandler, post: acls.updateHandler, del: acls.deleteHandler}),
		r2010("/Accounts/AC*/SIP/IpAccessControlLists/AL*/IpAddresses", map[string]handler{get: s.listIPs, post: s.createIP}),
		r2010("/Accounts/AC*/SIP/IpAccessControlLists/AL*/IpAddresses/IP*", map[string]handler{get: s.fetchIP, post: s.updateIP, del: s.deleteIP}),
		r2010("/Accounts/AC*/SIP/CredentialLists", map[string]handler{get: cls.listHandler, post: cls.createHandler}),
		r2010("/Accounts/AC*/SIP/CredentialLists/CL*", map[string]handler{get: cls.fetchHandler, post: cls.updateHandler, del: cls.deleteHandler}),
		r2010("/Accounts/AC*/SIP/CredentialLists/CL*/Credentials", map[string]handler{get: s.listCredentials, post: s.createCredential}),
		r2010("/Accounts/AC*/SIP/CredentialLists/CL*/Credentials/CR*", map[string]handler{get: s.fetchCredential, post: s.updateCredential, del: s.deleteCredential}),
		r2010("/Accounts/AC*/IncomingPhoneNumbers", map[string]handler{get: s.listNumbers, post: s.createNumber}),
		r2010("/Accounts/AC*/IncomingPhoneNumbers/PN*", map[string]handler{get: s.fetchNumber, post: s.updateNumber, del: s.deleteNumber}),
		r2010("/Accounts/AC*/OutgoingCallerIds", map[string]handler{get: s.listCallerIDs, post: s.createCallerID}),
		r2010("/Accounts/AC*/OutgoingCallerIds/PN*", map[string]handler{get: s.fetchCallerID, post: s.updateCallerID, del: s.deleteCallerID}),
		r2010("/Accounts/AC*/Calls", map[string]handler{get: s.listCalls}),
		r2010("/Accounts/AC*/Calls/CA*", map[string]handler{get: s.fetchCall}),
		r2010("/Accounts/AC*/Calls/CA*/Recordings", map[string]handler{get: s.listCallRecordings}),
		r2010("/Accounts/AC*/Recordings", map[string]handler{get: s.listRecordings}),
		r2010("/Accounts/AC*/Recordings/RE*", map[string]handler{get: s.fetchRecording, del: s.deleteRecording}),
		func() route {
			rt := r2010("/Accounts/AC*/Recordings/RE*", map[string]handler{get: s.recordingMedia})
			rt.v2010, rt.media = false, true
			rt.tmpl += ".wav"
			return rt
		}(),
	}
}

func (s *Server) match(path string) (route, map[string]string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	n := len(segs)
	for _, rt := range s.routes {
		if len(rt.segs) != n {
			continue
		}
		last := segs[n-1]
		switch {
		case rt.media:
			if !strings.HasSuffix(last, ".wav") {
				continue
			}
			last = strings.TrimSuffix(last, ".wav")
		case rt.v2010:
			last = strings.TrimSuffix(last, ".json")
		}
		params := map[string]string{}
		ok := true
		for i, pat := range rt.segs {
			seg := segs[i]
			if i == n-1 {
				seg = last
			}
			if strings.HasSuffix(pat, "*") {
				prefix := strings.TrimSuffix(pat, "*")
				if !store.ValidSid(prefix, seg) {
					ok = false
					break
				}
				params[prefix] = seg
			} else if seg != pat {
				ok = false
				break
			}
		}
		if ok {
			return rt, params, true
		}
	}
	return route{}, nil, false
}
