package signalling

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/signalling/sipmsg"
)

// Fuzz tests for the SIP-facing code of this package: the SDP check of
// Secure trunks, and sipgo's parser followed by everything xtrunk does
// with a request (header checks, admission, the handlers behind the
// guard). Seeds: the RFC 4475 torture messages and valid requests.

func FuzzSDPEncrypted(f *testing.F) {
	for _, s := range []string{
		"v=0\r\no=- 1 1 IN IP4 198.18.1.2\r\ns=-\r\nc=IN IP4 198.18.1.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
		"v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
		"v=0\nm=audio 4000 rtp/savpf 0\na=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:x\n",
		"m=audio 0 RTP/AVP 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 x\r\n",
		"m=video 4000 RTP/AVP 31\r\na=crypto:1 x\r\n",
		"m=audio\r\nm=audio 1\r\nm=\r\na=crypto:",
		"a=crypto:1 x\r\nm=audio 4000 RTP/SAVP 0",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !sdpEncrypted(body) {
			return
		}
		// true means: a crypto line, at least one live audio stream, and
		// no live audio stream in the clear
		if !bytes.Contains(body, []byte("a=crypto:")) {
			t.Fatalf("no a=crypto line, yet encrypted:\n%q", body)
		}
		live := 0
		for _, line := range strings.Split(string(body), "\n") {
			f := strings.Fields(strings.TrimPrefix(strings.TrimRight(line, "\r"), "m="))
			if !strings.HasPrefix(line, "m=") || len(f) < 3 || f[0] != "audio" || f[1] == "0" {
				continue
			}
			if !strings.HasPrefix(strings.ToUpper(f[2]), "RTP/SAVP") {
				t.Fatalf("audio stream %q in the clear, yet encrypted:\n%q", line, body)
			}
			live++
		}
		if live == 0 {
			t.Fatalf("no live audio stream, yet encrypted:\n%q", body)
		}
	})
}

// syncBuffer is a log sink the handlers may write from other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// Sources a fuzzed request comes from: in the IP-ACL trunk's list, a
// carrier gateway, nobody.
var fuzzSources = []string{"127.0.0.1:5060", "127.0.0.2:5060", "198.51.100.7:5060"}

