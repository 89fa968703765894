package testbed

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// BaresipConfig is a configuration of baresip (1.0, Debian 12) as a lab
// peer: no audio device — it talks from a WAV file (aufile) and hangs up
// at its end, nothing plays, and sndfile dumps the audio it encodes and
// decodes into Dir (dump-*-enc.wav, dump-*-dec.wav); G.711 and SDES-SRTP.
type BaresipConfig struct {
	Dir    string     // the configuration directory (baresip -f), where the dumps land too
	Listen netip.Addr // SIP on port 5060 (and TLS)
	Iface  string     // net_interface: a lab namespace has no default route to pick an address by
	DNS    netip.Addr // dns_server: nothing asks the host's resolver
	Source string     // the WAV file baresip talks from
	CAFile string     // sip_cafile (optional)
}

// Write writes Dir/config; accounts (and contacts) are the caller's.
func (c BaresipConfig) Write() error {
	ca := ""
	if c.CAFile != "" {
		ca = "sip_cafile\t\t" + c.CAFile + "\n"
	}
	config := fmt.Sprintf(`poll_method		epoll
sip_listen		%[1]s:5060
%[6]snet_interface		%[2]s
dns_server		%[3]s:53
call_local_timeout	10
call_max_calls		1
audio_source		aufile,%[4]s
ausrc_format		s16
auplay_format		s16
auenc_format		s16
audec_format		s16
rtp_ports		10000-10100
rtcp_mux		no
jitter_buffer_delay	1-5
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			sndfile.so
module			srtp.so
module_tmp		account.so
module_app		contact.so
module_app		menu.so
module_app		rtcpsummary.so
snd_path		%[5]s
`, c.Listen, c.Iface, c.DNS, c.Source, c.Dir, ca)
	return os.WriteFile(filepath.Join(c.Dir, "config"), []byte(config), 0o644)
}
