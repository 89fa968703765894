package relay

import (
	"crypto/aes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"
)

// maxSSRCs bounds the SSRCs one SRTP context keeps state for. pion/srtp
// makes that state (a map entry and a replay window) for any SSRC it is
// handed, before the packet authenticates: unbounded, forged packets with
// random SSRCs would grow the relay's memory without limit. A call's
// party sends one SSRC, a few more over re-INVITEs; eight is plenty.
const maxSSRCs = 8

// Index leases: an encrypt context may use this many packet indexes
// (SRTP) or SRTCP indexes past what the call record holds; reaching the
// end of its lease, it has the record written again before the packet
// leaves. A relay restarting from the record starts past the lease, so
// it never encrypts under an index the previous process may have used
// (RFC 3711 section 9.1: a repeated index under one key repeats
// keystream). About 80 s of G.711 per record write.
const (
	rtpLease  = 1 << 12
	rtcpLease = 1 << 8
	// a restart moves the sequence numbers forward by up to a lease;
	// receivers guess the rollover counter right within half the space
	maxSeqJump = 1 << 14
)

// cryptoCtx is one direction's SRTP and SRTCP state. pion's contexts are
// not safe for concurrent use, and RTP and RTCP toward one party can be
// sent from two sockets' loops, hence the mutex (uncontended in practice).
type cryptoCtx struct {
	mu    sync.Mutex
	rtp   *srtp.Context
	rtcp  *srtp.Context
	hdr   rtp.Header
	rhdr  rtcp.Header
	limit uint64 // key lifetime in packets; 0 = none
	used  uint64

	// Decrypt side: the session authentication keys, to check the first
	// packet of an SSRC before pion keeps state for it.
	isDec            bool
	authRTP, authRTC hash.Hash
	tagRTP, tagRTCP  int
	mac              [sha1.Size]byte
	roc              [4]byte

	ssrcs  []ssrcState // RTP SSRCs with state in pion, at most maxSSRCs
	rssrcs []rtcpState // SRTCP likewise

	// The state moves (a lease runs out, a rollover counter moves) to
	// version moved; the call record holds version saved. Until they are
	// equal the record must be written before what was encrypted leaves.
	moved, saved atomic.Uint64

	// authFail counts packets that failed authentication (or replay).
	authFail atomic.Uint64
}

func newCryptoCtx(k keying, decrypt bool) (*cryptoCtx, error) {
	prof, ok := suiteProfile(k.Suite)
	if !ok || len(k.Key) != sdesKeyLen {
		return nil, fmt.Errorf("%w: %s", ErrNoCrypto, k.Suite)
	}
	key, salt := k.Key[:16], k.Key[16:]
	// SRTP replay protection is the context's own (ssrcState.replayed):
	// pion's allocates a closure for every packet it checks
	var copts []srtp.ContextOption
	if decrypt {
		copts = append(copts, srtp.SRTCPReplayProtection(replayWindow))
	}
	r, err := srtp.CreateContext(key, salt, prof)
	if err != nil {
		return nil, fmt.Errorf("srtp context: %w", err)
	}
	c, err := srtp.CreateContext(key, salt, prof, copts...)
	if err != nil {
		return nil, fmt.Errorf("srtcp context: %w", err)
	}
	ctx := &cryptoCtx{rtp: r, rtcp: c, limit: k.Lifetime, isDec: decrypt,
		ssrcs: make([]ssrcState, 0, maxSSRCs), rssrcs: make([]rtcpState, 0, maxSSRCs)}
	if decrypt {
		ctx.tagRTP, _ = prof.AuthTagRTPLen()
		ctx.tagRTCP, _ = prof.AuthTagRTCPLen()
		n, _ := prof.AuthKeyLen()
		ka, err := deriveSessionKey(labelSRTPAuth, key, salt, n)
		if err != nil {
			return nil, err
		}
		kc, err := deriveSessionKey(labelSRTCPAuth, key, salt, n)
		if err != nil {
			return nil, err
		}
		ctx.authRTP, ctx.authRTC = hmac.New(sha1.New, ka), hmac.New(sha1.New, kc)
	}
	return ctx, nil
}

