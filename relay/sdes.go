package relay

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strings"

	"github.com/pion/srtp/v2"

	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/relay/sdp"
)

// SDES (RFC 4568) negotiation: which suites and keys each party's leg
// uses, decided per m= line from the SDP and the offer's SDES options.
// The SRTP contexts those keys drive are in srtp.go.

// SDES suites the relay terminates (RFC 4568), in its default order of
// preference.
var sdesSuites = []struct {
	name    string
	profile srtp.ProtectionProfile
}{
	{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80},
	{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32},
}

const sdesKeyLen = 30 // 128-bit master key + 112-bit salt

func suiteProfile(name string) (srtp.ProtectionProfile, bool) {
	for _, s := range sdesSuites {
		if s.name == name {
			return s.profile, true
		}
	}
	return 0, false
}

// keying is one SRTP master key: the party's (to decrypt what it sends)
// or the relay's (to encrypt what it receives).
type keying struct {
	Tag      int    `json:"tag"`
	Suite    string `json:"suite"`
	Key      []byte `json:"key"` // master key || master salt
	Lifetime uint64 `json:"life,omitempty"`
}

func newKeying(tag int, suite string) (keying, error) {
	k := keying{Tag: tag, Suite: suite, Key: make([]byte, sdesKeyLen)}
	if _, err := rand.Read(k.Key); err != nil {
		return k, fmt.Errorf("srtp key: %w", err)
	}
	return k, nil
}

// attr is the a=crypto value announcing k.
func (k keying) attr() string {
	c := sdp.Crypto{Tag: k.Tag, Suite: k.Suite, KeyParams: []sdp.KeyParam{{Method: "inline", Key: k.Key, Lifetime: k.Lifetime}}}
	return c.String()
}

func (k keying) equal(o keying) bool {
	return k.Tag == o.Tag && k.Suite == o.Suite && string(k.Key) == string(o.Key)
}

// suiteAllowed says whether the relay may use suite under the SDES
// options ("no-SUITE" forbids it, "only-SUITE" allows it alone).
func suiteAllowed(o ng.SDES, suite string) bool {
	if _, ok := suiteProfile(suite); !ok || slices.Contains(o.No, suite) {
		return false
	}
	return len(o.Only) == 0 || slices.Contains(o.Only, suite)
}

// pickCrypto chooses the party's first acceptable crypto line, in its order
// of preference. MKI is not supported: an offer whose only usable lines
// carry MKI is refused with a reason signalling can turn into a 488.
func pickCrypto(cs []sdp.Crypto, o ng.SDES) (keying, error) {
	sawMKI := false
	for _, c := range cs {
		if !suiteAllowed(o, c.Suite) || len(c.KeyParams) != 1 {
			continue
		}
		kp := c.KeyParams[0]
		if kp.HasMKI {
			sawMKI = true
			continue
		}
		if kp.Method != "inline" || len(kp.Key) != sdesKeyLen {
			continue
		}
		return keying{Tag: c.Tag, Suite: c.Suite, Key: append([]byte(nil), kp.Key...), Lifetime: kp.Lifetime}, nil
	}
	if sawMKI {
		return keying{}, ErrMKI
	}
	return keying{}, ErrNoCrypto
}

func isSAVP(proto string) bool { return strings.Contains(strings.ToUpper(proto), "SAVP") }

// srtpPlan is the outcome of SDES negotiation for one m= line, decided
// before the call changes (a refused command changes nothing) and applied
// once every line has been checked.
type srtpPlan struct {
	proto     string   // e's own transport protocol
	keys      *keySet  // e's new keys; nil = unchanged
	clear     bool     // e's leg is plain
	offered   []keying // the relay's keys offered to pe; nil = unchanged
	clearPeer bool     // pe asked for SRTP and gets plain RTP
}

// keySet is an SRTP leg's two keys and their contexts.
type keySet struct {
	in, out  keying
	dec, enc *cryptoCtx
}

