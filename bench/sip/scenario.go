package sip

import (
	"bytes"
	"embed"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"text/template"
)

//go:embed scenarios/*.xml
var scenarioFS embed.FS

// Scenario files written into the work directory.
const (
	pbxScenario     = "pbx.xml"
	carrierScenario = "carrier.xml"
)

// writeScenarios renders the SIPp scenarios for the lab's relay addresses
// into dir; with rtp, the PBX's plays rtpPcap (written into dir) during
// the hold.
func writeScenarios(dir string, relayCustomer, relayCarrier netip.Addr, rtp bool) error {
	data := map[string]any{
		"RelayCustomer":   relayCustomer.String(),
		"RelayCustomerRE": regexp.QuoteMeta(relayCustomer.String()),
		"RelayCarrier":    relayCarrier.String(),
		"RelayCarrierRE":  regexp.QuoteMeta(relayCarrier.String()),
		"RTPPcap":         "",
	}
	if rtp {
		pcap := filepath.Join(dir, rtpPcap)
		if err := os.WriteFile(pcap, g711Pcap(pbxIP, relayCustomer, rtpPackets), 0o644); err != nil {
			return fmt.Errorf("sip: %w", err)
		}
		data["RTPPcap"] = pcap
	}
	for _, name := range []string{pbxScenario, carrierScenario} {
		src, err := scenarioFS.ReadFile("scenarios/" + name)
		if err != nil {
			return fmt.Errorf("sip: %w", err)
		}
		t, err := template.New(name).Parse(string(src))
		if err != nil {
			return fmt.Errorf("sip: scenario %s: %w", name, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("sip: scenario %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("sip: %w", err)
		}
	}
	return nil
}

// rtpPcap is the media a call carries with Config.RTP; rtpPackets how
// many RTP packets it holds (20 ms each).
const (
	rtpPcap    = "rtp.pcap"
	rtpPackets = 40
)

// g711Pcap is a pcap file (Ethernet) of n G.711 A-law RTP packets, 160
// bytes of silence each, 20 ms apart, from src:20000 to dst:20000. SIPp's
// play_pcap_audio sends their UDP payloads from the call's media port to
// the address and port of the peer's SDP, at the pcap's pace.
func g711Pcap(src, dst netip.Addr, n int) []byte {
	const payload = 160
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint32(b, 0xa1b2c3d4)     // magic, µs timestamps
	b = le.AppendUint16(b, 2)              // version 2.4
	b = le.AppendUint16(b, 4)              //
	b = le.AppendUint32(b, 0)              // thiszone
	b = le.AppendUint32(b, 0)              // sigfigs
	b = le.AppendUint32(b, 65535)          // snaplen
	b = le.AppendUint32(b, 1)              // LINKTYPE_ETHERNET
	frameLen := 14 + 20 + 8 + 12 + payload // Ethernet, IPv4, UDP, RTP, audio
	for i := range n {
		b = le.AppendUint32(b, uint32(i*20/1000))         // seconds
		b = le.AppendUint32(b, uint32(i*20%1000*1000))    // µs
		b = le.AppendUint32(b, uint32(frameLen))          // captured
		b = le.AppendUint32(b, uint32(frameLen))          // on the wire
		b = append(b, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1) // dst, src MAC (locally administered)
		b = append(b, 0x08, 0x00)                         // IPv4
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0}
		binary.BigEndian.PutUint16(ip[2:], uint16(frameLen-14))
		s4, d4 := src.As4(), dst.As4()
		ip = append(append(ip, s4[:]...), d4[:]...)
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		b = append(b, ip...)
		udp := make([]byte, 8)
		binary.BigEndian.PutUint16(udp[0:], 20000)
		binary.BigEndian.PutUint16(udp[2:], 20000)
		binary.BigEndian.PutUint16(udp[4:], uint16(8+12+payload))
		b = append(b, udp...) // checksum 0: none (IPv4)
		rtp := make([]byte, 12)
		rtp[0], rtp[1] = 0x80, 8 // version 2, PCMA
		binary.BigEndian.PutUint16(rtp[2:], uint16(i))
		binary.BigEndian.PutUint32(rtp[4:], uint32(i*payload))
		binary.BigEndian.PutUint32(rtp[8:], 0x78747275) // SSRC
		b = append(b, rtp...)
		b = append(b, bytes.Repeat([]byte{0xd5}, payload)...) // A-law silence
	}
	return b
}

// ipChecksum is the IPv4 header checksum of h (its checksum field 0).
func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
