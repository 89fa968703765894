package signalling

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// RFC 4475 torture messages (testdata/torture, see its README) sent to
// the listeners: nothing crashes, each gets silence or the answer a
// compliant edge gives, and the edge still answers afterwards.

// tortureMsg is one RFC 4475 message.
type tortureMsg struct {
	name  string // file name without .dat
	class string // valid, invalid or semantic (the testdata directory)
	data  []byte
}

func loadTorture(tb testing.TB) []tortureMsg {
	tb.Helper()
	var out []tortureMsg
	for _, class := range []string{"valid", "invalid", "semantic"} {
		files, err := filepath.Glob(filepath.Join("testdata", "torture", class, "*.dat"))
		if err != nil {
			tb.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, tortureMsg{name: strings.TrimSuffix(filepath.Base(f), ".dat"), class: class, data: b})
		}
	}
	// 13 + 19 + 17 messages in RFC 4475 §3.1.1, §3.1.2, §3.2–3.4
	if len(out) != 49 {
		tb.Fatalf("want the 49 RFC 4475 messages in testdata/torture, found %d", len(out))
	}
	return out
}

// isResponse reports whether a message is a response (it starts with the
// SIP version).
func isResponse(b []byte) bool { return bytes.HasPrefix(b, []byte("SIP/")) }

// methodOf is a request's method (its first token).
func methodOf(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	m, _, _ := bytes.Cut(line, []byte(" "))
	return string(m)
}

// atHost changes the host of a request's Request-URI to host and nothing
// else, so the message keeps its oddity but reaches a trunk. Requests
// whose Request-URI is not sip: (novelsc, unkscm) and responses come back
// unchanged.
func atHost(b []byte, host string) []byte {
	end := bytes.Index(b, []byte("\r\n"))
	if end < 0 || isResponse(b) {
		return b
	}
	line := b[:end]
	start := bytes.Index(line, []byte("sip:"))
	if start < 0 {
		return b
	}
	start += len("sip:")
	stop := bytes.LastIndex(line, []byte(" SIP/"))
	if stop < start {
		return b
	}
	uri := line[start:stop]
	h := 0
	if at := bytes.LastIndexByte(uri, '@'); at >= 0 {
		h = at + 1
	}
	n := bytes.IndexAny(uri[h:], ";?:> ")
	if n < 0 {
		n = len(uri) - h
	}
	out := make([]byte, 0, len(b)+len(host))
	out = append(out, b[:start+h]...)
	out = append(out, host...)
	return append(out, b[start+h+n:]...)
}

var (
	callIDLine = regexp.MustCompile(`(?mi)^(?:call-id|i)[ \t]*:[^\r\n]*`)
	branchRE   = regexp.MustCompile(`branch=z9hG4bK([-.!%*_+` + "`" + `'~0-9A-Za-z])`)
)

// distinct makes a request a transaction of its own for sipgo: the RFC
// reuses branches (z9hG4bKkdjuw at host5.example.com in escnull and
// regescrt, at saturn.example.com in cparam01 and cparam02) and each
// message is sent three times, so the later ones would be taken for
// retransmissions of the first (same top Via branch and sent-by, or same
// Call-ID and From tag) and answered to its source. The Call-ID gets a
// suffix, and an RFC 3261 branch a prefix after its magic cookie; the
// bare cookie of badbranch stays as it is.
func distinct(b []byte, tag string) []byte {
	b = callIDLine.ReplaceAllFunc(b, func(line []byte) []byte { return append(append([]byte(nil), line...), "-"+tag...) })
	return branchRE.ReplaceAll(b, []byte("branch=z9hG4bK"+tag+".$1"))
}

// reply is what came back for one message: the status codes of every
// response, in order.
type reply struct {
	codes []int
	raw   string
}

func (r reply) final() []int {
	var out []int
	for _, c := range r.codes {
		if c >= 200 {
			out = append(out, c)
		}
	}
	return out
}

func (r reply) String() string {
	if len(r.codes) == 0 {
		return "silence"
	}
	return fmt.Sprint(r.codes)
}

// dialFunc opens a connection from the test's side (a namespace in the
// labs, a loopback address on the host).
type dialFunc func(network, raddr string) (net.Conn, error)

// loopbackFrom dials from a loopback address of its own (the abuse
// guard answers one OPTIONS per source per 10 s).
func loopbackFrom(ip string) dialFunc {
	return func(network, raddr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(ip)}}
		if network == "tcp" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
		}
		return d.Dial(network, raddr)
	}
}

