package relay

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/srtp/v2"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bpf"
	"github.com/xtrunk/xtrunk/control/ng"
)

// memFastPath stands in for the XDP dataplane's pinned maps: the call
// records survive the Relay that wrote them, as pins survive a process.
type memFastPath struct {
	mu    sync.Mutex
	calls map[uint64][]byte
}

func newMemFastPath() *memFastPath { return &memFastPath{calls: map[uint64][]byte{}} }

func (m *memFastPath) SetSession(bpf.Key, bpf.Session) error      { return nil }
func (m *memFastPath) DeleteSession(bpf.Key) error                { return nil }
func (m *memFastPath) LegStats(bpf.Key) (bpf.LegStats, error)     { return bpf.LegStats{}, nil }
func (m *memFastPath) Quality(bpf.Key) (bpf.Quality, bool, error) { return bpf.Quality{}, false, nil }
func (m *memFastPath) Reasons() (bpf.Reasons, error)              { return bpf.Reasons{}, nil }
func (m *memFastPath) LegFinal(bpf.Key) (bpf.LegStats, bpf.Quality, bool, error) {
	return bpf.LegStats{}, bpf.Quality{}, false, nil
}
func (m *memFastPath) DeleteCall(id uint64) error {
	m.mu.Lock()
	delete(m.calls, id)
	m.mu.Unlock()
	return nil
}
func (m *memFastPath) SaveCall(id uint64, b []byte) error {
	if len(b) > bpf.MaxCallRecord {
		return fmt.Errorf("%w: %d bytes", bpf.ErrBlobTooLarge, len(b))
	}
	m.mu.Lock()
	m.calls[id] = append([]byte(nil), b...)
	m.mu.Unlock()
	return nil
}
func (m *memFastPath) Calls() (map[uint64][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64][]byte{}
	for k, v := range m.calls {
		out[k] = append([]byte(nil), v...)
	}
	return out, nil
}

// feed hands packets from src to the relay's socket s, as one received
// batch, through the packet loop's own handler.
func feed(r *Relay, s *sock, src netip.AddrPort, pkts ...[]byte) {
	for len(pkts) > 0 {
		b := newBatch()
		for b.n < batchSize && len(pkts) > 0 {
			p := pkts[0]
			pkts = pkts[1:]
			copy(b.bufs[b.n][:], p)
			b.hdrs[b.n].Len = uint32(len(p))
			addrPortToSockaddr(src, &b.names[b.n])
			b.n++
		}
		r.handle(s, b)
	}
}

// dropCount reads xtrunk_relay_userspace_drops_total{reason}.
func dropCount(t *testing.T, r *Relay, reason string) int {
	t.Helper()
	return counter(t, r, "xtrunk_relay_userspace_drops_total", "reason", reason)
}

