package signalling

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
	"github.com/xtrunk/xtrunk/control/store"
)

// The trunking lab (issue 6's integration tests): every part of an edge
// is its own process from the built binary, as in production —
//
//	caller ns 198.18.1.2          relay ns 198.18.1.1 | 198.18.2.1          callee ns 198.18.2.2
//	SIPp as the customer's        xtrunk api (SQLite, unix socket)           SIPp as the carrier
//	PBX (termination UAC) and     xtrunk relay (XDP) or Debian's rtpengine   (termination UAS,
//	origination URIs (UASs)       xtrunk sip ×N (one per scenario)           origination UAC)
//
// Provisioning goes through the REST API; CDRs are read from the store
// the processes share (and through the API's Calls resource once). RTP is
// played from Debian sip-tester's g711a.pcap by one SIPp and echoed by the
// other (-rtp_echo), so media crosses the relay both ways.

// Relay kinds: the same suite runs against xtrunk's relay with the XDP
// dataplane and against Debian's rtpengine (userspace).
const (
	relayXtrunk    = "xtrunk-xdp"
	relayRtpengine = "rtpengine"
)

var relayKinds = []string{relayXtrunk, relayRtpengine}

// The lab's main account, given to `xtrunk api` through
// XTRUNK_ACCOUNT_SID / XTRUNK_AUTH_TOKEN.
const (
	labAccountSid = "AC5a1ab0000000000000000000000000a1"
	labAuthToken  = "1ab70ce01ab70ce01ab70ce01ab70ce0" // 32 hex digits, as xtrunk api requires
)

// Numbers every scenario file knows: the PBX's caller ID (a DID of the
// account on the acme trunk) and the carrier's caller.
const (
	labDID         = "+14155550100" // also the DID of the acme trunk for origination
	labCarrierFrom = "+12125550100"
	labTrunkHost   = "acme.pstn." + testDomain
	labG711Pcap    = "/usr/share/sip-tester/g711a.pcap"
)

// TestMain removes the binary the lab tests built, once.
func TestMain(m *testing.M) { os.Exit(labtest.Main(m)) }

// xtrunkBinary builds cmd/xtrunk once per test binary run.
func xtrunkBinary(t *testing.T) string { return labtest.BuildXtrunk(t) }

// trunkLab is one lab: a Triangle with a relay, the API and the store.
type trunkLab struct {
	kind     string
	tri      *testbed.Triangle
	bin      string
	dir      string
	testdata string
	sipp     string
	config   string // an empty xtrunk.yaml: flags only
	dsn      string
	ngAddr   string
	recDir   string // xtrunk relay's --recording-dir
	ng       *ng.Client
	api      *apiClient
	st       *store.Store // the same SQLite file, for CDRs

	acmeSid  string // the digest trunk (credential list), labDID on it
	nextPort atomic.Int32
	sipsMu   sync.Mutex
	sips     []*testbed.Process // every `xtrunk sip` started, for relayCallID
	relay    *testbed.Process   // xtrunk's relay (relayXtrunk)
	nextNum  atomic.Int32
	pgDSN    string // the test's DSN of a PostgreSQL store (postgresLabStore), "" on SQLite
}

// newTrunkLab builds a lab with relay kind and the acme trunk:
// credential list (testUser/testPassword), labDID.
func newTrunkLab(t *testing.T, kind string, relayArgs ...string) *trunkLab {
	t.Helper()
	return newTrunkLabOn(t, kind, nil, relayArgs...)
}

// labStore gives a lab another store than its SQLite file: the DSN its
// processes use (in the relay namespace) and the one the test uses.
type labStore func(t *testing.T, l *trunkLab) (procDSN, testDSN string)