// udpBarrage sends every message from pc at once and sorts what comes
// back for wait by Call-ID. pc must be bound to port 5060: without rport
// in its top Via, a request is answered at the source address and the
// Via's port (RFC 3261 §18.2.2), which is 5060 or absent in the torture
// messages. Answers whose Call-ID matches no message (a request without
// one gets a 400 without one) come back in stray.
func udpBarrage(pc net.PacketConn, server string, msgs [][]byte, wait time.Duration) (got []reply, stray reply, err error) {
	ra, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, reply{}, err
	}
	byID := map[string][]int{}
	for i, m := range msgs {
		for _, id := range callIDs(m) {
			byID[id] = append(byID[id], i)
		}
	}
	got = make([]reply, len(msgs))
	for _, m := range msgs {
		if _, err := pc.WriteTo(m, ra); err != nil {
			return nil, reply{}, err
		}
	}
	_ = pc.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got, stray, nil
			}
			return nil, reply{}, err
		}
		res := buf[:n]
		ids := callIDs(res)
		idx := []int(nil)
		if len(ids) == 1 {
			idx = byID[ids[0]]
		}
		if len(idx) == 0 {
			stray.codes = append(stray.codes, statusCodes(res)...)
			stray.raw += string(res)
			continue
		}
		for _, i := range idx {
			got[i].codes = append(got[i].codes, statusCodes(res)...)
			got[i].raw += string(res)
		}
	}
}

var callIDRE = regexp.MustCompile(`(?mi)^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)`)

// callIDs are the Call-ID values in a message (two in dblreq).
func callIDs(b []byte) []string {
	var out []string
	for _, m := range callIDRE.FindAllSubmatch(b, -1) {
		out = append(out, strings.TrimSpace(string(m[1])))
	}
	return out
}

// tcpBarrage sends every message on its own TCP connection at once and
// collects what comes back on each for wait.
func tcpBarrage(dial dialFunc, server string, msgs [][]byte, wait time.Duration) ([]reply, error) {
	out := make([]reply, len(msgs))
	conns := make([]net.Conn, len(msgs))
	for i := range msgs {
		c, err := dial("tcp", server)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return nil, err
		}
		conns[i] = c
	}
	deadline := time.Now().Add(wait)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetDeadline(deadline)
			if _, err := c.Write(msgs[i]); err != nil {
				return
			}
			var got []byte
			buf := make([]byte, 65536)
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			out[i] = reply{codes: statusCodes(got), raw: string(got)}
		}()
	}
	wg.Wait()
	return out, nil
}

