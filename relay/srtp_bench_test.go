package relay

import (
	"testing"

	"github.com/pion/srtp/v2"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
)

// BenchmarkSRTPTranscrypt is the per-packet crypto of an SRTP ⇄ RTP call:
// one packet decrypted (customer → relay) and one encrypted (relay →
// customer), in place, as the packet loop does it.
func BenchmarkSRTPTranscrypt(b *testing.B) {
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"} {
		b.Run(suite, func(b *testing.B) {
			in, _ := newKeying(1, suite)
			out, _ := newKeying(1, suite)
			dec, err := newCryptoCtx(in, true)
			if err != nil {
				b.Fatal(err)
			}
			enc, err := newCryptoCtx(out, false)
			if err != nil {
				b.Fatal(err)
			}
			prof, _ := suiteProfile(suite)
			peer, _ := srtp.CreateContext(in.Key[:16], in.Key[16:], prof)
			// pre-encrypt a window of customer packets (distinct seqs, so
			// replay protection passes)
			const window = 4096
			pkts := make([][]byte, window)
			buf := make([]byte, 172)
			for i := range pkts {
				p, _ := peer.EncryptRTP(nil, rtpgen.Packet(buf, 1, uint16(i)), nil)
				pkts[i] = p
			}
			work := make([]byte, 2048)
			b.SetBytes(172)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%window == 0 && i > 0 {
					b.StopTimer()
					dec, _ = newCryptoCtx(in, true) // fresh replay window
					b.StartTimer()
				}
				p := work[:copy(work, pkts[i%window])]
				plain, err := dec.decrypt(p, false)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := enc.encrypt(plain, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// SRTCP in place, both ways, against pion as the peer: the relay decrypts
// what the party's key encrypted, and what the relay encrypts the party
// decrypts (in place: the packet loop's buffers have room for the tag and
// index).
func TestSRTCPInPlace(t *testing.T) {
	in, _ := newKeying(1, "AES_CM_128_HMAC_SHA1_80")
	dec, err := newCryptoCtx(in, true)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newCryptoCtx(in, false)
	if err != nil {
		t.Fatal(err)
	}
	peerEnc, _ := srtp.CreateContext(in.Key[:16], in.Key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	peerDec, _ := srtp.CreateContext(in.Key[:16], in.Key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	sr := []byte{0x80, 200, 0, 6, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	wire, err := peerEnc.EncryptRTCP(nil, sr, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	p := buf[:copy(buf, wire)]
	plain, err := dec.decrypt(p, true)
	if err != nil || string(plain) != string(sr) {
		t.Fatalf("relay decrypt of SRTCP: %x, %v", plain, err)
	}
	p = buf[:copy(buf, sr)]
	out, err := enc.encrypt(p, true)
	if err != nil {
		t.Fatal(err)
	}
	back, err := peerDec.DecryptRTCP(nil, out, nil)
	if err != nil || string(back) != string(sr) {
		t.Fatalf("peer decrypt of the relay's SRTCP: %x, %v", back, err)
	}
}
