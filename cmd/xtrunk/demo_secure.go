package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/bench/rtpgen"
	"github.com/xtrunk/xtrunk/bench/testbed"
)

// demoTone is how long baresip talks (a WAV file it hangs up at the end
// of): the carrier's stream of demoMedia fits in it with the time the
// demo takes to find the call on the relay.
const demoTone = demoMedia + 2*time.Second

// secureCall: the PBX is baresip on the secure trunk, over TLS to the
// edge's 5061 with SDES-SRTP (a=crypto); the edge sends the call on to
// the carrier over UDP with plain RTP. baresip 1.0 (Debian 12) does not
// verify the server's certificate even with sip_cafile, so the demo
// first checks it itself: a TLS handshake from the PBX's namespace that
// trusts only the edge's certificate, for the trunk's host name.
func (d *demoLab) secureCall(ctx context.Context, pe *demoPeers) *demoCall {
	called := "+16505550102"
	res := &demoCall{Name: "secure (TLS + SRTP, baresip)", Direction: "termination", From: demoDID, To: called, Secure: true}
	var bs *testbed.Process
	dir := filepath.Join(d.dir, "baresip")
	if err := d.secureSteps(ctx, pe, res, dir, &bs); err != nil {
		res.Errors = append(res.Errors, err.Error())
		if bs != nil {
			res.Errors = append(res.Errors, "baresip:\n"+lastLines(bs.Output(), 20))
		}
	}
	d.fillCDR(ctx, res)
	return res
}

func (d *demoLab) secureSteps(ctx context.Context, pe *demoPeers, res *demoCall, dir string, bsp **testbed.Process) error {
	t := d.tri
	carrier, err := listenRTP(t.Callee, t.CalleeIP, ssrcPBX)
	if err != nil {
		return err
	}
	defer carrier.conn.Close()
	uas, err := d.startSIPp(ctx, pe, t.Callee, "secure-uas", "uas.xml", t.CalleeIP, carrierSIPPort)
	if err != nil {
		return err
	}
	defer uas.p.Kill() //nolint:errcheck // already exited on success
	if err := waitBound(ctx, t.Callee, carrierSIPPort, uas.p); err != nil {
		return err
	}
	if err := d.checkEdgeCert(ctx, pe.trunks.secureHost); err != nil {
		return err
	}
	res.TLSVerified = true
	if err := d.writeBaresip(dir, pe.trunks.secureHost); err != nil {
		return err
	}
	// -t: baresip quits by itself even if the demo loses it.
	bs, err := t.Caller.Start(ctx, pe.baresip, "-f", dir, "-t", "40",
		"-e", "/dial sip:"+res.To+"@"+pe.trunks.secureHost)
	if err != nil {
		return err
	}
	*bsp = bs
	defer bs.Kill() //nolint:errcheck // stopped below on success
	id, _, carrierSide, err := findRelayCall(ctx, pe.ng, t.CallerIP, t.CalleeIP, bs.Done())
	if err != nil {
		return err
	}
	// The carrier talks plain RTP to the relay; baresip's SRTP in the
	// other direction runs from its WAV file.
	n := int(demoMedia.Seconds() * demoPPS)
	k, sendErr := rtpgen.Send(ctx, carrier.conn, carrierSide.local, ssrcCarrier, n, demoPPS)
	time.Sleep(300 * time.Millisecond)
	d.relayCounts(ctx, pe, id, res)
	// baresip hangs up when its file ends; the carrier's SIPp ends with
	// the BYE.
	uasErr := uas.wait()
	// SIGTERM, so that baresip closes its audio dumps.
	if err := bs.Stop(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stopping baresip: %w", err)
	}
	if strings.Contains(bs.Output(), "Call established") {
		res.SIPStatus = 200
	}
	enc, encErr := wavFrames(dir, "-enc.wav")
	dec, decErr := wavFrames(dir, "-dec.wav")
	good, bad := carrier.sink.Counts()
	res.Sent = map[string]int{dirPBXToCarrier: enc, dirCarrierToPBX: k}
	// What reached the carrier is baresip's audio, decrypted by the
	// relay: every datagram on the carrier's RTP port counts.
	res.Received = map[string]int{dirPBXToCarrier: good + bad, dirCarrierToPBX: dec}
	return errors.Join(sendErr, uasErr, encErr, decErr)
}