// statusCodes finds the status lines in what came back (several datagrams
// or a TCP stream).
func statusCodes(b []byte) []int {
	var out []int
	for _, line := range strings.Split(string(b), "\r\n") {
		if !strings.HasPrefix(line, "SIP/2.0 ") || len(line) < 11 {
			continue
		}
		if n, err := strconv.Atoi(line[8:11]); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// tortureCase is one message as sent, and what may come back.
type tortureCase struct {
	name    string // class/name@variant
	msg     []byte
	allowed []int // final statuses a compliant edge may send; silence is always allowed unless mustAnswer
	// mustAnswer: silence is wrong (the request is well-formed enough for
	// sipgo, reaches a trunk, and its answer fits in a datagram).
	mustAnswer bool
}

// tortureWant pins the answers that follow from REQUIREMENTS §2 for the
// messages sent to a trunk ("@acl": the IP-ACL trunk, from an address in
// its ACL; "@cred": the credential trunk).
var tortureWant = map[string]int{
	"valid/esc01@acl":        400, // Request-URI user is not E.164
	"valid/esc01@cred":       407, // no credentials
	"valid/escnull@acl":      403, // REGISTER to a trunk
	"valid/dblreq@acl":       403, // the REGISTER; the INVITE after it in the datagram is not read
	"valid/intmeth@acl":      405,
	"valid/lwsdisp@acl":      200, // OPTIONS to a trunk
	"valid/transports@acl":   200,
	"invalid/mismatch01@acl": 400, // CSeq method is not the request's
	"invalid/mismatch02@acl": 400,
	"semantic/bext01@acl":    420, // Require: an extension xtrunk does not do
	"semantic/mcl01@acl":     400, // two Content-Length headers
	"semantic/invut@cred":    407,
	"semantic/sdp01@acl":     400,
}

// tortureCases is every message three times: as the RFC has it (its
// hosts are nobody's trunk), at the IP-ACL trunk (the tests send from an
// address in its ACL, so requests get past authentication) and at the
// credential trunk (407 unless something refuses earlier). Each set is
// for one transport: sipgo's transaction key has no transport in it, so
// the TCP set must not reuse the UDP set's branches and Call-IDs.
func tortureCases(msgs []tortureMsg, transport string) []tortureCase {
	var out []tortureCase
	for _, m := range msgs {
		for _, v := range []struct{ label, host string }{{"as-is", ""}, {"acl", aclHost}, {"cred", acmeHost}} {
			b := m.data
			if v.host != "" {
				b = atHost(b, v.host)
				if bytes.Equal(b, m.data) {
					continue // not a sip: request: nothing to move
				}
			}
			if !isResponse(b) {
				b = distinct(b, m.name+"-"+v.label+"-"+transport)
			}
			c := tortureCase{name: m.class + "/" + m.name + "@" + v.label, msg: b}
			method := methodOf(m.data)
			switch {
			case isResponse(m.data):
				// a response matching no transaction: nothing
			case v.host == "":
				// an unknown domain gets nothing (REQUIREMENTS §2.1);
				// sipgo and the guard refuse a request they cannot
				// take apart (no From tag, no Call-ID) with 400 first
				c.allowed = []int{400}
			case method == "INVITE" && v.host == acmeHost:
				c.allowed = []int{400, 407}
			case method == "INVITE":
				c.allowed = []int{400, 403, 420, 483, 488}
			case method == "REGISTER":
				c.allowed = []int{400, 403}
			case method == "OPTIONS":
				c.allowed = []int{400, 420}
				// answering OPTIONS is right, also with Max-Forwards 0
				// (zeromf: the edge is the endpoint) or a branch
				// without the RFC 3261 cookie (badbranch); never for
				// the invalid ones but baddn, whose unquoted
				// comma-bearing display name sipgo takes as a name:
				// the answer is the one a valid OPTIONS gets
				if m.class != "invalid" || m.name == "baddn" {
					c.allowed = append(c.allowed, 200)
				}
			default:
				c.allowed = []int{400, 405}
			}
			if want, ok := tortureWant[c.name]; ok {
				// an ACL source gets one OPTIONS answered per 10 s
				// (REQUIREMENTS §2.9): the rest may get nothing
				c.allowed, c.mustAnswer = []int{want}, method != "OPTIONS"
				// dblreq is about a datagram holding two requests; on
				// TCP it is two requests in a row, and the edge has
				// been seen to lose the connection before answering
				// (see badinput_lab_test.go)
				if m.name == "dblreq" && transport == "tcp" {
					c.mustAnswer = false
				}
			}
			out = append(out, c)
		}
	}
	return out
}

// tortureSet is tortureCases and the messages to send.
func tortureSet(torture []tortureMsg, transport string) ([]tortureCase, [][]byte) {
	cases := tortureCases(torture, transport)
	msgs := make([][]byte, len(cases))
	for i, c := range cases {
		msgs[i] = c.msg
	}
	return cases, msgs
}

// checkTorture applies the rules every answer must meet.
func checkTorture(t *testing.T, cases []tortureCase, got []reply, stray reply, transport string) {
	t.Helper()
	var table []string
	for _, code := range stray.codes {
		if code != 400 {
			t.Errorf("%s: an answer to no message of the barrage: %d:\n%s", transport, code, stray.raw)
		}
	}
	answered := 0
	for i, c := range cases {
		r := got[i]
		table = append(table, fmt.Sprintf("%-40s %s", c.name, r))
		if len(r.final()) > 0 {
			answered++
		}
		if c.mustAnswer && len(r.final()) == 0 {
			t.Errorf("%s %s: no answer, want %v", transport, c.name, c.allowed)
		}
		for _, code := range r.codes {
			if code == 100 && strings.HasPrefix(methodOf(c.msg), "INVITE") {
				continue
			}
			if !slices.Contains(c.allowed, code) {
				t.Errorf("%s %s: answered %d, want one of %v or silence:\n%s", transport, c.name, code, c.allowed, r.raw)
			}
		}
	}
	sort.Strings(table)
	t.Logf("%s answers (and %v to no message of ours):\n%s", transport, stray, strings.Join(table, "\n"))
	if answered < 20 {
		t.Errorf("%s: only %d of %d messages were answered: is the edge listening to this source at all?", transport, answered, len(cases))
	}
}

// TestTortureLoopback sends the RFC 4475 messages to an in-process edge
// on loopback (no privileges needed) over UDP and TCP, and checks the
// answers and that the edge still answers a valid OPTIONS afterwards. The
// torture messages' Via hosts (host5.example.net, 192.0.2.15…) are never
// looked up nor dialled: responses go only back the way the request came
// (sipgo's WithTransportLayerResponseToSource).
func TestTortureLoopback(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	// The barrage is two dozen unparseable messages in a second: the
	// guard's flood rule would rightly ban the source (malformed messages
	// count as requests); this test is about the answers.
	cfg.GuardMaxRequests = 0
	cfg.TCPMaxPerSource = 0 // 133 connections at once from one address
	s := serve(t, cfg, p.st)
	cfg.ListenUDP = s.Addr("UDP").String()

	torture := loadTorture(t)
	cases, msgs := tortureSet(torture, "udp")
	// 127.0.0.0/8 is in the ACL trunk's list; port 5060 gets the answers
	// to requests without rport.
	pc, err := net.ListenPacket("udp", "127.0.0.10:5060")
	if err != nil {
		t.Fatalf("the answers to the torture messages come to port 5060: %v", err)
	}
	defer pc.Close()
	got, stray, err := udpBarrage(pc, cfg.ListenUDP, msgs, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkTorture(t, cases, got, stray, "udp")
	cases, msgs = tortureSet(torture, "tcp")
	tcpGot, err := tcpBarrage(loopbackFrom("127.0.0.12"), s.Addr("TCP").String(), msgs, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkTorture(t, cases, tcpGot, reply{}, "tcp")
	mustAnswerOptions(t, loopbackFrom("127.0.0.11"), "udp", cfg.ListenUDP)

}

// mustAnswerOptions: a valid OPTIONS to a trunk still gets 200 (from a
// fresh socket; retried a few times since UDP may lose one).
func mustAnswerOptions(t *testing.T, dial dialFunc, network, server string) {
	t.Helper()
	for i := 0; i < 5; i++ {
		req := rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}
		c, err := dial(network, server)
		if err != nil {
			t.Fatal(err)
		}
		got, err := roundTrip(c, req, 2*time.Second)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(got, "SIP/2.0 200") {
			return
		}
		t.Logf("OPTIONS try %d: %q", i+1, statusLine(got))
	}
	t.Fatalf("%s: the edge no longer answers a valid OPTIONS with 200", network)
}

// roundTrip writes req on c and returns the first final response ("" on
// timeout).
func roundTrip(c net.Conn, req rawRequest, wait time.Duration) (string, error) {
	if _, err := c.Write(req.bytes(c.LocalAddr().String())); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var acc []byte
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		acc = append(acc, buf[:n]...)
		for _, msg := range splitMessages(acc) {
			if !strings.HasPrefix(msg, "SIP/2.0 1") {
				return msg, nil
			}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
	}
}

// splitMessages splits what came back into messages at each status line.
func splitMessages(b []byte) []string {
	s := string(b)
	var out []string
	for {
		i := strings.Index(s[min(1, len(s)):], "SIP/2.0 ")
		if i < 0 {
			if s != "" {
				out = append(out, s)
			}
			return out
		}
		i++
		out = append(out, s[:i])
		s = s[i:]
	}
}

// Mutated SIP for the fuzz barrage: valid requests (for the trunks, none
// of them admissible, so the barrage places no call) and the torture
// messages, each with one to three random mutations.

// barrageBases are the valid requests the barrage mutates.
func barrageBases(local string) [][]byte {
	reqs := []rawRequest{
		{ruri: "sip:+14155550123@" + aclHost, from: "+14155559999"}, // 403 caller ID
		{ruri: "sip:+14155550123@" + acmeHost},                      // 407
		{ruri: "sip:+14155550123@" + aclHost, from: "+14155559999", body: "v=0\r\no=- 1 1 IN IP4 198.18.1.2\r\ns=-\r\nc=IN IP4 198.18.1.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"},
		{method: "OPTIONS", ruri: "sip:" + aclHost},
		{method: "REGISTER", ruri: "sip:" + acmeHost},
		{method: "BYE", ruri: "sip:+14155550123@" + aclHost},
		{method: "ACK", ruri: "sip:+14155550123@" + aclHost},
		{method: "CANCEL", ruri: "sip:+14155550123@" + aclHost},
		{ruri: "sip:+14155550123@" + acmeHost, extra: `Proxy-Authorization: Digest username="pbx1", realm="example.net", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:+14155550123@acme.pstn.example.net", response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="x", algorithm=MD5` + "\r\n"},
	}
	out := make([][]byte, len(reqs))
	for i, r := range reqs {
		out[i] = r.bytes(local)
	}
	return out
}

// mutate applies one to three of: byte flips, truncation, a duplicated
// or deleted header, bare LF line ends, an overlong header, a wrong
// Content-Length, junk after the message.
func mutate(rnd *rand.Rand, in []byte) []byte {
	b := append([]byte(nil), in...)
	for n := 1 + rnd.IntN(3); n > 0 && len(b) > 0; n-- {
		switch rnd.IntN(9) {
		case 0: // flip bytes
			for k := 1 + rnd.IntN(8); k > 0; k-- {
				b[rnd.IntN(len(b))] = byte(rnd.IntN(256))
			}
		case 1: // truncate
			b = b[:rnd.IntN(len(b))]
		case 2, 3: // duplicate a header line, possibly many times
			lines := bytes.Split(b, []byte("\r\n"))
			if len(lines) < 3 {
				continue
			}
			i := 1 + rnd.IntN(len(lines)-2)
			times := 1 + rnd.IntN(3)
			if rnd.IntN(4) == 0 {
				times = 50 + rnd.IntN(200)
			}
			dup := make([][]byte, 0, len(lines)+times)
			dup = append(dup, lines[:i+1]...)
			for ; times > 0; times-- {
				dup = append(dup, lines[i])
			}
			b = bytes.Join(append(dup, lines[i+1:]...), []byte("\r\n"))
		case 4: // delete a header line
			lines := bytes.Split(b, []byte("\r\n"))
			if len(lines) < 3 {
				continue
			}
			i := 1 + rnd.IntN(len(lines)-2)
			b = bytes.Join(append(lines[:i:i], lines[i+1:]...), []byte("\r\n"))
		case 5: // bare LF
			b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
		case 6: // an overlong header
			long := bytes.Repeat([]byte{"a;=,<>\"%@:"[rnd.IntN(10)]}, 500+rnd.IntN(4000))
			b = bytes.Replace(b, []byte("\r\n"), append(append([]byte("\r\nX-Long: "), long...), "\r\n"...), 1)
		case 7: // a wrong Content-Length
			vals := []string{"-1", "99999999999999999999", "65536", "0", "1", "abc", ""}
			i := bytes.Index(b, []byte("Content-Length: "))
			if i < 0 {
				continue
			}
			j := bytes.Index(b[i:], []byte("\r\n"))
			if j < 0 {
				continue
			}
			b = append(append(append([]byte(nil), b[:i]...), "Content-Length: "+vals[rnd.IntN(len(vals))]...), b[i+j:]...)
		case 8: // junk after the message
			junk := make([]byte, rnd.IntN(200))
			for i := range junk {
				junk[i] = byte(rnd.IntN(256))
			}
			b = append(b, junk...)
		}
	}
	return b
}

// TestFloodIgnoredLoopback: a source in no trunk's ACL that floods is
// ignored (REQUIREMENTS §2: more than 16 requests per 2 s, then nothing
// for 5 minutes), while the tests above send their barrages from ACL
// addresses, which the abuse guard exempts. ::1 is in no ACL (the ACL
// trunk lists 127.0.0.0/8 and 198.18.0.0/15).
func TestFloodIgnoredLoopback(t *testing.T) {
	p := provision(t)
	cfg := testConfig(t)
	pc, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	pc.Close()
	cfg.ListenUDP = "[::1]:0"
	cfg.GuardMaxRequests, cfg.GuardRequestWindow = 16, 2*time.Second // the defaults, REQUIREMENTS' numbers
	cfg.ListenUDP = serve(t, cfg, p.st).Addr("UDP").String()

	// 40 INVITEs for the credential trunk at once, each from its own
	// port: the first 16 get 407, then the source is banned.
	msgs := make([][]byte, 40)
	for i := range msgs {
		msgs[i] = rawRequest{ruri: "sip:+14155550123@" + acmeHost}.bytes("[::1]:5060")
	}
	conns := make([]net.Conn, len(msgs))
	for i := range conns {
		if conns[i], err = net.Dial("udp", cfg.ListenUDP); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	for i, c := range conns {
		if _, err := c.Write(msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Every socket waits for its answer at once, to one deadline: a socket
	// that gets nothing (banned) must not use up the others' time, and an
	// answer slow on a loaded machine is not missed as a fixed pause
	// followed by short reads missed it.
	var answered atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			_ = c.SetReadDeadline(deadline)
			for { // past any 100 Trying
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if code := statusCodes(buf[:n]); len(code) == 1 && code[0] >= 200 {
					if code[0] == 407 {
						answered.Add(1)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := answered.Load(); n == 0 || n > 16 {
		t.Fatalf("a flood of %d: %d answered, want 1..16", len(msgs), n)
	}
	// banned: even a valid OPTIONS gets nothing now
	c, err := net.Dial("udp", cfg.ListenUDP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}, time.Second); err != nil || got != "" {
		t.Fatalf("banned source: want silence, got %q (%v)", statusLine(got), err)
	}
	t.Logf("flood of %d from ::1: %d answered, then silence", len(msgs), answered.Load())
}
