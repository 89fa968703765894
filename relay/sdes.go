package relay

import (
	"strings"

	"github.com/xtrunk/xtrunk/relay/sdp"
)

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
func planSRTP(e, pe *endpoint, m *sdp.Media, o opts, isAnswer bool) (srtpPlan, error) {
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
			k, err = pickCrypto(cs, o.sdes)
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
	if o.transport != "" {
		outProto = o.transport // ...unless told otherwise
	}
	m.RemoveAttrs("crypto")
	if isSAVP(outProto) && m.Port != 0 {
		if isAnswer {
			if pe.srtp {
				m.AddAttr("crypto", pe.keyOut.attr())
			}
		} else if !o.sdes.off {
			offered, err := pe.keysToOffer(eSRTP, eSuite, o.sdes)
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
	return pickCrypto(ok, sdesOpts{})
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
func (e *endpoint) keysToOffer(srtp bool, suite string, o sdesOpts) ([]keying, error) {
	var suites []string
	if srtp && o.allowed(suite) {
		suites = append(suites, suite)
	}
	for _, s := range sdesSuites {
		if o.allowed(s.name) && (len(suites) == 0 || suites[0] != s.name) {
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
	ks := &keySet{in: in, out: out}
	if e.dec != nil && sameKey(e.keyIn, in) {
		ks.dec = e.dec
	} else {
		dec, err := newCryptoCtx(in, true)
		if err != nil {
			return nil, err
		}
		ks.dec = dec
	}
	if e.enc != nil && sameKey(e.keyOut, out) {
		ks.enc = e.enc
	} else {
		enc, err := newCryptoCtx(out, false)
		if err != nil {
			return nil, err
		}
		ks.enc = enc
	}
	return ks, nil
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
