package relay

import (
	"strings"

	"github.com/xtrunk/xtrunk/relay/sdp"
)

func isSAVP(proto string) bool { return strings.Contains(strings.ToUpper(proto), "SAVP") }

// negotiateSRTP applies SDES (RFC 4568) for one m= line: e is the party the
// SDP comes from, pe the one it goes to. Each party's leg is SRTP or plain
// on its own; the relay terminates SRTP on every SRTP leg (decrypting with
// the party's key, encrypting with a fresh key of its own), so RTP ⇄ SRTP
// and SRTP ⇄ SRTP (re-keyed) both work. It edits m's proto and crypto
// lines for pe. Caller holds the call's lock.
func (r *Relay) negotiateSRTP(e, pe *endpoint, m *sdp.Media, o opts, isAnswer bool) error {
	e.proto = m.Proto
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
			return err
		}
		if !e.srtp || !e.keyIn.equal(k) {
			out := k
			if isAnswer {
				out = e.offeredKey(k.Tag)
			} else if out, err = newKeying(k.Tag, k.Suite); err != nil {
				return err
			}
			if err := e.setKeys(k, out); err != nil {
				return err
			}
		}
	} else {
		e.clearKeys()
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
			if err := pe.offerKeys(e, o.sdes); err != nil {
				return err
			}
			for _, k := range pe.offered {
				m.AddAttr("crypto", k.attr())
			}
		}
	} else if isAnswer {
		// the offerer asked for SRTP and gets plain RTP: its leg is plain
		pe.clearKeys()
	}
	if outProto != m.Proto {
		m.SetProto(outProto)
	}
	return nil
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

// offerKeys makes the relay's keys to offer to this party: one per allowed
// suite, the offerer's chosen suite first. Keys already offered are kept
// (a re-offer must not re-key a running call).
func (e *endpoint) offerKeys(from *endpoint, o sdesOpts) error {
	var suites []string
	if from.srtp && o.allowed(from.keyIn.Suite) {
		suites = append(suites, from.keyIn.Suite)
	}
	for _, s := range sdesSuites {
		if o.allowed(s.name) && (len(suites) == 0 || suites[0] != s.name) {
			suites = append(suites, s.name)
		}
	}
	if len(suites) == 0 {
		return ErrNoCrypto
	}
	same := len(e.offered) == len(suites)
	for i := 0; same && i < len(suites); i++ {
		same = e.offered[i].Suite == suites[i]
	}
	if same {
		return nil
	}
	e.offered = e.offered[:0]
	for i, s := range suites {
		k, err := newKeying(i+1, s)
		if err != nil {
			return err
		}
		e.offered = append(e.offered, k)
	}
	return nil
}

func (e *endpoint) setKeys(in, out keying) error {
	dec, err := newCryptoCtx(in, true)
	if err != nil {
		return err
	}
	enc, err := newCryptoCtx(out, false)
	if err != nil {
		return err
	}
	e.srtp, e.keyIn, e.keyOut, e.dec, e.enc = true, in, out, dec, enc
	return nil
}

func (e *endpoint) clearKeys() {
	e.srtp, e.keyIn, e.keyOut, e.dec, e.enc = false, keying{}, keying{}, nil, nil
}
