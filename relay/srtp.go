package relay

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"

	"github.com/xtrunk/xtrunk/relay/sdp"
)

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

// sdesOpts are rtpengine's SDES flags: "off", "no-SUITE", "only-SUITE".
type sdesOpts struct {
	off  bool
	no   map[string]bool
	only map[string]bool
}

func parseSDES(list []string) sdesOpts {
	var o sdesOpts
	for _, v := range list {
		v = strings.TrimSpace(v)
		switch {
		case strings.EqualFold(v, "off"):
			o.off = true
		case len(v) > 3 && strings.EqualFold(v[:3], "no-"):
			if o.no == nil {
				o.no = map[string]bool{}
			}
			o.no[strings.ToUpper(v[3:])] = true
		case len(v) > 5 && strings.EqualFold(v[:5], "only-"):
			if o.only == nil {
				o.only = map[string]bool{}
			}
			o.only[strings.ToUpper(v[5:])] = true
		}
	}
	return o
}

func (o sdesOpts) allowed(suite string) bool {
	if _, ok := suiteProfile(suite); !ok || o.no[suite] {
		return false
	}
	return o.only == nil || o.only[suite]
}

// pickCrypto chooses the party's first acceptable crypto line, in its order
// of preference. MKI is not supported: an offer whose only usable lines
// carry MKI is refused with a reason signalling can turn into a 488.
func pickCrypto(cs []sdp.Crypto, o sdesOpts) (keying, error) {
	sawMKI := false
	for _, c := range cs {
		if !o.allowed(c.Suite) || len(c.KeyParams) != 1 {
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

	// authFail counts packets that failed authentication (or replay).
	authFail atomic.Uint64
}

func newCryptoCtx(k keying, decrypt bool) (*cryptoCtx, error) {
	prof, ok := suiteProfile(k.Suite)
	if !ok || len(k.Key) != sdesKeyLen {
		return nil, fmt.Errorf("%w: %s", ErrNoCrypto, k.Suite)
	}
	key, salt := k.Key[:16], k.Key[16:]
	var ropts, copts []srtp.ContextOption
	if decrypt {
		ropts = append(ropts, srtp.SRTPReplayProtection(128))
		copts = append(copts, srtp.SRTCPReplayProtection(128))
	}
	r, err := srtp.CreateContext(key, salt, prof, ropts...)
	if err != nil {
		return nil, fmt.Errorf("srtp context: %w", err)
	}
	c, err := srtp.CreateContext(key, salt, prof, copts...)
	if err != nil {
		return nil, fmt.Errorf("srtcp context: %w", err)
	}
	return &cryptoCtx{rtp: r, rtcp: c, limit: k.Lifetime}, nil
}

// decrypt authenticates and decrypts p in place.
func (c *cryptoCtx) decrypt(p []byte, isRTCP bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit != 0 && c.used >= c.limit {
		return nil, errKeyExpired
	}
	var out []byte
	var err error
	if isRTCP {
		// dst is p itself, not p[:0] as for RTP: pion's SRTCP code copies
		// src into dst "if they differ", and growing an empty alias of p
		// zeroes p before the copy, so every SRTCP packet failed auth.
		out, err = c.rtcp.DecryptRTCP(p, p, &c.rhdr)
	} else {
		out, err = c.rtp.DecryptRTP(p[:0], p, &c.hdr)
	}
	if err != nil {
		c.authFail.Add(1)
		return nil, err
	}
	c.used++
	return out, nil
}

// encrypt encrypts p in place; p's capacity must hold the auth tag.
func (c *cryptoCtx) encrypt(p []byte, isRTCP bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit != 0 && c.used >= c.limit {
		return nil, errKeyExpired
	}
	c.used++
	if isRTCP {
		return c.rtcp.EncryptRTCP(p, p, &c.rhdr) // p, not p[:0]: see decrypt
	}
	return c.rtp.EncryptRTP(p[:0], p, &c.hdr)
}

var errKeyExpired = errors.New("srtp key lifetime exceeded")