// checkEdgeCert makes a TLS connection to the edge's SIP TLS port from
// the PBX's namespace, trusting only the certificate the demo made, for
// host, and closes it.
func (d *demoLab) checkEdgeCert(ctx context.Context, host string) error {
	addr := netip.AddrPortFrom(d.tri.RelayCallerIP, demoTLSPort).String()
	var conn *tls.Conn
	err := d.tri.Caller.Do(func() error {
		var err error
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		td := &tls.Dialer{Config: &tls.Config{RootCAs: d.certPool, ServerName: host, MinVersion: tls.VersionTLS12}}
		c, err := td.DialContext(dctx, "tcp", addr)
		if err == nil {
			conn = c.(*tls.Conn)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("the edge's TLS certificate on %s, for %s: %w", addr, host, err)
	}
	return conn.Close()
}

// writeBaresip writes baresip's configuration into dir: no audio device
// (the source is a WAV file, aufile; sndfile dumps what it encodes and
// decodes, which the demo counts), one account on the secure trunk whose
// outbound proxy is the edge over TLS, SRTP mandatory.
func (d *demoLab) writeBaresip(dir, host string) error {
	t := d.tri
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tone.wav"), toneWAV(440, demoTone), 0o644); err != nil {
		return err
	}
	c := testbed.BaresipConfig{Dir: dir, Listen: t.CallerIP, Iface: t.CallerLink.A.Name, DNS: t.RelayCallerIP,
		Source: filepath.Join(dir, "tone.wav"), CAFile: d.certFile}
	if err := c.Write(); err != nil {
		return err
	}
	accounts := fmt.Sprintf("<sip:%s@%s;transport=tls>;regint=0;outbound=\"sip:%s:%d;transport=tls\";answermode=manual;mediaenc=srtp-mand;audio_codecs=PCMU/8000/1\n",
		demoDID, host, t.RelayCallerIP, demoTLSPort)
	return os.WriteFile(filepath.Join(dir, "accounts"), []byte(accounts), 0o644)
}

// toneWAV is a WAV file (8 kHz, mono, 16-bit PCM) of a tone lasting dur.
func toneWAV(freq float64, dur time.Duration) []byte {
	n := int(dur.Seconds() * 8000)
	var b bytes.Buffer
	hdr := struct {
		Riff        [4]byte
		Size        uint32
		Wave, Fmt   [4]byte
		FmtSize     uint32
		Format, Chs uint16
		Rate, Bps   uint32
		Align, Bits uint16
		Data        [4]byte
		DataSize    uint32
	}{[4]byte{'R', 'I', 'F', 'F'}, uint32(36 + 2*n), [4]byte{'W', 'A', 'V', 'E'}, [4]byte{'f', 'm', 't', ' '},
		16, 1, 1, 8000, 16000, 2, 16, [4]byte{'d', 'a', 't', 'a'}, uint32(2 * n)}
	_ = binary.Write(&b, binary.LittleEndian, hdr) // a bytes.Buffer does not fail
	for i := 0; i < n; i++ {
		_ = binary.Write(&b, binary.LittleEndian, int16(8000*math.Sin(2*math.Pi*freq*float64(i)/8000)))
	}
	return b.Bytes()
}

// wavFrames counts the 20 ms frames (160 samples of 16 bits) in the one
// baresip dump in dir whose name ends in suffix: the data chunk's length,
// or what follows its header when libsndfile did not get to write it.
func wavFrames(dir, suffix string) (int, error) {
	names, _ := filepath.Glob(filepath.Join(dir, "dump-*"+suffix))
	if len(names) != 1 {
		return 0, fmt.Errorf("baresip's audio dump *%s: found %v", suffix, names)
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		return 0, err
	}
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		if id == "data" {
			if avail := len(b) - off - 8; size == 0 || size > avail {
				size = avail
			}
			return size / 2 / 160, nil
		}
		off += 8 + size + size%2
	}
	return 0, fmt.Errorf("%s: no data chunk", names[0])
}
