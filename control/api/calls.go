package api

import (
	"errors"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/xtrunk/xtrunk/control/store"
)

// 2010-04-01: Calls (CDRs, read-only) and Recordings (+ WAV media).

type callJSON struct {
	Sid             string            `json:"sid"`
	DateCreated     string            `json:"date_created"`
	DateUpdated     string            `json:"date_updated"`
	ParentCallSid   *string           `json:"parent_call_sid"`
	AccountSid      string            `json:"account_sid"`
	To              string            `json:"to"`
	ToFormatted     string            `json:"to_formatted"`
	From            string            `json:"from"`
	FromFormatted   string            `json:"from_formatted"`
	PhoneNumberSid  *string           `json:"phone_number_sid"`
	Status          string            `json:"status"`
	StartTime       *string           `json:"start_time"`
	EndTime         *string           `json:"end_time"`
	Duration        string            `json:"duration"`
	Price           *string           `json:"price"`
	PriceUnit       string            `json:"price_unit"`
	Direction       string            `json:"direction"`
	AnsweredBy      *string           `json:"answered_by"`
	APIVersion      string            `json:"api_version"`
	ForwardedFrom   *string           `json:"forwarded_from"`
	GroupSid        *string           `json:"group_sid"`
	CallerName      *string           `json:"caller_name"`
	QueueTime       string            `json:"queue_time"`
	TrunkSid        *string           `json:"trunk_sid"`
	URI             string            `json:"uri"`
	SubresourceURIs map[string]string `json:"subresource_uris"`

	// xtrunk's CDR fields (Twilio's clients ignore them).
	AnswerTime      *string               `json:"answer_time"`
	SIPResponseCode int                   `json:"sip_response_code"`
	HangupCause     *string               `json:"hangup_cause"`
	Edge            *string               `json:"edge"`
	MediaQuality    []store.LegQuality    `json:"media_quality"`
	Quality         map[string]legQuality `json:"quality"` // by leg: customer, carrier
	RedirectedTo    *string               `json:"redirected_to"`
	EdgeNote        *string               `json:"edge_note"`
}

func call(c store.Call) callJSON {
	u := acctURI(c.AccountSid) + "/Calls/" + c.Sid
	q := c.Quality
	if q == nil {
		q = []store.LegQuality{}
	}
	return callJSON{
		Sid: c.Sid, DateCreated: rfc2822(c.Created), DateUpdated: rfc2822(c.Updated), ParentCallSid: nz(c.ParentCallSid),
		AccountSid: c.AccountSid, To: c.To, ToFormatted: c.To, From: c.From, FromFormatted: c.From, PhoneNumberSid: nz(c.PhoneNumberSid),
		Status: c.Status, StartTime: rfc2822p(c.Start), EndTime: rfc2822p(c.End), Duration: strconv.Itoa(c.Duration),
		PriceUnit: "USD", Direction: c.Direction, APIVersion: apiVersion, ForwardedFrom: nz(c.ForwardedFrom),
		CallerName: nz(c.CallerName), QueueTime: "0", TrunkSid: nz(c.TrunkSid), URI: u + ".json",
		SubresourceURIs: map[string]string{"recordings": u + "/Recordings.json"},
		AnswerTime:      rfc2822p(c.Answer), SIPResponseCode: c.SIPResponseCode, HangupCause: nz(c.HangupCause), Edge: nz(c.Edge),
		MediaQuality: q, Quality: quality(q), RedirectedTo: nz(c.RedirectedTo), EdgeNote: nz(c.EdgeNote),
	}
}

// legQuality is one leg's media as the Call resource's "quality" shows
// it: so far on a live call (sip refreshes its row every few seconds),
// final on a CDR.
type legQuality struct {
	Packets     uint64  `json:"packets"` // received from the leg
	PacketsLost int64   `json:"packets_lost"`
	LossPct     float64 `json:"loss_pct"` // lost over expected (received + lost)
	JitterMs    float64 `json:"jitter_ms"`
	MOS         float64 `json:"mos"` // ITU-T G.107 E-model estimate; 0 when not computed
}

func quality(legs []store.LegQuality) map[string]legQuality {
	out := make(map[string]legQuality, len(legs))
	for _, l := range legs {
		lost := max(l.PacketsLost, 0)
		pct := 0.0
		if exp := float64(l.PacketsReceived) + float64(lost); exp > 0 {
			pct = math.Round(100*100*float64(lost)/exp) / 100
		}
		out[l.Leg] = legQuality{Packets: l.PacketsReceived, PacketsLost: l.PacketsLost, LossPct: pct,
			JitterMs: l.JitterMs, MOS: math.Round(100*l.MOS) / 100}
	}
	return out
}

func (s *Server) fetchCall(w http.ResponseWriter, r *request) error {
	c, err := s.st.Call(r.ctx, r.account, r.p["CA"])
	return writeResult(w, http.StatusOK, call, c, err)
}

func (s *Server) listCalls(w http.ResponseWriter, r *request) error {
	var f store.CallFilter
	r.form.setStr(&f.To, "To", 64)
	r.form.setStr(&f.From, "From", 64)
	r.form.setStr(&f.Status, "Status", 32)
	r.form.setStr(&f.TrunkSid, "TrunkSid", 64)
	return listPage(w, r, "calls", filters("To", f.To, "From", f.From, "Status", f.Status, "TrunkSid", f.TrunkSid), func(p store.Page) ([]store.Call, string, error) {
		return s.st.ListCalls(r.ctx, r.account, f, p)
	}, call)
}