// newTrunkLabOn is newTrunkLab on the store st gives (nil: SQLite).
func newTrunkLabOn(t *testing.T, kind string, st labStore, relayArgs ...string) *trunkLab {
	t.Helper()
	sipp := sippPath(t)
	if _, err := os.Stat(labG711Pcap); err != nil {
		t.Fatalf("the lab plays Debian sip-tester's g711a.pcap: %v", err)
	}
	l := &trunkLab{kind: kind, bin: xtrunkBinary(t), dir: t.TempDir(), sipp: sipp}
	l.nextPort.Store(5100)
	var err error
	if l.testdata, err = filepath.Abs("testdata"); err != nil {
		t.Fatal(err)
	}
	l.tri = labtest.NewTriangle(t, testbed.WithoutIPv6())
	// `xtrunk sip` sends its UDP requests from its listening socket, but
	// anything that still used an ephemeral port on a single-box edge
	// (the kernel's default range, 32768-60999, overlaps xtrunk's media
	// ports, 30000-39999) would get its answers on a port of the relay's
	// range that has no session, where XDP must pass them to the host's
	// socket instead of dropping them (no_session). The lab makes that the
	// rule rather than a 1-in-4 chance: every ephemeral port in the relay
	// namespace is in the media range. xtrunk's XDP relay (socketless or
	// not) reserves its range in ip_local_reserved_ports, so the kernel
	// would then have no ephemeral port at all (connect: EAGAIN): with
	// it, the range reaches past the media ports (40000-41999 left) and
	// the lab checks that host programs keep working beside a reserved
	// range covering most of their ephemeral ports.
	ephemeral := "32768 39999"
	if kind == relayXtrunk {
		ephemeral = "32768 41999"
	}
	if err := l.tri.Relay.SetSysctl("net.ipv4.ip_local_port_range", ephemeral); err != nil {
		t.Fatal(err)
	}
	l.config = filepath.Join(l.dir, "xtrunk.yaml")
	if err := os.WriteFile(l.config, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l.dsn = "sqlite:" + filepath.Join(l.dir, "xtrunk.db")
	testDSN := l.dsn
	if st != nil {
		l.dsn, testDSN = st(t, l)
	}

	switch kind {
	case relayXtrunk:
		l.startXtrunkRelay(t, relayArgs...)
	case relayRtpengine:
		// Debian's rtpengine, userspace only, as relay's tests run it.
		l.ngAddr = labtest.StartRtpengine(t, l.tri)
	default:
		t.Fatalf("unknown relay kind %q", kind)
	}
	if err := l.tri.Caller.Do(func() error {
		var err error
		l.ng, err = ng.Dial(l.ngAddr, ng.WithTimeout(time.Second))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.ng.Close() })

	l.startAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if l.st, err = store.Open(ctx, testDSN, store.Options{Domain: testDomain, Edges: []string{"lab"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.st.Close() })

	cl := l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/SIP/CredentialLists.json", url.Values{"FriendlyName": {"pbx"}})
	l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/SIP/CredentialLists/"+cl+"/Credentials.json",
		url.Values{"Username": {testUser}, "Password": {testPassword}})
	l.acmeSid = l.api.create(t, "/v1/Trunks", url.Values{"FriendlyName": {"acme"}, "DomainName": {labTrunkHost}})
	l.api.create(t, "/v1/Trunks/"+l.acmeSid+"/CredentialLists", url.Values{"CredentialListSid": {cl}})
	pn := l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {labDID}})
	l.api.create(t, "/v1/Trunks/"+l.acmeSid+"/PhoneNumbers", url.Values{"PhoneNumberSid": {pn}})
	return l
}

// port hands out a port (even, with the next one free for RTCP) that no
// other scenario of the lab uses, for SIP and media alike.
func (l *trunkLab) port() int { return int(l.nextPort.Add(10)) }

// number hands out a fresh E.164 number (a called number or a DID).
func (l *trunkLab) number() string { return fmt.Sprintf("+1650555%04d", l.nextNum.Add(1)) }

