package signalling

import (
	"bytes"
	"strings"

	"github.com/xtrunk/xtrunk/control/store"
)

// Call quality as a MOS, by the ITU-T G.107 E-model (06/2015), from what
// the relay measured on a leg (loss, jitter) and the codec negotiated.
//
//	R = R0 - Is - Id - Ie,eff + A                              (G.107 eq. 3-1)
//	R0 - Is = 93.2: the G.107 default values of every other parameter
//	  (SLR 8, RLR 2, Nc -70 dBm0p, Ps = Pr = 35 dB(A)...; Table 3),
//	  93.2 as Cole & Rosenbluth, "Voice over IP performance monitoring",
//	  ACM CCR 31(2), 2001, compute it
//	A = 0 (the advantage factor of wired access)
//	Id: the delay impairment, by Cole & Rosenbluth's fit of G.107's Idd
//	  for the one-way delay d (ms) in ms:
//	    Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)
//	  where d is the codec's frame and look-ahead (codecParams.delayMs)
//	  plus a jitter buffer sized at twice the measured jitter; the
//	  network's own one-way delay is not measured by the relay and is
//	  left out (an estimate that errs towards a better score).
//	Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl/BurstR + Bpl)          (G.107 eq. 3-29)
//	  Ppl the packet loss in percent, BurstR = 1 (random loss: the relay
//	  does not measure burstiness), Ie and Bpl of the codec from ITU-T
//	  G.113 Appendix I (Table I.1 and I.3).
//	MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6 for 0 < R < 100,
//	  1 below, 4.5 above                                        (G.107 eq. B-4)
const (
	emodelR0minusIs = 93.2
	emodelBurstR    = 1.0
)

// codecParams are a codec's E-model parameters (G.113 Appendix I).
type codecParams struct {
	ie      float64 // equipment impairment factor
	bpl     float64 // packet-loss robustness factor
	delayMs float64 // frame plus look-ahead (G.114 Table 1)
}

// codecs by lower-case rtpmap encoding name. G.711 with packet loss
// concealment (G.711 Appendix I: Bpl 25.1), as every current endpoint
// has; G.722 is scored on the narrow-band scale as G.711 (G.107.1's
// wide-band scale is another range).
var codecs = map[string]codecParams{
	"pcmu": {ie: 0, bpl: 25.1, delayMs: 20},
	"pcma": {ie: 0, bpl: 25.1, delayMs: 20},
	"g722": {ie: 0, bpl: 25.1, delayMs: 21.5},
	"g729": {ie: 11, bpl: 19, delayMs: 25},
	"gsm":  {ie: 20, bpl: 10, delayMs: 20},
	"ilbc": {ie: 11, bpl: 32, delayMs: 40},
	"opus": {ie: 0, bpl: 25.1, delayMs: 26.5},
}

// staticPT are the RFC 3551 static payload types' encodings.
var staticPT = map[string]string{"0": "pcmu", "8": "pcma", "9": "g722", "18": "g729", "3": "gsm"}

// mos is the E-model MOS of a leg with lossRatio (0..1) of its packets
// lost and jitterMs of interarrival jitter, in codec (an encoding name;
// unknown: G.711).
func mos(lossRatio, jitterMs float64, codec string) float64 {
	p, ok := codecs[strings.ToLower(codec)]
	if !ok {
		p = codecs["pcmu"]
	}
	d := p.delayMs + 2*max(jitterMs, 0)
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ppl := min(max(lossRatio, 0), 1) * 100
	ieEff := p.ie + (95-p.ie)*ppl/(ppl/emodelBurstR+p.bpl)
	r := emodelR0minusIs - id - ieEff
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
}

// sdpCodec is the encoding name of the first payload type of the first
// audio m= line of an SDP ("" if none is found).
func sdpCodec(sdp []byte) string {
	pt := ""
	for line := range bytes.Lines(sdp) {
		// Only the m= and a=rtpmap: lines become strings: this runs for
		// every call and most lines are neither.
		if !bytes.HasPrefix(line, []byte("m=")) && (pt == "" || !bytes.HasPrefix(line, []byte("a=rtpmap:"))) {
			continue
		}
		l := strings.TrimRight(string(line), "\r\n")
		if pt == "" {
			if f := strings.Fields(l); len(f) > 3 && f[0] == "m=audio" {
				pt = f[3]
				if name, ok := staticPT[pt]; ok {
					return name
				}
			}
			continue
		}
		if rest, ok := strings.CutPrefix(l, "a=rtpmap:"+pt+" "); ok {
			name, _, _ := strings.Cut(rest, "/")
			return strings.ToLower(strings.TrimSpace(name))
		}
		if strings.HasPrefix(l, "m=") {
			break
		}
	}
	return ""
}

// lossRatio is the share of a leg's packets lost: lost over expected
// (received + lost).
func lossRatio(q store.LegQuality) float64 {
	lost := max(q.PacketsLost, 0)
	exp := float64(q.PacketsReceived) + float64(lost)
	if exp == 0 {
		return 0
	}
	return float64(lost) / exp
}

// codec is the call's negotiated encoding: the first of the SDP last sent
// to the customer (the relay's answer carries the codec both agreed on).
func (c *call) codec() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p.customerIsA() {
		return sdpCodec(c.sdpToA)
	}
	return sdpCodec(c.sdpToB)
}