// FuzzRequest parses arbitrary bytes as sipgo's transports do and hands
// a request to everything xtrunk runs on it: sipmsg's checks, admission
// (termination or origination, by source) and the handler for its method
// behind the guard and the abuse guard, with a recording transaction. Nothing may panic (the
// guard would log it), admission may only let through what REQUIREMENTS
// §2 allows (the ACL trunk, from its ACL, with a DID or verified caller
// ID: credentials cannot be guessed), and no handler may answer an INVITE
// with 2xx (no call can be placed here).
func FuzzRequest(f *testing.F) {
	p := provision(f)
	black, err := net.ListenPacket("udp", "127.0.0.1:0") // a relay that never answers
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { black.Close() })
	cfg := DefaultConfig()
	cfg.Domain = testDomain
	cfg.Edge = "lab"
	cfg.ListenUDP = "127.0.0.1:0" // bound, never served: handlers are called directly
	cfg.ListenTCP = ""
	cfg.RelayNG = black.LocalAddr().String()
	cfg.CarrierSources = []string{"127.0.0.2/32"}
	cfg.DefaultCPS = 0
	// the abuse guard would soon ban the fuzzer's one source: the
	// handlers behind it are what is fuzzed (its User-Agent rule stays)
	cfg.GuardMaxRequests, cfg.GuardMaxAuthFailures, cfg.OptionsInterval = 0, 0, 0
	logs := &syncBuffer{}
	s, err := New(cfg, p.st, WithLogger(zerolog.New(logs)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })

	files, _ := filepath.Glob(filepath.Join("testdata", "torture", "*", "*.dat"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, byte(0))
	}
	for i, b := range barrageBases("127.0.0.1:5060") {
		f.Add(b, byte(i))
	}
	// admissible on the ACL trunk from its ACL
	f.Add(rawRequest{ruri: "sip:+14155550123@" + aclHost}.bytes("127.0.0.1:5060"), byte(0))
	f.Add(rawRequest{ruri: "sip:+14155550123@open.pstn.lab.example.net", from: testVerified}.bytes("127.0.0.1:5060"), byte(0))
	// origination to the DID from the carrier
	f.Add(rawRequest{ruri: "sip:" + testDID + "@198.18.2.1", from: "+442071234567"}.bytes("127.0.0.2:5060"), byte(1))
	// no Call-ID: this one datagram ended the process before guard
	// (testdata/fuzz/FuzzRequest/no-call-id-crash)
	f.Add([]byte("BYE sip:x@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@example.org>;tag=2\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"), byte(2))

	// as New registers them, each behind guard and screened
	handlers := map[sip.RequestMethod]func(*sip.Request, sip.ServerTransaction){
		sip.INVITE: s.onInvite, sip.ACK: s.onAck, sip.BYE: s.onBye, sip.REGISTER: s.onRegister,
		sip.OPTIONS: s.onOptions, sip.INFO: s.onInfo,
		sip.CANCEL: func(*sip.Request, sip.ServerTransaction) {},
	}
	f.Fuzz(func(t *testing.T, raw []byte, src byte) {
		msg, err := sip.ParseMessage(raw)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		req.SetTransport("TCP") // reliable: the recording transaction keeps no retransmission timers
		req.SetSource(fuzzSources[int(src)%len(fuzzSources)])
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()

		_, _, _ = sipmsg.CallerID(req)
		_, _ = sipmsg.CheckMaxForwards(req)
		_ = sipmsg.IsE164(req.Recipient.User)
		_ = s.fromCarrier(req)

		// admission, on what the guard lets through to onInvite
		if req.IsInvite() && req.CallID() != nil && req.From() != nil && req.To() != nil && req.CSeq() != nil {
			log := zerolog.New(logs)
			if s.fromCarrier(req) {
				if pl, _, _ := s.admitOrigination(ctx, req, log); pl != nil && pl.conc {
					s.conc.Release(pl.trunk.Sid)
				}
			} else if pl, ref, _ := s.admit(ctx, req, log); pl != nil && ref == nil { // a refusal names its trunk (metrics) but admits nothing
				if pl.conc {
					s.conc.Release(pl.trunk.Sid)
				}
				domain, _, _ := sipmsg.TrunkDomain(req.Recipient.Host, testDomain, []string{"lab"})
				if domain != aclHost || !strings.HasPrefix(req.Source(), "127.") ||
					(pl.from != testDID && pl.from != testVerified) || !sipmsg.IsE164(pl.to) {
					t.Fatalf("admitted %q from %s (caller %q, called %q):\n%s", req.Recipient.Host, req.Source(), pl.from, pl.to, raw)
				}
			}
		}

		// the handler, behind the guard, from a source no trunk lists
		if _, err := sip.ServerTxKeyMake(req); err != nil {
			return // sipgo refuses it before any handler
		}
		req.SetSource(fuzzSources[2])
		h, ok := handlers[req.Method]
		if !ok {
			h = s.onOther
		}
		tx := siptest.NewServerTxRecorder(req)
		s.guard(s.screened(h))(req, tx)
		tx.Terminate()
		for _, res := range tx.Result() {
			if req.IsInvite() && res.IsSuccess() {
				t.Fatalf("INVITE answered %d:\n%s", res.StatusCode, raw)
			}
		}
		if l := logs.take(); strings.Contains(l, "panicked") {
			t.Fatalf("a handler panicked on:\n%q\n%s", raw, l)
		}
	})
}

// FuzzStreamParser runs sipgo's stream parser, as its TCP and TLS
// transports do, on arbitrary bytes arriving in two reads: a panic there
// is outside every handler, where guard cannot catch it.
func FuzzStreamParser(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "torture", "*", "*.dat"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2))
	}
	f.Add([]byte("\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 4\r\n\r\nabcdINVITE"), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		p := sip.NewParser().NewSIPStream()
		at := int(cut) % (len(data) + 1)
		for _, chunk := range [][]byte{data[:at], data[at:]} {
			if err := p.ParseSIPStream(chunk, func(msg sip.Message) { _ = msg.String() }); err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
				return // the transport closes the connection
			}
		}
	})
}