// startXtrunkRelay runs `xtrunk relay` with the XDP dataplane in the relay
// namespace, pinned under a bpffs of its own.
func (l *trunkLab) startXtrunkRelay(t *testing.T, extra ...string) {
	t.Helper()
	tri := l.tri
	l.ngAddr = netip.AddrPortFrom(tri.RelayCallerIP, 2223).String()
	pins := filepath.Join(labtest.MountBPFFS(t), "relay")
	l.recDir = filepath.Join(l.dir, "recordings")
	args := append([]string{"relay", "--config", l.config, "--recording-dir", l.recDir,
		"--interface", "customer/" + tri.RelayCallerIP.String(),
		"--interface", "carrier/" + tri.RelayCalleeIP.String(),
		"--listen-ng", l.ngAddr, "--ng-allow", "198.18.0.0/15", "--dataplane", "xdp", "--pin-path", pins, "--remove-on-exit",
		"--log-level", "warn"}, extra...)
	if os.Getenv("XTRUNK_TEST_SOCKETLESS") == "0" {
		// the relay's default is socketless; XTRUNK_TEST_SOCKETLESS=0
		// runs the labs with bound sockets per call
		args = append(args, "--socketless=false")
	}
	p, err := tri.Relay.Start(context.Background(), l.bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	l.relay = p
	// Registered after the bpffs unmount, so it runs first: the relay
	// removes its pins on a clean exit.
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping xtrunk relay: %v", err)
		}
		if t.Failed() {
			t.Logf("xtrunk relay output:\n%s", p.Output())
		}
	})
	if err := testbed.WaitNG(tri.Caller, l.ngAddr, p.Done(), 15*time.Second); err != nil {
		t.Fatalf("xtrunk relay: %v\n%s", err, p.Output())
	}
}

// startAPI runs `xtrunk api` on the lab's SQLite file, listening on a unix
// socket (reachable from the test whatever the namespace).
func (l *trunkLab) startAPI(t *testing.T) {
	t.Helper()
	sock := filepath.Join(l.dir, "api.sock")
	args := []string{"api", "--config", l.config,
		"--listen", "unix:" + sock, "--db", l.dsn, "--domain", testDomain, "--edges", "lab", "--log-level", "warn"}
	if l.recDir != "" {
		args = append(args, "--recording-dir", l.recDir) // the relay's, served by name
	}
	cmd := l.tri.Relay.Command(context.Background(), l.bin, args...)
	cmd.Env = append(os.Environ(), "XTRUNK_ACCOUNT_SID="+labAccountSid, "XTRUNK_AUTH_TOKEN="+labAuthToken)
	p, err := l.tri.Relay.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping xtrunk api: %v", err)
		}
		if t.Failed() {
			t.Logf("xtrunk api output:\n%s", p.Output())
		}
	})
	l.api = &apiClient{hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _, err := l.api.do("GET", "/2010-04-01/Accounts/"+labAccountSid+".json", nil)
		if err == nil && code == http.StatusOK {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("xtrunk api exited:\n%s", p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("xtrunk api not answering (%d, %v):\n%s", code, err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiClient speaks the Twilio-style REST API: form posts, Basic auth,
// JSON answers.
type apiClient struct{ hc *http.Client }

func (a *apiClient) do(method, path string, form url.Values) (int, map[string]any, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "http://xtrunk"+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(labAccountSid, labAuthToken)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			return res.StatusCode, nil, fmt.Errorf("%s %s: %w: %s", method, path, err, b)
		}
	}
	return res.StatusCode, out, nil
}

// create POSTs form to path, wants 201 and returns the new sid.
func (a *apiClient) create(t *testing.T, path string, form url.Values) string {
	t.Helper()
	code, out, err := a.do("POST", path, form)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("POST %s %v: %d %v %v", path, form, code, out, err)
	}
	sid, _ := out["sid"].(string)
	if sid == "" {
		t.Fatalf("POST %s: no sid in %v", path, out)
	}
	return sid
}

// get GETs path and wants 200.
func (a *apiClient) get(t *testing.T, path string) map[string]any {
	t.Helper()
	code, out, err := a.do("GET", path, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v %v", path, code, out, err)
	}
	return out
}

// origURL is one origination URL of a trunk made through the API.
type origURL struct {
	sipURL           string
	priority, weight int
}

// originationTrunk makes a trunk with the given origination URLs and a
// fresh DID on it, through the API, and returns the DID.
func (l *trunkLab) originationTrunk(t *testing.T, name string, urls ...origURL) string {
	t.Helper()
	tk := l.api.create(t, "/v1/Trunks", url.Values{"FriendlyName": {name}, "DomainName": {name + ".pstn." + testDomain}})
	for _, u := range urls {
		l.api.create(t, "/v1/Trunks/"+tk+"/OriginationUrls", url.Values{"FriendlyName": {name}, "SipUrl": {u.sipURL},
			"Priority": {strconv.Itoa(u.priority)}, "Weight": {strconv.Itoa(u.weight)}, "Enabled": {"true"}})
	}
	did := l.number()
	pn := l.api.create(t, "/2010-04-01/Accounts/"+labAccountSid+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {did}})
	l.api.create(t, "/v1/Trunks/"+tk+"/PhoneNumbers", url.Values{"PhoneNumberSid": {pn}})
	return did
}