// counter reads a counter of the relay's registry by one label.
func counter(t *testing.T, r *Relay, name, label, value string) int {
	t.Helper()
	mfs, err := r.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// srtpCall is a customer on SRTP and a carrier on plain RTP through a
// userspace relay on 127.0.0.1; the customer's end is a real socket, so
// what the relay encrypts toward it can be read back.
type srtpCall struct {
	r                *Relay
	cust             *net.UDPConn
	custAddr, carr   netip.AddrPort
	custKey          []byte
	relayKey         []byte // the relay's key toward the customer
	custSide, carrSd *sock  // the relay's RTP sockets facing each
}

func newSRTPCall(t *testing.T, r *Relay, id string, cust *net.UDPConn) *srtpCall {
	t.Helper()
	sc := &srtpCall{r: r, cust: cust, custKey: testKey(11), carr: netip.MustParseAddrPort("127.0.0.1:9")}
	sc.custAddr = cust.LocalAddr().(*net.UDPAddr).AddrPort()
	rep := serve(r, ng.Dict{"command": "offer", "call-id": id, "from-tag": "cust", "transport-protocol": "RTP/AVP",
		"sdp": savpSDP(sc.custAddr, "1 AES_CM_128_HMAC_SHA1_80 inline:"+base64.StdEncoding.EncodeToString(sc.custKey))})
	if rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	rep = serve(r, ng.Dict{"command": "answer", "call-id": id, "from-tag": "cust", "to-tag": "carr", "sdp": g711SDP(sc.carr.Addr(), int(sc.carr.Port()))})
	if rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	sc.relayKey = relayCrypto(t, rep.Str("sdp")).KeyParams[0].Key
	sc.sockets(t, id)
	return sc
}

func (sc *srtpCall) sockets(t *testing.T, id string) {
	t.Helper()
	sc.r.mu.Lock()
	c := sc.r.calls[id]
	sc.r.mu.Unlock()
	if c == nil {
		t.Fatalf("no call %s", id)
	}
	c.mu.Lock()
	sc.custSide, sc.carrSd = c.streams[0].ep[0].rtp, c.streams[0].ep[1].rtp
	c.mu.Unlock()
}

func (sc *srtpCall) endpoint(side int) *endpoint { return sc.custSide.ep.st.ep[side] }

// Forged SRTP with random SSRCs, from the customer's own address, gives
// pion no state at all (it would keep one per SSRC, before authentication);
// genuine SSRCs get state up to maxSSRCs, and the next is dropped with a
// reason of its own. The relay's encrypt context is bounded the same way.
func TestSRTPStateBounded(t *testing.T) {
	r := loopbackRelay(t)
	cust, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cust.Close()
	sc := newSRTPCall(t, r, "bounded", cust)
	e := sc.endpoint(0)

	buf := make([]byte, 172)
	forged := make([][]byte, 0, 2000)
	ssrcs := make([]uint32, 0, 2000)
	for i := 0; i < 2000; i++ {
		ssrc := rand.Uint32()
		p := append(rtpgen.Packet(buf, ssrc, uint16(i)), make([]byte, 10)...)
		binary.BigEndian.PutUint64(p[len(p)-10:], rand.Uint64()) // a made-up tag
		forged = append(forged, p)
		ssrcs = append(ssrcs, ssrc)
	}
	feed(r, sc.custSide, sc.custAddr, forged...)
	if n := dropCount(t, r, dropSRTPAuth); n != len(forged) {
		t.Errorf("%d forged packets dropped as srtp_auth, want %d", n, len(forged))
	}
	for _, ssrc := range ssrcs {
		if _, ok := e.dec.rtp.ROC(ssrc); ok {
			t.Fatalf("pion keeps state for forged SSRC %#x", ssrc)
		}
	}

	peer, _ := srtp.CreateContext(sc.custKey[:16], sc.custKey[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	for i := 0; i <= maxSSRCs; i++ {
		p, _ := peer.EncryptRTP(nil, rtpgen.Packet(buf, 0x1000+uint32(i), 1), nil)
		feed(r, sc.custSide, sc.custAddr, p)
	}
	for i := uint32(0); i <= maxSSRCs; i++ {
		if _, ok := e.dec.rtp.ROC(0x1000 + i); ok != (i < maxSSRCs) {
			t.Errorf("decrypt context, genuine SSRC %d of %d: state kept %v", i+1, maxSSRCs+1, ok)
		}
	}
	if n := dropCount(t, r, dropSRTPSSRCs); n != 1 {
		t.Errorf("%d packets dropped as srtp_ssrc_limit, want 1", n)
	}

	// the carrier side (plain, latched): its SSRCs are encrypted toward
	// the customer, and bounded too
	for i := 0; i <= maxSSRCs; i++ {
		feed(r, sc.carrSd, sc.carr, rtpgen.Packet(buf, 0x2000+uint32(i), 1))
	}
	for i := uint32(0); i <= maxSSRCs; i++ {
		if _, ok := e.enc.rtp.ROC(0x2000 + i); ok != (i < maxSSRCs) {
			t.Errorf("encrypt context, SSRC %d of %d: state kept %v", i+1, maxSSRCs+1, ok)
		}
	}
	if n := dropCount(t, r, dropSRTPSSRCs); n != 2 {
		t.Errorf("%d packets dropped as srtp_ssrc_limit, want 2", n)
	}
}

// A re-answer (or re-offer) that keeps the relay's key keeps its encrypt
// context: a new one under the same key would start the packet index over
// and repeat keystream. A leg that goes plain and back to SRTP under the
// same key goes on with the same context too; a new key gets a new one.
func TestSRTPReanswerKeepsContext(t *testing.T) {
	r := loopbackRelay(t)
	carrier := "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	offer := func() string {
		rep := serve(r, ng.Dict{"command": "offer", "call-id": "re", "from-tag": "carr", "sdp": carrier, "transport-protocol": "RTP/SAVP"})
		if rep.Str("result") != "ok" {
			t.Fatal(rep)
		}
		return rep.Str("sdp")
	}
	answer := func(body string) {
		rep := serve(r, ng.Dict{"command": "answer", "call-id": "re", "from-tag": "carr", "to-tag": "cust", "sdp": body})
		if rep.Str("result") != "ok" {
			t.Fatal(rep)
		}
	}
	cust := netip.MustParseAddrPort("198.51.100.4:6000")
	answerWith := func(tag int, suite string, seed byte) {
		answer(savpSDP(cust, fmt.Sprintf("%d %s inline:%s", tag, suite, base64.StdEncoding.EncodeToString(testKey(seed)))))
	}
	custEP := func() *endpoint {
		r.mu.Lock()
		c := r.calls["re"]
		r.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.streams[0].ep[1]
	}

	offer()
	answerWith(1, "AES_CM_128_HMAC_SHA1_80", 1)
	enc, dec := custEP().enc, custEP().dec
	// the relay has sent under its key: the index has moved
	p := rtpgen.Packet(make([]byte, 172, 200), 0x77, 65535)
	if _, err := enc.encrypt(p, false); err != nil {
		t.Fatal(err)
	}

	offer()
	answerWith(1, "AES_CM_128_HMAC_SHA1_80", 2) // the customer re-keys its side only
	if e := custEP(); e.enc != enc {
		t.Error("re-answer under the relay's same key made a new encrypt context (keystream reuse)")
	} else if e.dec == dec {
		t.Error("the customer's new key is decrypted with the old context")
	}

	answer(g711SDP(cust.Addr(), int(cust.Port()))) // goes plain...
	if custEP().srtp {
		t.Fatal("customer leg still SRTP after a plain answer")
	}
	offer()
	answerWith(1, "AES_CM_128_HMAC_SHA1_80", 2) // ...and back
	if custEP().enc != enc {
		t.Error("back to SRTP under the relay's same key with a new encrypt context (keystream reuse)")
	}
	offer()
	answerWith(2, "AES_CM_128_HMAC_SHA1_32", 2) // another relay key: another context
	if custEP().enc == enc {
		t.Error("a different relay key kept the old context")
	}
}

// The relay restarts (its calls re-adopted from the pinned call records)
// in the middle of an SRTP call whose sequence numbers have just rolled
// over: decrypting goes on at the party's rollover counter, and
// encrypting goes on past every index the previous process used, so the
// customer still authenticates every packet and no index is used twice.
func TestSRTPRestartNoIndexReuse(t *testing.T) {
	fp := newMemFastPath()
	cust, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cust.Close()

	first := loopbackRelay(t)
	first.fp = fp
	sc := newSRTPCall(t, first, "restart", cust)
	prof := srtp.ProtectionProfileAes128CmHmacSha1_80
	custEnc, _ := srtp.CreateContext(sc.custKey[:16], sc.custKey[16:], prof)
	custDec, _ := srtp.CreateContext(sc.relayKey[:16], sc.relayKey[16:], prof, srtp.SRTPReplayProtection(128))

	const ssrcIn, ssrcOut = 0xc0c0, 0xcaca
	buf := make([]byte, 172)
	seqIn, seqOut := uint16(65000), uint16(65000)
	// sendBoth sends n packets each way and returns the indexes (ROC<<16 |
	// seq) the customer decrypted, and how many failed.
	var got []uint64
	sendChunk := func(r *Relay, sc *srtpCall, n int) (bad int) {
		t.Helper()
		var in, out [][]byte
		for i := 0; i < n; i++ {
			p, _ := custEnc.EncryptRTP(nil, rtpgen.Packet(buf, ssrcIn, seqIn), nil)
			in = append(in, p)
			out = append(out, append([]byte(nil), rtpgen.Packet(buf, ssrcOut, seqOut)...))
			seqIn++
			seqOut++
		}
		feed(r, sc.custSide, sc.custAddr, in...)
		feed(r, sc.carrSd, sc.carr, out...)
		rb := make([]byte, 2048)
		for i := 0; i < n; i++ {
			_ = cust.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := cust.Read(rb)
			if err != nil {
				t.Fatalf("customer got %d of %d packets: %v", i, n, err)
			}
			plain, err := custDec.DecryptRTP(nil, rb[:k], nil)
			if err != nil {
				bad++
				continue
			}
			roc, _ := custDec.ROC(ssrcOut)
			got = append(got, uint64(roc)<<16|uint64(binary.BigEndian.Uint16(plain[2:])))
		}
		return bad
	}
	sendBoth := func(r *Relay, sc *srtpCall, n int) (bad int) {
		t.Helper()
		for ; n > 0; n -= min(n, 100) {
			bad += sendChunk(r, sc, min(n, 100))
		}
		return bad
	}
	if bad := sendBoth(first, sc, 1000); bad != 0 { // through the rollover
		t.Fatalf("%d packets failed at the customer before the restart", bad)
	}
	if roc, _ := custDec.ROC(ssrcOut); roc != 1 {
		t.Fatalf("customer's rollover counter %d, want 1", roc)
	}
	if n := dropCount(t, first, dropSRTPAuth); n != 0 {
		t.Fatalf("%d of the customer's packets failed authentication before the restart", n)
	}
	before := len(got)
	maxBefore := got[before-1]
	first.Close() // its pins stay: here, the records in fp

	second := loopbackRelay(t)
	second.fp = fp
	if err := second.adopt(); err != nil {
		t.Fatal(err)
	}
	sc.r = second
	sc.sockets(t, "restart")
	if bad := sendBoth(second, sc, 300); bad != 0 {
		t.Errorf("%d of 300 packets from the restarted relay failed at the customer", bad)
	}
	if n := dropCount(t, second, dropSRTPAuth); n != 0 {
		t.Errorf("%d of the customer's packets failed authentication after the restart (rollover counter lost)", n)
	}
	if len(got) != before+300 {
		t.Fatalf("customer decrypted %d packets after the restart, want 300", len(got)-before)
	}
	for _, idx := range got[before:] {
		if idx <= maxBefore {
			t.Fatalf("index %#x used after the restart, the previous process went up to %#x: keystream reused", idx, maxBefore)
		}
	}
}

// The decrypt context's own replay protection (RFC 3711 section 3.3.2):
// each index once, reordered packets within the window accepted, older
// ones refused, across a rollover too.
func TestSRTPReplayWindow(t *testing.T) {
	k, _ := newKeying(1, "AES_CM_128_HMAC_SHA1_80")
	dec, err := newCryptoCtx(k, true)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := srtp.CreateContext(k.Key[:16], k.Key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	buf := make([]byte, 172)
	wire := map[uint64][]byte{} // by index: what the peer sent
	send := func(roc uint32, seq uint16) {
		if _, ok := wire[uint64(roc)<<16|uint64(seq)]; ok {
			return
		}
		peer.SetROC(0x42, roc)
		p, err := peer.EncryptRTP(nil, rtpgen.Packet(buf, 0x42, seq), nil)
		if err != nil {
			t.Fatal(err)
		}
		wire[uint64(roc)<<16|uint64(seq)] = p
	}
	steps := []struct {
		roc  uint32
		seq  uint16
		want bool
	}{
		{0, 10, true},
		{0, 10, false}, // replay
		{0, 9, true},   // late, never seen
		{0, 9, false},
		{0, 210, true},
		{0, 83, true},  // 127 behind: still in the window
		{0, 82, false}, // 128 behind: too old
		{0, 11, false}, // far too old
		{0, 65535, true},
		{1, 0, true}, // rollover
		{0, 65535, false},
		{1, 0, false},
		{0, 65534, true},
	}
	for i, s := range steps {
		send(s.roc, s.seq)
		p := append(make([]byte, 0, 200), wire[uint64(s.roc)<<16|uint64(s.seq)]...)
		_, err := dec.decrypt(p, false)
		if got := err == nil; got != s.want {
			t.Errorf("step %d, index %d:%d: accepted %v (%v), want %v", i, s.roc, s.seq, got, err, s.want)
		}
	}
}

// A call with the most streams allowed, all SRTP on both sides, is
// persisted whole (its record spans several map values). One whose record
// cannot be stored at all is logged and counted, and the record it had
// before is removed: adopting that after a restart would bring back an
// older call, its SRTP contexts behind where they were.
func TestRecordSize(t *testing.T) {
	fp := newMemFastPath()
	r := loopbackRelay(t)
	r.fp = fp
	key := base64.StdEncoding.EncodeToString(testKey(8))
	many := savpSDP(netip.MustParseAddrPort("192.0.2.1:4000"), "1 AES_CM_128_HMAC_SHA1_80 inline:"+key)
	for i := 1; i < maxStreams; i++ {
		many += fmt.Sprintf("m=audio %d RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s\r\n", 4000+2*i, key)
	}
	for _, cmd := range []ng.Dict{
		{"command": "offer", "call-id": "big", "from-tag": "a", "sdp": many, "transport-protocol": "RTP/SAVP"},
		{"command": "answer", "call-id": "big", "from-tag": "a", "to-tag": "b", "sdp": strings.ReplaceAll(many, "192.0.2.1", "192.0.2.2")},
	} {
		if rep := serve(r, cmd); rep.Str("result") != "ok" {
			t.Fatal(rep)
		}
	}
	recs, _ := fp.Calls()
	if len(recs) != 1 {
		t.Fatalf("%d records for a call of %d SRTP streams, want 1", len(recs), maxStreams)
	}
	for _, b := range recs {
		t.Logf("record of %d SRTP ⇄ SRTP streams: %d bytes", maxStreams, len(b))
	}
	if n := counter(t, r, "xtrunk_relay_persist_errors_total", "reason", "too_large"); n != 0 {
		t.Errorf("%d records too large", n)
	}

	// an answerer's tag no record can hold
	serve(r, ng.Dict{"command": "delete", "call-id": "big"})
	one := savpSDP(netip.MustParseAddrPort("192.0.2.1:4000"), "1 AES_CM_128_HMAC_SHA1_80 inline:"+key)
	if rep := serve(r, ng.Dict{"command": "offer", "call-id": "huge", "from-tag": "a", "sdp": one}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	if recs, _ := fp.Calls(); len(recs) != 1 {
		t.Fatalf("%d records after the offer, want 1", len(recs))
	}
	huge := strings.Repeat("t", bpf.MaxCallRecord)
	if rep := serve(r, ng.Dict{"command": "answer", "call-id": "huge", "from-tag": "a", "to-tag": huge, "sdp": g711SDP(netip.MustParseAddr("192.0.2.2"), 5000)}); rep.Str("result") != "ok" {
		t.Fatal(rep)
	}
	if n := counter(t, r, "xtrunk_relay_persist_errors_total", "reason", "too_large"); n == 0 {
		t.Error("a record over the limit was not counted")
	}
	if recs, _ := fp.Calls(); len(recs) != 0 {
		t.Errorf("the call's older record is still there to be adopted: %d records", len(recs))
	}
}