// planSRTP applies SDES (RFC 4568) for one m= line: e is the party the SDP
// comes from, pe the one it goes to. Each party's leg is SRTP or plain on
// its own; the relay terminates SRTP on every SRTP leg (decrypting with
// the party's key, encrypting with a key of its own), so RTP ⇄ SRTP and
// SRTP ⇄ SRTP (re-keyed) both work. It edits m's proto and crypto lines
// for pe, and reads but does not change e and pe: the plan says what
// changes. Caller holds the call's lock.
func planSRTP(e, pe *endpoint, m *sdp.Media, o *ng.Params, isAnswer bool) (srtpPlan, error) {
	p := srtpPlan{proto: m.Proto}
	var eSRTP bool // e's leg as it will be, and its suite
	var eSuite string
	if isSAVP(m.Proto) && m.Port != 0 {
		cs, _ := m.Cryptos() // unusable lines are skipped, as if absent
		var k keying
		var err error
		if isAnswer {
			k, err = pickAnswerCrypto(cs, e.offered)
		} else {
			k, err = pickCrypto(cs, o.SDES)
		}
		if err != nil {
			return p, err
		}
		if !e.srtp || !e.keyIn.equal(k) {
			out := k
			if isAnswer {
				out = e.offeredKey(k.Tag)
			} else if out, err = newKeying(k.Tag, k.Suite); err != nil {
				return p, err
			}
			if p.keys, err = e.keysFor(k, out); err != nil {
				return p, err
			}
		}
		eSRTP, eSuite = true, k.Suite
	} else {
		p.clear = true
	}

	// what goes to pe
	outProto := m.Proto
	if isAnswer {
		outProto = pe.proto // answer in the offerer's own profile...
	}
	if o.TransportProtocol != "" {
		outProto = o.TransportProtocol // ...unless told otherwise
	}
	m.RemoveAttrs("crypto")
	if isSAVP(outProto) && m.Port != 0 {
		if isAnswer {
			if pe.srtp {
				m.AddAttr("crypto", pe.keyOut.attr())
			}
		} else if !o.SDES.Off {
			offered, err := pe.keysToOffer(eSRTP, eSuite, o.SDES)
			if err != nil {
				return p, err
			}
			p.offered = offered
			for _, k := range offered {
				m.AddAttr("crypto", k.attr())
			}
		}
	} else if isAnswer {
		// the offerer asked for SRTP and gets plain RTP: its leg is plain
		p.clearPeer = true
	}
	if outProto != m.Proto {
		m.SetProto(outProto)
	}
	return p, nil
}

// apply makes the plan so. It cannot fail.
func (p srtpPlan) apply(e, pe *endpoint) {
	e.proto = p.proto
	switch {
	case p.keys != nil:
		e.srtp, e.keyIn, e.keyOut, e.dec, e.enc = true, p.keys.in, p.keys.out, p.keys.dec, p.keys.enc
	case p.clear:
		e.clearKeys()
	}
	if p.offered != nil {
		pe.offered = p.offered
	}
	if p.clearPeer {
		pe.clearKeys()
	}
}

// pickAnswerCrypto finds the answerer's crypto line matching one the relay
// offered (same tag and suite).
func pickAnswerCrypto(cs []sdp.Crypto, offered []keying) (keying, error) {
	var ok []sdp.Crypto
	for _, c := range cs {
		for _, k := range offered {
			if c.Tag == k.Tag && c.Suite == k.Suite {
				ok = append(ok, c)
			}
		}
	}
	return pickCrypto(ok, ng.SDES{})
}

func (e *endpoint) offeredKey(tag int) keying {
	for _, k := range e.offered {
		if k.Tag == tag {
			return k
		}
	}
	return keying{}
}

// keysToOffer returns the relay's keys to offer to this party: one per
// allowed suite, the offerer's chosen suite first (srtp and suite say
// what the offerer's leg will be). The keys already offered are returned
// when the suites are the same: a re-offer must not re-key a running
// call.
func (e *endpoint) keysToOffer(srtp bool, suite string, o ng.SDES) ([]keying, error) {
	var suites []string
	if srtp && suiteAllowed(o, suite) {
		suites = append(suites, suite)
	}
	for _, s := range sdesSuites {
		if suiteAllowed(o, s.name) && (len(suites) == 0 || suites[0] != s.name) {
			suites = append(suites, s.name)
		}
	}
	if len(suites) == 0 {
		return nil, ErrNoCrypto
	}
	same := len(e.offered) == len(suites)
	for i := 0; same && i < len(suites); i++ {
		same = e.offered[i].Suite == suites[i]
	}
	if same {
		return e.offered, nil
	}
	offered := make([]keying, 0, len(suites))
	for i, s := range suites {
		k, err := newKeying(i+1, s)
		if err != nil {
			return nil, err
		}
		offered = append(offered, k)
	}
	return offered, nil
}

// keysFor makes the contexts of a leg keyed in (the party's) and out (the
// relay's). A context whose key does not change is kept, not made anew:
// a fresh encrypt context under the same key would start the packet
// index again and repeat keystream (RFC 3711 section 9.1), and a fresh
// decrypt context would forget which packets it has seen (replays).
func (e *endpoint) keysFor(in, out keying) (*keySet, error) {
	dec, err := keepOrNew(e.dec, e.keyIn, in, true)
	if err != nil {
		return nil, err
	}
	enc, err := keepOrNew(e.enc, e.keyOut, out, false)
	if err != nil {
		return nil, err
	}
	return &keySet{in: in, out: out, dec: dec, enc: enc}, nil
}

// keepOrNew is cur when it already works under k's key, else a new
// context for k.
func keepOrNew(cur *cryptoCtx, curKey, k keying, decrypt bool) (*cryptoCtx, error) {
	if cur != nil && sameKey(curKey, k) {
		return cur, nil
	}
	return newCryptoCtx(k, decrypt)
}

// sameKey: the same master key and salt under the same suite, whatever
// the tag or lifetime says.
func sameKey(a, b keying) bool {
	return a.Suite == b.Suite && len(a.Key) > 0 && string(a.Key) == string(b.Key)
}

// clearKeys makes the leg plain. Its keys and contexts are kept: should
// it go back to SRTP under the same key, the contexts go on from where
// they were (see keysFor).
func (e *endpoint) clearKeys() { e.srtp = false }