// customerURI is an origination URI toward a customer UAS on port.
func (l *trunkLab) customerURI(port int) string {
	return "sip:" + netip.AddrPortFrom(l.tri.CallerIP, uint16(port)).String()
}

// sipOpts shape one `xtrunk sip`.
type sipOpts struct {
	carrier      string        // termination gateway (sip:HOST:PORT), optional
	mediaTimeout time.Duration // 0: the default
	metrics      string        // --metrics address (in the relay namespace), optional
	extra        []string      // more flags, last
}

// startSIP runs one `xtrunk sip` in the relay namespace on the relay's
// customer-side address and a port of its own (every scenario gets its
// own, so each has its own carrier gateway); carriers come from the
// callee namespace.
func (l *trunkLab) startSIP(t *testing.T, o sipOpts) netip.AddrPort {
	t.Helper()
	listen := netip.AddrPortFrom(l.tri.RelayCallerIP, uint16(l.port()))
	args := []string{"sip", "--config", l.config,
		"--listen-udp", listen.String(), "--domain", testDomain, "--edge", "lab",
		"--relay-ng", l.ngAddr, "--relay-customer-iface", "customer", "--relay-carrier-iface", "carrier",
		"--carrier-source", "198.18.2.0/24",
		"--db", l.dsn, "--default-cps", "0", "--log-level", "debug",
		// no OPTIONS probe unless a test asks (o.extra): the labs' SIPp
		// carriers answer their scenario's calls, not probes
		"--carrier-probe-interval", "0"}
	if o.carrier != "" {
		args = append(args, "--carrier", o.carrier)
	}
	if o.metrics != "" {
		args = append(args, "--metrics", o.metrics)
	}
	if o.mediaTimeout > 0 {
		args = append(args, "--media-timeout", o.mediaTimeout.String())
	}
	args = append(args, o.extra...)
	p, err := l.tri.Relay.Start(context.Background(), l.bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	l.sipsMu.Lock()
	l.sips = append(l.sips, p)
	l.sipsMu.Unlock()
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("xtrunk sip on %s:\n%s", listen, lastLines(p.Output(), 200))
		}
	})
	l.waitBound(t, l.tri.Relay, listen.Port(), p)
	if o.metrics != "" {
		// sip opens its HTTP listener after the SIP ones: wait for it too
		if ap, err := netip.ParseAddrPort(o.metrics); err == nil {
			l.waitListening(t, l.tri.Relay, "-Hltn", ap.Port(), p)
		}
	}
	return listen
}

// waitBound waits until something in ns has UDP port bound (without
// sending it anything, so no abuse guard counts the probes).
func (l *trunkLab) waitBound(t *testing.T, ns *testbed.NS, port uint16, p *testbed.Process) {
	t.Helper()
	l.waitListening(t, ns, "-Hlun", port, p)
}

// waitListening waits until ss (with flags: -Hlun for UDP, -Hltn for TCP)
// shows port bound in ns.
func (l *trunkLab) waitListening(t *testing.T, ns *testbed.NS, flags string, port uint16, p *testbed.Process) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := ns.Run(context.Background(), "ss", flags, fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("%s exited before binding port %d:\n%s", p, port, lastLines(p.Output(), 100))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing bound to port %d (ss %s) in %s (%v)", p, port, flags, ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sippProc is one SIPp run.
type sippProc struct {
	name string
	p    *testbed.Process
	msgs string // -message_file
	errs string // -error_file
	stat string // -stf, when asked for
}

// startSIPp runs SIPp in ns with scenario (in testdata), bound to addr:port
// with media on mport (0: none). args come last (the remote host for a
// UAC). Every run is bounded (-timeout) and traces its messages for
// diagnostics.
func (l *trunkLab) startSIPp(t *testing.T, ns *testbed.NS, name, scenario string, addr netip.Addr, port, mport int, args ...string) *sippProc {
	t.Helper()
	sp := &sippProc{name: name, msgs: filepath.Join(l.dir, name+"_messages.log"), errs: filepath.Join(l.dir, name+"_errors.log")}
	a := []string{"-sf", filepath.Join(l.testdata, scenario), "-i", addr.String(), "-p", strconv.Itoa(port),
		"-nostdin", "-timeout", "40s", "-timeout_error", "-trace_msg", "-message_file", sp.msgs, "-trace_err", "-error_file", sp.errs}
	if mport > 0 {
		a = append(a, "-mi", addr.String(), "-mp", strconv.Itoa(mport))
	}
	a = append(a, args...)
	var err error
	if sp.p, err = ns.Start(context.Background(), l.sipp, a...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.p.Kill() })
	return sp
}