// RFC 3711 section 4.3.2 key derivation labels.
const (
	labelSRTPAuth  = 0x01
	labelSRTCPAuth = 0x04
)

// deriveSessionKey is the AES-CM PRF of RFC 3711 section 4.3.3 with a key
// derivation rate of 0 (the only rate SDES uses here).
func deriveSessionKey(label byte, masterKey, masterSalt []byte, n int) ([]byte, error) {
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("srtp key derivation: %w", err)
	}
	var iv [16]byte
	copy(iv[:], masterSalt)
	iv[7] ^= label
	out := make([]byte, (n+15)/16*16)
	for i := 0; i < len(out); i += 16 {
		binary.BigEndian.PutUint16(iv[14:], uint16(i/16))
		block.Encrypt(out[i:i+16], iv[:])
	}
	return out[:n], nil
}

func (c *cryptoCtx) findRTP(ssrc uint32) *ssrcState {
	for i := range c.ssrcs {
		if c.ssrcs[i].ssrc == ssrc {
			return &c.ssrcs[i]
		}
	}
	return nil
}

func (c *cryptoCtx) findRTCP(ssrc uint32) *rtcpState {
	for i := range c.rssrcs {
		if c.rssrcs[i].ssrc == ssrc {
			return &c.rssrcs[i]
		}
	}
	return nil
}

// authentic checks an SRTP (rtcp false, under rollover counter roc) or
// SRTCP packet's tag with the session authentication key.
func (c *cryptoCtx) authentic(p []byte, isRTCP bool, roc uint32) bool {
	h, tag := c.authRTP, c.tagRTP
	if isRTCP {
		h, tag = c.authRTC, c.tagRTCP
	}
	h.Reset()
	h.Write(p[:len(p)-tag])
	if !isRTCP {
		binary.BigEndian.PutUint32(c.roc[:], roc)
		h.Write(c.roc[:])
	}
	sum := h.Sum(c.mac[:0])
	return hmac.Equal(sum[:tag], p[len(p)-tag:])
}

// admit checks the first packet of an SSRC not seen yet, n being how
// many are known: within maxSSRCs, and authentic (a new SSRC starts at
// rollover counter 0, as pion assumes).
func (c *cryptoCtx) admit(p []byte, n int, isRTCP bool) error {
	if n >= maxSSRCs {
		return errSSRCLimit
	}
	if !c.authentic(p, isRTCP, 0) {
		c.authFail.Add(1)
		return errAuth
	}
	return nil
}

// decrypt authenticates and decrypts p in place. A packet of an SSRC the
// context has no state for yet must authenticate before pion sees it, and
// no more than maxSSRCs ever get state.
func (c *cryptoCtx) decrypt(p []byte, isRTCP bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit != 0 && c.used >= c.limit {
		return nil, errKeyExpired
	}
	var out []byte
	var err error
	if isRTCP {
		if len(p) < 8+4+c.tagRTCP {
			return nil, errShort
		}
		ssrc := binary.BigEndian.Uint32(p[4:])
		if c.findRTCP(ssrc) == nil {
			if err := c.admit(p, len(c.rssrcs), true); err != nil {
				return nil, err
			}
			c.rssrcs = append(c.rssrcs, rtcpState{ssrc: ssrc})
		}
		// dst is p itself, not p[:0] as for RTP: pion's SRTCP code copies
		// src into dst "if they differ", and growing an empty alias of p
		// zeroes p before the copy, so every SRTCP packet failed auth.
		out, err = c.rtcp.DecryptRTCP(p, p, &c.rhdr)
	} else {
		if len(p) < 12+c.tagRTP {
			return nil, errShort
		}
		ssrc := ssrcOf(p)
		st := c.findRTP(ssrc)
		if st == nil {
			if err := c.admit(p, len(c.ssrcs), false); err != nil {
				return nil, err
			}
			c.ssrcs = append(c.ssrcs, ssrcState{ssrc: ssrc})
			st = &c.ssrcs[len(c.ssrcs)-1]
		}
		seq := binary.BigEndian.Uint16(p[2:])
		idx, diff := st.guess(seq) // the index pion will authenticate it under
		if st.replayed(idx) {
			c.authFail.Add(1)
			return nil, errReplay
		}
		out, err = c.rtp.DecryptRTP(p[:0], p, &c.hdr)
		if err == nil {
			st.accept(seq, idx, diff)
			if roc := uint32(st.index >> 16); roc != st.roc {
				st.roc = roc
				c.moved.Add(1)
			}
		}
	}
	if err != nil {
		c.authFail.Add(1)
		return nil, err
	}
	c.used++
	return out, nil
}