type recordingMetaJSON struct {
	AccountSid        string            `json:"account_sid"`
	APIVersion        string            `json:"api_version"`
	CallSid           string            `json:"call_sid"`
	ConferenceSid     *string           `json:"conference_sid"`
	DateCreated       string            `json:"date_created"`
	DateUpdated       string            `json:"date_updated"`
	StartTime         *string           `json:"start_time"`
	Duration          string            `json:"duration"`
	Sid               string            `json:"sid"`
	Price             *string           `json:"price"`
	PriceUnit         string            `json:"price_unit"`
	Status            string            `json:"status"`
	Channels          int               `json:"channels"`
	Source            string            `json:"source"`
	ErrorCode         *int              `json:"error_code"`
	URI               string            `json:"uri"`
	EncryptionDetails any               `json:"encryption_details"`
	SubresourceURIs   map[string]string `json:"subresource_uris"`
	MediaURL          string            `json:"media_url"`
	TrunkSid          *string           `json:"trunk_sid"` // xtrunk
}

func (r *request) recording(x store.Recording) recordingMetaJSON {
	u := acctURI(x.AccountSid) + "/Recordings/" + x.Sid
	return recordingMetaJSON{AccountSid: x.AccountSid, APIVersion: apiVersion, CallSid: x.CallSid, DateCreated: rfc2822(x.Created),
		DateUpdated: rfc2822(x.Updated), StartTime: rfc2822p(x.Start), Duration: strconv.Itoa(x.Duration), Sid: x.Sid,
		PriceUnit: "USD", Status: x.Status, Channels: x.Channels, Source: x.Source, URI: u + ".json",
		SubresourceURIs: map[string]string{"add_on_results": u + "/AddOnResults.json", "transcriptions": u + "/Transcriptions.json"},
		MediaURL:        r.base + u, TrunkSid: nz(x.TrunkSid)}
}

func (s *Server) fetchRecording(w http.ResponseWriter, r *request) error {
	x, err := s.st.Recording(r.ctx, r.account, r.p["RE"])
	return writeResult(w, http.StatusOK, r.recording, x, err)
}

func (s *Server) deleteRecording(w http.ResponseWriter, r *request) error {
	x, err := s.st.DeleteRecording(r.ctx, r.account, r.p["RE"])
	if err != nil {
		return err
	}
	if path, ok := s.recordingPath(x); ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn().Err(err).Str("recording", x.Sid).Msg("recording deleted but its media file stays")
		}
	} else if x.MediaFile != "" {
		s.log.Warn().Str("recording", x.Sid).Str("media_file", x.MediaFile).Msg("recording deleted; its stored file name is not a recording's name and was not touched")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listRecordings(w http.ResponseWriter, r *request) error {
	var callSid string
	r.form.setStr(&callSid, "CallSid", 64)
	return s.recordings(w, r, callSid)
}

func (s *Server) listCallRecordings(w http.ResponseWriter, r *request) error {
	if _, err := s.st.Call(r.ctx, r.account, r.p["CA"]); err != nil {
		return err
	}
	return s.recordings(w, r, r.p["CA"])
}

func (s *Server) recordings(w http.ResponseWriter, r *request, callSid string) error {
	f := filters("CallSid", callSid)
	if r.p["CA"] != "" {
		f = nil
	}
	return listPage(w, r, "recordings", f, func(p store.Page) ([]store.Recording, string, error) {
		return s.st.ListRecordings(r.ctx, r.account, callSid, p)
	}, r.recording)
}

// DefaultRecordingDir is where `xtrunk relay` writes recordings by
// default (its --recording-dir).
const DefaultRecordingDir = "/var/lib/xtrunk/recordings"

// WithRecordingDir sets the directory recordings' files are served from
// (the relay's --recording-dir).
func WithRecordingDir(dir string) Option { return func(s *Server) { s.recordingDir = dir } }

// recordingPath is the file of recording x: its stored name in the
// recording directory, and only when the name is a recording's name (no
// '/', no "..": a row written by an older xtrunk holds the path the relay
// replied with, and that is never opened).
func (s *Server) recordingPath(x store.Recording) (string, bool) {
	if s.recordingDir == "" || !store.ValidRecordingFile(x.MediaFile) {
		return "", false
	}
	return filepath.Join(s.recordingDir, x.MediaFile), true
}

// recordingMedia serves the WAV the relay wrote (Range requests work).
func (s *Server) recordingMedia(w http.ResponseWriter, r *request) error {
	x, err := s.st.Recording(r.ctx, r.account, r.p["RE"])
	if err != nil {
		return err
	}
	path, ok := s.recordingPath(x)
	if !ok {
		return notFound(r.URL.Path)
	}
	// O_NOFOLLOW: a symlink planted in the directory does not lead out.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			return notFound(r.URL.Path)
		}
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return notFound(r.URL.Path)
	}
	w.Header().Set("Content-Type", "audio/x-wav")
	http.ServeContent(w, r.Request, x.Sid+".wav", st.ModTime(), f)
	return nil
}