// startUAS starts a SIPp UAS in ns and waits until it listens.
func (l *trunkLab) startUAS(t *testing.T, ns *testbed.NS, name, scenario string, addr netip.Addr, port, mport int, args ...string) *sippProc {
	t.Helper()
	sp := l.startSIPp(t, ns, name, scenario, addr, port, mport, args...)
	l.waitBound(t, ns, uint16(port), sp.p)
	return sp
}

// wait waits for SIPp to end and fails the test unless every call passed
// its scenario (exit status 0).
func (sp *sippProc) wait(t *testing.T) {
	t.Helper()
	if err := sp.p.Wait(); err != nil {
		msgs, _ := os.ReadFile(sp.msgs)
		errs, _ := os.ReadFile(sp.errs)
		t.Errorf("SIPp %s: %v\n%s\n--- errors ---\n%s\n--- messages (tail) ---\n%s", sp.name, err, lastLines(sp.p.Output(), 40),
			lastLines(string(errs), 40), lastLines(string(msgs), 150))
	}
}

func lastLines(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// pbxArgs are a termination UAC's: digest credentials, caller ID, trunk
// host, called number. SIPp puts sip:<server ip>:<port> in the digest
// uri= unless -auth_uri names the Request-URI, which the edge requires.
func pbxArgs(called, server string) []string {
	return []string{"-s", called, "-key", "trunk", labTrunkHost, "-key", "caller", labDID,
		"-au", testUser, "-ap", testPassword, "-auth_uri", called + "@" + labTrunkHost, "-m", "1", server}
}

// carrierArgs are an origination UAC's: the DID dialed, the carrier's
// caller.
func carrierArgs(did, server string) []string {
	return []string{"-s", did, "-key", "caller", labCarrierFrom, "-m", "1", server}
}

// streamCounts is one party's RTP stream as the relay counts it.
type streamCounts struct{ packets, fast, user int64 }

// mediaWatch polls the relay (NG query) for one call while it is up and
// keeps the last counts per tag: the relay forgets the call at delete.
type mediaWatch struct {
	stop chan struct{}
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	last map[string]streamCounts
}

func (l *trunkLab) watchMedia(t *testing.T, callID string) *mediaWatch {
	return watchCounts(t, func() (map[string]streamCounts, error) { return l.relayCounts(callID) })
}

// watchCounts polls counts (a relay query) until stopped.
func watchCounts(t *testing.T, counts func() (map[string]streamCounts, error)) *mediaWatch {
	w := &mediaWatch{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { w.counts() })
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if got, err := counts(); err == nil {
				w.mu.Lock()
				w.last = got
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// relayCallID is the relay's call-id for the call whose A-leg has SIP
// Call-ID callID: the edge keys the relay session by an ID of its own,
// which `xtrunk sip` logs ("call") beside the Call-ID ("call_id") when it
// admits the call.
func (l *trunkLab) relayCallID(callID string) (string, error) {
	l.sipsMu.Lock()
	sips := slices.Clone(l.sips)
	l.sipsMu.Unlock()
	for _, p := range sips {
		for _, line := range strings.Split(p.Output(), "\n") {
			if !strings.Contains(line, callID) || !strings.Contains(line, `"call":`) {
				continue
			}
			var e struct {
				CallID string `json:"call_id"`
				Call   string `json:"call"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.CallID == callID && e.Call != "" {
				return e.Call, nil
			}
		}
	}
	return "", fmt.Errorf("no xtrunk sip has logged call %q yet", callID)
}

// relayCounts asks the relay (NG query) for one call's RTP counts per
// party (tag); callID is the A-leg's SIP Call-ID.
func (l *trunkLab) relayCounts(callID string) (map[string]streamCounts, error) {
	id, err := l.relayCallID(callID)
	if err != nil {
		return nil, err
	}
	return l.relaySessionCounts(id)
}

// relaySessionCounts asks the relay (NG query) for the RTP counts per
// party (tag) of its session id.
func (l *trunkLab) relaySessionCounts(id string) (map[string]streamCounts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := l.ng.Do(ctx, ng.Dict{"command": "query", "call-id": id})
	if err != nil {
		return nil, err
	}
	got := map[string]streamCounts{}
	ng.Streams(r, func(tag string, sd ng.Dict, rtcp bool) {
		if rtcp {
			return
		}
		st := sd.Dict("stats")
		c := got[tag]
		p, _ := st.Int("packets")
		f, _ := st.Int("fast path")
		u, _ := st.Int("userspace")
		c.packets, c.fast, c.user = c.packets+p, c.fast+f, c.user+u
		got[tag] = c
	})
	return got, nil
}

// counts stops the watch and returns the last counts.
func (w *mediaWatch) counts() map[string]streamCounts {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// checkMedia wants RTP from both parties through the relay (at least min
// packets each) and, on xtrunk's XDP relay, nearly all of it on the fast
// path: userspace sees only what comes before latching.
func (l *trunkLab) checkMedia(t *testing.T, what string, got map[string]streamCounts, min int64) {
	t.Helper()
	t.Logf("%s: relay counts per party: %+v", what, got)
	if len(got) != 2 {
		t.Errorf("%s: the relay saw %d parties (%v), want 2", what, len(got), got)
		return
	}
	for tag, c := range got {
		if c.packets < min {
			t.Errorf("%s: party %s sent %d RTP packets through the relay, want at least %d", what, tag, c.packets, min)
		}
		if l.kind != relayXtrunk {
			continue
		}
		if c.fast < min || c.user > 10 {
			t.Errorf("%s: party %s: %d packets on the XDP fast path, %d in userspace: want at least %d on the fast path and at most 10 in userspace",
				what, tag, c.fast, c.user, min)
		}
	}
}

// cdrWait bounds a test's wait for a call's CDR once the call is over.
// The edge writes it after both legs answered their BYEs (at most
// byeTimeout) and the relay answered its delete (at most
// relayDeleteTimeout), in a batch that lingers cdrLinger: a deadline
// under their sum races a slow peer or relay rather than testing the
// CDR. The margin is for a loaded machine.
const cdrWait = byeTimeout + relayDeleteTimeout + cdrLinger + 10*time.Second

// cdrs waits (a bounded time) until the store holds n CDRs to the number
// to, and returns them oldest first.
func (l *trunkLab) cdrs(t *testing.T, to string, n int) []store.Call {
	t.Helper()
	deadline := time.Now().Add(cdrWait)
	var all []store.Call
	for {
		all = all[:0]
		page := store.Page{Size: store.MaxPageSize}
		for {
			calls, next, err := l.st.ListCalls(context.Background(), labAccountSid, store.CallFilter{To: to}, page)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, finished(calls)...)
			if next == "" {
				break
			}
			page = store.Page{Size: store.MaxPageSize, Token: next}
		}
		if len(all) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(all) != n {
		t.Fatalf("want %d CDRs to %s, got %d: %+v", n, to, len(all), all)
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

// finished are the CDRs among calls: the rows of calls that are over
// (a call's row is there from its start, ringing or in-progress).
func finished(calls []store.Call) []store.Call {
	var out []store.Call
	for _, c := range calls {
		if c.Status != store.CallRinging && c.Status != store.CallInProgress {
			out = append(out, c)
		}
	}
	return out
}

// cdrWant is what one CDR must say.
type cdrWant struct {
	dir, from, to, status string
	code                  int
	hangup                string // HangupCause prefix: "caller: BYE"…
	answered              bool
	media                 bool // quality with packets both ways
}

func checkCDR(t *testing.T, c store.Call, w cdrWant) {
	t.Helper()
	t.Logf("CDR %s: %s %s→%s status=%s code=%d hangup=%q start=%s answer=%v end=%v duration=%d quality=%+v",
		c.Sid, c.Direction, c.From, c.To, c.Status, c.SIPResponseCode, c.HangupCause, c.Start.Format("15:04:05.000"),
		durSince(c.Start, c.Answer), durSince(c.Start, c.End), c.Duration, c.Quality)
	if c.Direction != w.dir || c.From != w.from || c.To != w.to || c.Status != w.status || c.SIPResponseCode != w.code {
		t.Errorf("CDR %s: got %s %s→%s %s %d, want %s %s→%s %s %d", c.Sid, c.Direction, c.From, c.To, c.Status, c.SIPResponseCode,
			w.dir, w.from, w.to, w.status, w.code)
	}
	if !strings.HasPrefix(c.HangupCause, w.hangup) {
		t.Errorf("CDR %s: hangup cause %q, want %q…", c.Sid, c.HangupCause, w.hangup)
	}
	if c.TrunkSid == "" || c.Start.IsZero() || c.End.Before(c.Start) {
		t.Errorf("CDR %s: trunk %q, start %v, end %v", c.Sid, c.TrunkSid, c.Start, c.End)
	}
	if w.dir == store.DirectionOriginating && (c.ForwardedFrom != w.to || c.PhoneNumberSid == "") {
		t.Errorf("CDR %s: origination without forwarded_from %q / phone number %q", c.Sid, c.ForwardedFrom, c.PhoneNumberSid)
	}
	if w.answered {
		// duration: the answered time rounded to the nearest second
		// (store.AnsweredSeconds; 0 for a call under half a second)
		talk := c.End.Sub(c.Answer)
		if c.Answer.IsZero() || c.Answer.Before(c.Start) || talk < 0 ||
			(time.Duration(c.Duration)*time.Second-talk).Abs() > time.Second/2+time.Millisecond {
			t.Errorf("CDR %s: answered call with answer %v, end %v, duration %d s", c.Sid, c.Answer, c.End, c.Duration)
		}
	} else if !c.Answer.IsZero() || c.Duration != 0 {
		t.Errorf("CDR %s: unanswered call with answer %v, duration %d", c.Sid, c.Answer, c.Duration)
	}
	// The relay had a session for every call (the offer comes before the
	// B-leg), so its delete reply gives both legs' quality, zero or not.
	if len(c.Quality) != 2 || c.Quality[0].Leg != "customer" || c.Quality[1].Leg != "carrier" {
		t.Errorf("CDR %s: quality %+v, want the customer and the carrier leg", c.Sid, c.Quality)
		return
	}
	if w.media {
		for _, q := range c.Quality {
			if q.PacketsReceived < 30 || q.PacketsSent < 30 || q.BytesReceived == 0 {
				t.Errorf("CDR %s: %s leg quality %+v: media did not flow both ways", c.Sid, q.Leg, q)
			}
		}
	}
}

func durSince(from, to time.Time) time.Duration {
	if to.IsZero() {
		return 0
	}
	return to.Sub(from).Round(time.Millisecond)
}

// silentUDP is a UDP socket in ns that never answers and notes when the
// first INVITE arrived: an origination URI that is down.
type silentUDP struct {
	conn  *net.UDPConn
	mu    sync.Mutex
	first time.Time
	n     int
	all   int // every datagram, INVITE or not
}

func listenSilent(t *testing.T, ns *testbed.NS, addr netip.AddrPort) *silentUDP {
	t.Helper()
	c, err := ns.ListenUDP(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	s := &silentUDP{conn: c}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 8192)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.all++
			s.mu.Unlock()
			if strings.HasPrefix(string(buf[:n]), "INVITE ") {
				s.mu.Lock()
				if s.n == 0 {
					s.first = time.Now()
				}
				s.n++
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// datagrams returns how many datagrams of any kind arrived.
func (s *silentUDP) datagrams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all
}

// invites returns how many INVITEs (retransmissions included) arrived and
// when the first did.
func (s *silentUDP) invites() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.first
}