// encrypt encrypts p in place; p's capacity must hold the auth tag (and
// the SRTCP index). Packets of more than maxSSRCs SSRCs are refused.
func (c *cryptoCtx) encrypt(p []byte, isRTCP bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit != 0 && c.used >= c.limit {
		return nil, errKeyExpired
	}
	if isRTCP {
		return c.encryptRTCP(p)
	}
	if len(p) < 12 {
		return nil, errShort
	}
	ssrc := ssrcOf(p)
	st := c.findRTP(ssrc)
	if st == nil {
		if len(c.ssrcs) >= maxSSRCs {
			return nil, errSSRCLimit
		}
		c.ssrcs = append(c.ssrcs, ssrcState{ssrc: ssrc})
		st = &c.ssrcs[len(c.ssrcs)-1]
	}
	seq := binary.BigEndian.Uint16(p[2:])
	if st.pending {
		// the first packet after a restart: go on just past the lease,
		// moving the sequence numbers forward if the sender's are behind
		next, _ := (&ssrcState{index: st.lease, started: true}).guess(seq)
		if next <= st.lease {
			if st.lease+1-next > maxSeqJump {
				return nil, errIndexUsed
			}
			st.off = uint16(st.lease+1) - seq
			next = st.lease + 1
		}
		c.rtp.SetROC(ssrc, uint32(next>>16))
		st.index, st.started, st.pending = next&^0xffff, false, false
	}
	if st.off != 0 {
		seq += st.off
		binary.BigEndian.PutUint16(p[2:], seq)
	}
	idx, diff := st.guess(seq)
	if st.hasFloor {
		if idx <= st.floor {
			return nil, errIndexUsed
		}
		if idx > st.floor+1<<16 {
			st.hasFloor = false // no estimate can fall back there now
		}
	}
	out, err := c.rtp.EncryptRTP(p[:0], p, &c.hdr)
	if err != nil {
		return nil, err
	}
	st.advance(seq, diff)
	if !st.leased || st.index > st.lease {
		st.leased, st.lease = true, st.index+rtpLease
		c.moved.Add(1)
	}
	c.used++
	return out, nil
}

func (c *cryptoCtx) encryptRTCP(p []byte) ([]byte, error) {
	if len(p) < 8 {
		return nil, errShort
	}
	ssrc := binary.BigEndian.Uint32(p[4:])
	st := c.findRTCP(ssrc)
	if st == nil {
		if len(c.rssrcs) >= maxSSRCs {
			return nil, errSSRCLimit
		}
		c.rssrcs = append(c.rssrcs, rtcpState{ssrc: ssrc})
		st = &c.rssrcs[len(c.rssrcs)-1]
	}
	out, err := c.rtcp.EncryptRTCP(p, p, &c.rhdr) // p, not p[:0]: see decrypt
	if err != nil {
		return nil, err
	}
	if idx, _ := c.rtcp.Index(ssrc); !st.leased || idx > st.lease {
		st.leased, st.lease = true, min(idx+rtcpLease, 1<<31-1)
		c.moved.Add(1)
	}
	c.used++
	return out, nil
}
