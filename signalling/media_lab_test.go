package signalling

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// Calls in progress and media (REQUIREMENTS §4–5) with SIPp at both ends:
// early media (183 with SDP, media before the answer) both ways, re-INVITE
// glare (491) and an offerless re-INVITE, INFO relayed both ways — against
// xtrunk's relay and rtpengine — and recording per trunk mode through the
// API, WAV checked, against xtrunk's relay only (rtpengine records
// differently).
func TestMediaLab(t *testing.T) {
	for _, kind := range relayKinds {
		t.Run(kind, func(t *testing.T) {
			l := newTrunkLab(t, kind)
			t.Run("termination early media", func(t *testing.T) { t.Parallel(); l.terminationEarlyMedia(t) })
			t.Run("origination early media", func(t *testing.T) { t.Parallel(); l.originationEarlyMedia(t) })
			t.Run("re-INVITE glare and offerless re-INVITE", func(t *testing.T) { t.Parallel(); l.reinviteGlare(t) })
			t.Run("INFO both ways", func(t *testing.T) { t.Parallel(); l.info(t) })
			if kind != relayXtrunk {
				return
			}
			t.Run("recording from ringing, dual", func(t *testing.T) {
				t.Parallel()
				l.recording(t, "record-from-ringing-dual", 2, 5*time.Second)
			})
			t.Run("recording from answer, mono", func(t *testing.T) {
				t.Parallel()
				l.recording(t, "record-from-answer", 1, 3*time.Second)
			})
		})
	}
}

// earlyMediaMin is how many RTP packets each party must have sent through
// the relay before the answer: the UAS plays the pcap (33 packets a
// second, sound from 0.5 s) for 2 s before its 200, and the UAC echoes
// what reaches it.
const earlyMediaMin = 20

// terminationEarlyMedia: the carrier answers 183 with SDP and plays the
// pcap at once, 200 two seconds later; the PBX must get a 183 with the
// relay's customer side in its SDP, and the early media must reach it
// (its echo comes back through the relay) before the answer.
func (l *trunkLab) terminationEarlyMedia(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, "early-carrier", "uas_early.xml", tri.CalleeIP, carrierPort, l.port(), "-m", "1")
	called := l.number()
	s := l.seriesMedia(t, "early-term-1@lab")
	uac := l.startSIPp(t, tri.Caller, "early-pbx", "uac_pbx_early.xml", tri.CallerIP, l.port(), l.port(),
		append([]string{"-cid_str", "early-term-%u@lab", "-rtp_echo", "-d", "1500"}, pbxArgsTo(called, labTrunkHost, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
	s.checkEarly(t, c.Answer, "pbx-", "uas-")
	l.checkMedia(t, "termination with early media", s.stop(), 30)
}

// originationEarlyMedia is terminationEarlyMedia the other way: the
// customer's URI plays early media to the carrier.
func (l *trunkLab) originationEarlyMedia(t *testing.T) {
	tri := l.tri
	custPort := l.port()
	did := l.originationTrunk(t, "early", origURL{l.customerURI(custPort), 10, 10})
	sipAddr := l.startSIP(t, sipOpts{})
	uas := l.startUAS(t, tri.Caller, "early-customer", "uas_early.xml", tri.CallerIP, custPort, l.port(), "-m", "1")
	s := l.seriesMedia(t, "early-orig-1@lab")
	uac := l.startSIPp(t, tri.Callee, "early-orig-carrier", "uac_carrier_early.xml", tri.CalleeIP, l.port(), l.port(),
		append([]string{"-cid_str", "early-orig-%u@lab", "-rtp_echo", "-d", "1500"}, carrierArgs(did, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, did, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: labCarrierFrom, to: did, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
	s.checkEarly(t, c.Answer, "carrier-", "uas-")
	l.checkMedia(t, "origination with early media", s.stop(), 30)
}

// reinviteGlare: the carrier sends a re-INVITE while the PBX's is in
// progress (it has the PBX's in hand, unanswered): xtrunk answers it 491,
// the PBX's still succeeds, the carrier's retry succeeds; then the PBX's
// offerless re-INVITE gets a 200 with the relay's SDP toward the PBX (the
// same media address as before), and the call goes on until the PBX's
// BYE. The SIPp scenarios check the order and the statuses; the
// message traces are checked here.
func (l *trunkLab) reinviteGlare(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, "glare-carrier", "uas_carrier_glare.xml", tri.CalleeIP, carrierPort, l.port(), "-rtp_echo", "-m", "1")
	called := l.number()
	s := l.seriesMedia(t, "glare-1@lab")
	uac := l.startSIPp(t, tri.Caller, "glare-pbx", "uac_pbx_glare.xml", tri.CallerIP, l.port(), l.port(),
		append([]string{"-cid_str", "glare-%u@lab"}, pbxArgsTo(called, labTrunkHost, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, called, 1)[0], cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})

	// The carrier's glaring re-INVITE got 491, its retry 200; the PBX's,
	// in progress at the glare, 200.
	carrier, pbx := uas.messages(t), uac.messages(t)
	if r := carrier.response("INVITE", 101); r == nil || r.status() != 491 {
		t.Errorf("the carrier's glaring re-INVITE (CSeq 101) got %v, want 491", r.firstLine())
	}
	if r := carrier.response("INVITE", 102); r == nil || r.status() != 200 {
		t.Errorf("the carrier's retry (CSeq 102) got %v, want 200", r.firstLine())
	}
	if r := pbx.response("INVITE", 3); r == nil || r.status() != 200 {
		t.Errorf("the PBX's re-INVITE (CSeq 3) got %v, want 200", r.firstLine())
	}
	// The offerless re-INVITE's 200 offers the PBX the same relay address
	// as the call's first 200 and as the carrier's re-INVITE did.
	first, refresh := pbx.response("INVITE", 2), pbx.response("INVITE", 4)
	if first == nil || refresh == nil {
		t.Fatalf("the PBX's trace lacks the 200 to its INVITE (%v) or to its offerless re-INVITE (%v)", first.firstLine(), refresh.firstLine())
	}
	want, got := sdpMediaLine(first.body()), sdpMediaLine(refresh.body())
	if want == "" || got != want {
		t.Errorf("offerless re-INVITE: 200 offers media at %q, the call's first 200 at %q", got, want)
	}
	if fwd := pbx.requests("INVITE"); len(fwd) != 1 || sdpMediaLine(fwd[0].body()) != want {
		t.Errorf("%d re-INVITEs reached the PBX, want 1 (the carrier's retry) offering %q", len(fwd), want)
	}
	t.Logf("offerless re-INVITE answered with media at %s", got)
	// Media went on after the session refresh: the PBX plays the pcap
	// through the whole call and the carrier echoes it; the refresh is
	// answered at once, 1.5 s before the BYE.
	if at := refresh.at; at.IsZero() {
		t.Errorf("no time on the offerless re-INVITE's 200 in the trace")
	} else {
		before, after := s.at(at), s.stop()
		if len(after) != 2 {
			t.Errorf("the relay's counts for the call: %v, want 2 parties", after)
		}
		for tag, c := range after {
			if c.packets < before[tag].packets+20 {
				t.Errorf("party %s: %d RTP packets at the session refresh, %d at the end: media did not go on", tag, before[tag].packets, c.packets)
			}
		}
	}
}

// info: DTMF INFO from the PBX reaches the carrier with its Content-Type
// and body unchanged, the carrier's 200 reaches the PBX; and the same the
// other way.
func (l *trunkLab) info(t *testing.T) {
	tri := l.tri
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, "info-carrier", "uas_carrier_info.xml", tri.CalleeIP, carrierPort, l.port(), "-rtp_echo", "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, "info-pbx", "uac_pbx_info.xml", tri.CallerIP, l.port(), l.port(), pbxArgsTo(called, labTrunkHost, sipAddr.String())...)
	uac.wait(t)
	uas.wait(t)
	checkCDR(t, l.cdrs(t, called, 1)[0], cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})
	for _, w := range []struct {
		who  string
		msgs sippTrace
		body string
	}{
		{"carrier", uas.messages(t), "Signal=5\r\nDuration=160\r\n"},
		{"PBX", uac.messages(t), "Signal=#\r\nDuration=250\r\n"},
	} {
		infos := w.msgs.requests("INFO")
		if len(infos) != 1 {
			t.Errorf("the %s received %d INFOs, want 1", w.who, len(infos))
			continue
		}
		m := infos[0]
		if ct := m.header("Content-Type"); ct != "application/dtmf-relay" || m.body() != w.body {
			t.Errorf("the %s received INFO with Content-Type %q and body %q, want application/dtmf-relay and %q", w.who, ct, m.body(), w.body)
		}
	}
}

// recording: a termination call on a trunk recording per mode (no trim)
// with 2 s of early media and 3 s answered: the Recordings resource lists
// one recording of the call with channels and duration as the mode says
// (from ringing: the early media too), and the relay's WAV file holds
// that, also through the API's media URL.
func (l *trunkLab) recording(t *testing.T, mode string, channels int, want time.Duration) {
	tri := l.tri
	host := l.recordingTrunk(t, mode, "do-not-trim")
	carrierPort := l.port()
	sipAddr := l.startSIP(t, sipOpts{carrier: "sip:" + tri.CalleeIP.String() + ":" + strconv.Itoa(carrierPort)})
	uas := l.startUAS(t, tri.Callee, mode+"-carrier", "uas_early.xml", tri.CalleeIP, carrierPort, l.port(), "-m", "1")
	called := l.number()
	uac := l.startSIPp(t, tri.Caller, mode+"-pbx", "uac_pbx_early.xml", tri.CallerIP, l.port(), l.port(),
		append([]string{"-rtp_echo", "-d", "3000"}, pbxArgsTo(called, host, sipAddr.String())...)...)
	uac.wait(t)
	uas.wait(t)
	c := l.cdrs(t, called, 1)[0]
	checkCDR(t, c, cdrWant{dir: store.DirectionTerminating, from: labDID, to: called, status: "completed", code: 200,
		hangup: hangupCause(hangupCaller, reasonBye), answered: true, media: true})

	// The Recordings resource, as a customer reads it.
	path := "/2010-04-01/Accounts/" + labAccountSid + "/Calls/" + c.Sid + "/Recordings.json"
	var recs []any
	deadline := time.Now().Add(cdrWait) // written in the CDR's batch, just after it
	for {
		recs, _ = l.api.get(t, path)["recordings"].([]any)
		if len(recs) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(recs) != 1 {
		t.Fatalf("GET %s: %d recordings, want 1: %v", path, len(recs), recs)
	}
	r, _ := recs[0].(map[string]any)
	t.Logf("recording resource: %v", r)
	dur, _ := strconv.Atoi(fmt.Sprint(r["duration"]))
	if r["call_sid"] != c.Sid || r["trunk_sid"] != c.TrunkSid || r["status"] != "completed" || r["source"] != "Trunking" ||
		r["channels"] != float64(channels) || math.Abs(float64(dur)-want.Seconds()) > 1 {
		t.Errorf("recording %v: want call %s, trunk %s, completed, Trunking, %d channel(s), duration %v ± 1 s",
			r, c.Sid, c.TrunkSid, channels, want)
	}
	if st, err := time.Parse(time.RFC1123Z, fmt.Sprint(r["start_time"])); err != nil {
		t.Errorf("recording start_time %v: %v", r["start_time"], err)
	} else if early := strings.Contains(mode, "ringing"); early && !st.Before(c.Answer.Add(-time.Second)) {
		t.Errorf("recording %s started at %v, the call was answered at %v: a recording from ringing starts with the early media",
			mode, st, c.Answer.Format(time.RFC3339Nano))
	} else if !early && (st.Before(c.Answer.Add(-time.Second)) || st.After(c.Answer.Add(time.Second))) {
		t.Errorf("recording %s started at %v, the call was answered at %v", mode, st, c.Answer.Format(time.RFC3339Nano))
	}

	// The file the relay wrote (after its delete reply, so wait for it).
	rs, _, err := l.st.ListRecordings(context.Background(), labAccountSid, c.Sid, store.Page{Size: 10})
	if err != nil || len(rs) != 1 {
		t.Fatalf("store: recordings of %s: %v, %v", c.Sid, rs, err)
	}
	if !store.ValidRecordingFile(rs[0].MediaFile) {
		t.Fatalf("the Recording names %q, not a recording file's name", rs[0].MediaFile)
	}
	file := filepath.Join(l.recDir, rs[0].MediaFile) // the relay's --recording-dir, which the API serves
	var wav []byte
	deadline = time.Now().Add(cdrWait) // the relay writes it after its delete reply
	for {
		if wav, err = os.ReadFile(file); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("recording file: %v", err)
	}
	w := checkWAV(t, file, wav, channels, want)
	if strings.Contains(mode, "ringing") {
		// The carrier's pcap has sound from 0.5 s: from ringing, both
		// parties (the carrier and the PBX's echo of it) are heard well
		// before the answer, 2 s in.
		for ch := range channels {
			if lv := w.level(ch, 500*time.Millisecond, 1500*time.Millisecond); lv < 50 {
				t.Errorf("channel %d of the recording from ringing is silent in the early media (mean level %.0f)", ch, lv)
			}
		}
	} else if lv := w.level(0, 0, 2*time.Second); lv < 50 {
		t.Errorf("the recording from answer is silent in its first 2 s (mean level %.0f)", lv)
	}
	if media := l.apiMedia(t, fmt.Sprint(r["media_url"])+".wav"); !bytes.Equal(media, wav) {
		t.Errorf("the API's media URL served %d bytes, not the %d-byte file the relay wrote", len(media), len(wav))
	}
}

// recordingTrunk makes a termination trunk of its own (a credential list
// with the lab's PBX credentials) recording per mode and trim, through
// the API, and returns its domain name.
func (l *trunkLab) recordingTrunk(t *testing.T, mode, trim string) string {
	t.Helper()
	host := mode + ".pstn." + testDomain
	cl := l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/SIP/CredentialLists.json", url.Values{"FriendlyName": {mode}})
	l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/SIP/CredentialLists/"+cl+"/Credentials.json",
		url.Values{"Username": {testUser}, "Password": {testPassword}})
	tk := l.api.create(t, "/v1/Trunks", url.Values{"FriendlyName": {mode}, "DomainName": {host}})
	l.api.create(t, "/v1/Trunks/"+tk+"/CredentialLists", url.Values{"CredentialListSid": {cl}})
	code, out, err := l.api.do("POST", "/v1/Trunks/"+tk+"/Recording", url.Values{"Mode": {mode}, "Trim": {trim}})
	if err != nil || code != http.StatusOK || out["mode"] != mode || out["trim"] != trim {
		t.Fatalf("POST recording settings %s/%s: %d %v %v", mode, trim, code, out, err)
	}
	return host
}

// apiMedia GETs a recording's media from the API.
func (l *trunkLab) apiMedia(t *testing.T, mediaURL string) []byte {
	t.Helper()
	u, err := url.Parse(mediaURL)
	if err != nil {
		t.Fatalf("media_url %q: %v", mediaURL, err)
	}
	req, err := http.NewRequest("GET", "http://xtrunk"+u.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(labAccountSid, labAuthToken)
	res, err := l.api.hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "audio/x-wav" {
		t.Fatalf("GET %s: %d %s, %d bytes, %v", u.Path, res.StatusCode, res.Header.Get("Content-Type"), len(b), err)
	}
	return b
}

// wavFile is a parsed 16-bit PCM WAV.
type wavFile struct {
	channels, rate int
	pcm            []byte // interleaved int16 LE
}

// checkWAV parses b (the file name) and wants 16-bit PCM at 8 kHz with
// channels and a length of want ± 1 s.
func checkWAV(t *testing.T, name string, b []byte, channels int, want time.Duration) *wavFile {
	t.Helper()
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" || int(binary.LittleEndian.Uint32(b[4:]))+8 != len(b) {
		t.Fatalf("%s: not a RIFF/WAVE file of its size (%d bytes)", name, len(b))
	}
	w := &wavFile{}
	format, bits := 0, 0
	for p := 12; p+8 <= len(b); {
		id, n := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:]))
		body := b[p+8 : min(len(b), p+8+n)]
		switch id {
		case "fmt ":
			if len(body) >= 16 {
				format, w.channels = int(binary.LittleEndian.Uint16(body[0:])), int(binary.LittleEndian.Uint16(body[2:]))
				w.rate, bits = int(binary.LittleEndian.Uint32(body[4:])), int(binary.LittleEndian.Uint16(body[14:]))
			}
		case "data":
			w.pcm = body
		}
		p += 8 + n + n%2
	}
	secs := float64(len(w.pcm)) / float64(8000*2*max(1, w.channels))
	t.Logf("%s: format %d, %d channel(s), %d Hz, %d bits, %.3f s", filepath.Base(name), format, w.channels, w.rate, bits, secs)
	if format != 1 || w.channels != channels || w.rate != 8000 || bits != 16 {
		t.Errorf("%s: format %d, %d channel(s), %d Hz, %d bits; want PCM (1), %d channel(s), 8000 Hz, 16 bits",
			name, format, w.channels, w.rate, bits, channels)
	}
	if math.Abs(secs-want.Seconds()) > 1 {
		t.Errorf("%s holds %.3f s of audio, want %v ± 1 s", name, secs, want)
	}
	return w
}

// level is the mean absolute sample of channel ch over [from, to).
func (w *wavFile) level(ch int, from, to time.Duration) float64 {
	frame := 2 * w.channels
	i, j := int(from.Seconds()*8000)*frame, min(len(w.pcm), int(to.Seconds()*8000)*frame)
	var sum float64
	n := 0
	for ; i+frame <= j; i += frame {
		sum += math.Abs(float64(int16(binary.LittleEndian.Uint16(w.pcm[i+2*ch:]))))
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// pbxArgsTo are pbxArgs for the trunk with domain name host.
func pbxArgsTo(called, host, server string) []string {
	return []string{"-s", called, "-key", "trunk", host, "-key", "caller", labDID,
		"-au", testUser, "-ap", testPassword, "-auth_uri", called + "@" + host, "-m", "1", server}
}

// mediaSeries polls the relay (NG query) for one call every 100 ms and
// keeps every answer with the time it came, to tell what flowed before
// an event (the answer, a re-INVITE).
type mediaSeries struct {
	stopc, done chan struct{}
	once        sync.Once
	mu          sync.Mutex
	samples     []mediaSample
}

type mediaSample struct {
	at     time.Time // when the relay's answer was in: the counts are older
	counts map[string]streamCounts
}

func (l *trunkLab) seriesMedia(t *testing.T, callID string) *mediaSeries {
	s := &mediaSeries{stopc: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { s.stop() })
	go func() {
		defer close(s.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if got, err := l.relayCounts(callID); err == nil && len(got) > 0 {
				s.mu.Lock()
				s.samples = append(s.samples, mediaSample{at: time.Now(), counts: got})
				s.mu.Unlock()
			}
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the polling and returns the last counts (the relay forgets
// the call at delete).
func (s *mediaSeries) stop() map[string]streamCounts {
	s.once.Do(func() { close(s.stopc) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return nil
	}
	return s.samples[len(s.samples)-1].counts
}

// at returns the last counts the relay gave before t.
func (s *mediaSeries) at(t time.Time) map[string]streamCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last map[string]streamCounts
	for _, x := range s.samples {
		if !x.at.Before(t) {
			break
		}
		last = x.counts
	}
	return last
}

// checkEarly wants RTP from both parties through the relay before answer:
// from the one playing early media (tag prefix player) and from the one
// echoing it (echoer), which shows the early media reached it.
func (s *mediaSeries) checkEarly(t *testing.T, answer time.Time, echoer, player string) {
	t.Helper()
	before := s.at(answer)
	t.Logf("relay counts before the answer: %+v", before)
	var echoed, played int64
	for tag, c := range before {
		switch {
		case strings.HasPrefix(tag, echoer):
			echoed = c.packets
		case strings.HasPrefix(tag, player):
			played = c.packets
		}
	}
	if played < earlyMediaMin {
		t.Errorf("before the answer the early media's source (%s…) had sent %d packets through the relay, want at least %d", player, played, earlyMediaMin)
	}
	if echoed < earlyMediaMin {
		t.Errorf("before the answer the caller (%s…) had echoed %d packets of early media back through the relay, want at least %d: it did not get the early media",
			echoer, echoed, earlyMediaMin)
	}
}

// sippTrace is one SIPp's -trace_msg log, message by message.
type sippTrace []*sippMsg

type sippMsg struct {
	at       time.Time
	received bool
	text     string // the message, CRLFs as on the wire
}

// messages reads the SIPp's message trace.
func (sp *sippProc) messages(t *testing.T) sippTrace {
	t.Helper()
	b, err := os.ReadFile(sp.msgs)
	if err != nil {
		t.Fatalf("SIPp %s trace: %v", sp.name, err)
	}
	var out sippTrace
	const sep = "----------------------------------------------- "
	for _, blk := range strings.Split(string(b), sep)[1:] {
		// "<date> <time>\n<transport> message received [N] bytes :\n\n<message>\n"
		head, msg, ok := strings.Cut(blk, "\n\n")
		if !ok {
			continue
		}
		lines := strings.SplitN(head, "\n", 2)
		if len(lines) < 2 {
			continue
		}
		m := &sippMsg{received: strings.Contains(lines[1], "received"), text: msg}
		// SIPp writes local time with microseconds.
		m.at, _ = time.ParseInLocation("2006-01-02 15:04:05.999999", strings.TrimSpace(lines[0]), time.Local)
		out = append(out, m)
	}
	return out
}

// response is the last final response received to method with cseq.
func (tr sippTrace) response(method string, cseq int) *sippMsg {
	var last *sippMsg
	for _, m := range tr {
		if m.received && m.status() >= 200 && m.header("CSeq") == fmt.Sprintf("%d %s", cseq, method) {
			last = m
		}
	}
	return last
}

// requests are the requests received with method (the UA's peer numbers
// their CSeqs).
func (tr sippTrace) requests(method string) []*sippMsg {
	var out []*sippMsg
	for _, m := range tr {
		if m.received && strings.HasPrefix(m.text, method+" ") {
			out = append(out, m)
		}
	}
	return out
}

func (m *sippMsg) firstLine() string {
	if m == nil {
		return "nothing"
	}
	l, _, _ := strings.Cut(m.text, "\r\n")
	return strings.TrimSpace(l)
}

// status is a response's status code (0 for a request).
func (m *sippMsg) status() int {
	f := strings.Fields(m.firstLine())
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func (m *sippMsg) header(name string) string {
	head, _, _ := strings.Cut(m.text, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n")[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// body is the message body, Content-Length bytes of it.
func (m *sippMsg) body() string {
	if m == nil {
		return ""
	}
	_, b, _ := strings.Cut(m.text, "\r\n\r\n")
	if n, err := strconv.Atoi(m.header("Content-Length")); err == nil && n <= len(b) {
		b = b[:n]
	}
	return b
}

// sdpMediaLine is an SDP's media address: its c= line and its audio m= line.
func sdpMediaLine(sdp string) string {
	var c, mline string
	for _, l := range strings.Split(sdp, "\r\n") {
		switch {
		case strings.HasPrefix(l, "c=") && c == "":
			c = l
		case strings.HasPrefix(l, "m=audio "):
			mline = l
		}
	}
	if c == "" || mline == "" {
		return ""
	}
	return c + " " + mline
}
