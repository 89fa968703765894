package signalling

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

const (
	tenantHost = "tenant.pstn.example.net"
	tenantDID  = "+14155550150"
)

// Issue 10, item 2: a suspended or closed subaccount's calls are refused
// — termination 403 "Account suspended", origination to its DID 403 —
// soon after the change through the REST API (the signalling follows the
// store's change feed), while its call already up goes on; reactivated,
// it calls again. Here the API and the signalling each have their own
// handle on one SQLite file, in this process; the relay is real
// (userspace, NG over UDP) and so are the SIP peers (sockets on loopback).
func TestSuspendedAccountCalls(t *testing.T) {
	p := provision(t)
	apiStore, err := store.Open(t.Context(), p.dsn, store.Options{Domain: testDomain})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { apiStore.Close() })
	main, err := apiStore.Account(t.Context(), p.account)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(apiStore))
	t.Cleanup(srv.Close)
	rest := &restClient{t: t, hc: http.DefaultClient, base: srv.URL, sid: main.Sid, token: main.AuthToken}
	acc := provisionTenant(t, rest)

	carrier := startLoopbackCarrier(t)
	cfg := testConfig(t)
	cfg.RelayNG = loopbackRelay(t)
	cfg.Carriers = []string{"sip:" + carrier.String()}
	cfg.CarrierSources = []string{"127.0.0.2/32"}
	cfg.GuardMaxRequests = 0 // the test polls; the guard is not what it checks
	suspendTenant(t, rest, acc, serve(t, cfg, p.st).Addr("UDP"), carrier)
}

// The same with `xtrunk api` and `xtrunk sip` as processes of the built
// binary on loopback, as an edge runs them.
func TestSuspendedAccountCallsProcesses(t *testing.T) {
	bin := xtrunkBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "xtrunk.yaml")
	if err := os.WriteFile(config, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dsn := "sqlite:" + filepath.Join(dir, "xtrunk.db")
	sock := filepath.Join(dir, "api.sock")
	apiProc := startProcess(t, bin, []string{"XTRUNK_ACCOUNT_SID=" + labAccountSid, "XTRUNK_AUTH_TOKEN=" + labAuthToken},
		"api", "--config", config, "--listen", "unix:"+sock, "--db", dsn, "--domain", testDomain, "--log-level", "warn")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	rest := &restClient{t: t, hc: hc, base: "http://xtrunk-api", sid: labAccountSid, token: labAuthToken}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := rest.try(http.MethodGet, "/2010-04-01/Accounts/"+labAccountSid+".json", nil); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xtrunk api does not answer:\n%s", apiProc.output())
		}
	}
	acc := provisionTenant(t, rest)

	carrier := startLoopbackCarrier(t)
	listen := freeUDPPort(t, "127.0.0.1")
	sipProc := startProcess(t, bin, nil, "sip", "--config", config, "--listen-udp", listen, "--listen-tcp", "",
		"--domain", testDomain, "--db", dsn, "--relay-ng", loopbackRelay(t), "--carrier", "sip:"+carrier.String(), "--carrier-probe-interval", "0",
		"--carrier-source", "127.0.0.2/32", "--default-cps", "0", "--log-level", "info")
	for deadline := time.Now().Add(15 * time.Second); ; {
		got, _ := tryExchange("127.0.0.1:0", listen, rawRequest{method: "OPTIONS", ruri: "sip:" + tenantHost}, 200*time.Millisecond)
		if strings.HasPrefix(got, "SIP/2.0 200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xtrunk sip does not answer at %s:\n%s", listen, sipProc.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	suspendTenant(t, rest, acc, netip.MustParseAddrPort(listen), carrier)
}

// provisionTenant has the operator (rest's account) set up a tenant
// through the REST API: a subaccount, its trunk tenantHost with an IP ACL
// of 127.0.0.1, and tenantDID from the inventory on the trunk. It returns
// the subaccount's 2010 path.
func provisionTenant(t *testing.T, rest *restClient) string {
	t.Helper()
	sub := rest.post("/2010-04-01/Accounts.json", url.Values{"FriendlyName": {"tenant"}}, 201)["sid"].(string)
	acc := "/2010-04-01/Accounts/" + sub
	acl := rest.post(acc+"/SIP/IpAccessControlLists.json", url.Values{"FriendlyName": {"pbx"}}, 201)["sid"].(string)
	rest.post(acc+"/SIP/IpAccessControlLists/"+acl+"/IpAddresses.json", url.Values{"FriendlyName": {"lo"}, "IpAddress": {"127.0.0.1"}}, 201)
	tenant := rest.as(sub)
	tk := tenant.post("/v1/Trunks", url.Values{"DomainName": {tenantHost}}, 201)["sid"].(string)
	tenant.post("/v1/Trunks/"+tk+"/IpAccessControlLists", url.Values{"IpAccessControlListSid": {acl}}, 201)
	pn := rest.post(acc+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {tenantDID}}, 201)["sid"].(string)
	tenant.post("/v1/Trunks/"+tk+"/PhoneNumbers", url.Values{"PhoneNumberSid": {pn}}, 201)
	return acc
}

// suspendTenant is the scenario: a call up, the tenant suspended through
// the API (new calls 403 both ways, the live call goes on and ends
// normally), reactivated (calls again), closed (403).
func suspendTenant(t *testing.T, rest *restClient, acc string, edge netip.AddrPort, carrier *loopbackCarrier) {
	const called = "+16505550123"
	// refusals that do not start a call: a non-E.164 callee (400 once
	// admitted, 403 when the account is not active) and an origination to
	// the DID of a trunk without origination URIs (480 / 403)
	probe := func() string {
		return statusLine(exchange(t, "127.0.0.1:0", edge.String(), rawRequest{ruri: "sip:bob@" + tenantHost, from: tenantDID, body: goodSDP}, 3*time.Second))
	}
	originate := func() string {
		return statusLine(exchange(t, "127.0.0.2:0", edge.String(), rawRequest{ruri: "sip:" + tenantDID + "@" + edge.Addr().String(), from: "+12125550100", body: goodSDP}, 5*time.Second))
	}
	if got := probe(); got != "SIP/2.0 400 Bad Request" {
		t.Fatalf("active tenant, bad callee: %q", got)
	}
	if got := originate(); !strings.HasPrefix(got, "SIP/2.0 480") {
		t.Fatalf("active tenant, origination: %q", got)
	}

	// a call up before the suspension
	live := newLoopbackUAC(t, edge)
	if res := live.invite(t, "sip:"+called+"@"+tenantHost, tenantDID); res.StatusCode != 200 {
		t.Fatalf("active tenant's call: %d %s", res.StatusCode, res.Reason)
	}

	setStatus := func(status string) {
		rest.post(acc+".json", url.Values{"Status": {status}}, 200)
		began := time.Now()
		for deadline := began.Add(10 * time.Second); ; {
			got := probe()
			if (status == store.StatusActive) == (got == "SIP/2.0 400 Bad Request") {
				t.Logf("%s: the signalling followed in %v", status, time.Since(began).Round(time.Millisecond))
				if status != store.StatusActive && got != "SIP/2.0 403 Account suspended" {
					t.Fatalf("%s tenant: %q, want 403 Account suspended", status, got)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the signalling still answers %q", status, got)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	setStatus(store.StatusSuspended)
	ref := newLoopbackUAC(t, edge)
	if res := ref.invite(t, "sip:"+called+"@"+tenantHost, tenantDID); res.StatusCode != 403 || res.Reason != "Account suspended" {
		t.Fatalf("suspended tenant's call: %d %s", res.StatusCode, res.Reason)
	}
	if got := originate(); got != "SIP/2.0 403 Account suspended" {
		t.Fatalf("origination to a suspended tenant's DID: %q", got)
	}
	// the call that was up is still up: nobody got a BYE, and it ends
	// normally when the PBX hangs up
	time.Sleep(time.Second)
	if n := carrier.byes(); n != 0 {
		t.Fatalf("the carrier got %d BYEs for the live call after the suspension", n)
	}
	live.bye(t)
	// The edge answers the PBX's BYE before its own BYE reaches the
	// carrier: wait for that one (500 ms of quiet raced a loaded
	// machine), then make sure no second follows.
	carrier.waitBye(t)
	if n := carrier.byes(); n != 0 {
		t.Fatalf("the carrier got %d BYEs after the PBX hung up, want 1", n+1)
	}

	setStatus(store.StatusActive)
	again := newLoopbackUAC(t, edge)
	if res := again.invite(t, "sip:"+called+"@"+tenantHost, tenantDID); res.StatusCode != 200 {
		t.Fatalf("reactivated tenant's call: %d %s", res.StatusCode, res.Reason)
	}
	again.bye(t)
	if got := originate(); !strings.HasPrefix(got, "SIP/2.0 480") {
		t.Fatalf("reactivated tenant, origination: %q", got)
	}

	setStatus(store.StatusClosed)
	if got := originate(); got != "SIP/2.0 403 Account suspended" {
		t.Fatalf("origination to a closed tenant's DID: %q", got)
	}
}

// proc is a process of the built binary, stopped when the test ends.
type proc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startProcess(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("xtrunk %s output:\n%s", args[0], p.output())
		}
	})
	return p
}

func (p *proc) output() string { return p.out.take() }

// restClient speaks the REST API as an account (Basic auth), acting on
// v1 for the account set with as().
type restClient struct {
	t          *testing.T
	hc         *http.Client
	base       string
	sid, token string
}

// as returns a client with sub's credentials (v1 acts for the
// authenticated account).
func (c *restClient) as(sub string) *restClient {
	a, err := storeTokenOf(c, sub)
	if err != nil {
		c.t.Fatal(err)
	}
	return &restClient{t: c.t, hc: c.hc, base: c.base, sid: sub, token: a}
}

func storeTokenOf(c *restClient, sub string) (string, error) {
	j := c.get("/2010-04-01/Accounts/" + sub + ".json")
	tok, _ := j["auth_token"].(string)
	if tok == "" {
		return "", fmt.Errorf("no auth_token for %s", sub)
	}
	return tok, nil
}

func (c *restClient) get(path string) map[string]any {
	return c.do(http.MethodGet, path, nil, 200)
}

func (c *restClient) post(path string, form url.Values, want int) map[string]any {
	return c.do(http.MethodPost, path, form, want)
}

func (c *restClient) do(method, path string, form url.Values, want int) map[string]any {
	c.t.Helper()
	code, j := c.try(method, path, form)
	if code != want {
		c.t.Fatalf("%s %s: %d %v, want %d", method, path, code, j, want)
	}
	return j
}

// try sends one request; code 0 when it could not.
func (c *restClient) try(method, path string, form url.Values) (int, map[string]any) {
	var body []byte
	if form != nil {
		body = []byte(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(c.sid, c.token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var j map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&j)
	return resp.StatusCode, j
}

// loopbackCarrier is a carrier gateway on sipgo on a loopback UDP port:
// it answers every INVITE 200 with plain G.711 and counts BYEs.
type loopbackCarrier struct {
	addr netip.AddrPort
	uas  *labUAS
	conn net.PacketConn
	bye  chan struct{}
}

func startLoopbackCarrier(t *testing.T) *loopbackCarrier {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	c := &loopbackCarrier{addr: addr, conn: conn, bye: make(chan struct{}, 16)}
	answer := func(string) string {
		return "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
	}
	contact := sip.Uri{Scheme: "sip", User: "carrier", Host: "127.0.0.1", Port: int(addr.Port())}
	c.uas = startLabUAS(t, contact, answer, func(srv *sipgo.Server) error {
		srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
			c.bye <- struct{}{}
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		})
		return srv.ServeUDP(conn)
	})
	return c
}

func (c *loopbackCarrier) String() string { return c.addr.String() }

// waitBye waits for the carrier's next BYE.
func (c *loopbackCarrier) waitBye(t *testing.T) {
	t.Helper()
	select {
	case <-c.bye:
	case <-time.After(byeTimeout + 10*time.Second): // the edge sends it at once; the margin is for a loaded machine
		t.Fatal("the edge sent the carrier no BYE")
	}
}

// byes counts the BYEs received so far (waiting a little for one in
// flight).
func (c *loopbackCarrier) byes() int {
	n := 0
	for {
		select {
		case <-c.bye:
			n++
		case <-time.After(500 * time.Millisecond):
			return n
		}
	}
}

// loopbackUAC is a customer's PBX on a loopback UDP socket placing one
// call: INVITE (200 → ACK), then BYE.
type loopbackUAC struct {
	raw            *rawUAC
	toTag, contact string
	ruri, from     string
}

func newLoopbackUAC(t *testing.T, server netip.AddrPort) *loopbackUAC {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &loopbackUAC{raw: &rawUAC{conn: c, local: c.LocalAddr().(*net.UDPAddr).AddrPort(), server: server, tag: "pbx-1"}}
}

// invite places the call and returns the final response (ACKed when 200).
func (u *loopbackUAC) invite(t *testing.T, ruri, from string) *sip.Response {
	t.Helper()
	u.ruri, u.from = ruri, from
	u.raw.callID = fmt.Sprintf("acct-%d@pbx", time.Now().UnixNano())
	u.send(t, "INVITE", ruri, "", 1, goodSDP)
	res := u.raw.final(t, "INVITE")
	if res.StatusCode == 200 {
		u.toTag, _ = res.To().Params.Get("tag")
		if res.Contact() == nil || u.toTag == "" {
			t.Fatalf("200 without Contact or To tag:\n%s", res)
		}
		u.contact = res.Contact().Address.String()
		u.send(t, "ACK", u.contact, u.toTag, 1, "")
	}
	return res
}

// bye hangs up; the edge must answer 200 (the call was still up).
func (u *loopbackUAC) bye(t *testing.T) {
	t.Helper()
	u.send(t, "BYE", u.contact, u.toTag, 2, "")
	if res := u.raw.final(t, "BYE"); res.StatusCode != 200 {
		t.Fatalf("BYE: %d %s", res.StatusCode, res.Reason)
	}
}

func (u *loopbackUAC) send(t *testing.T, method, ruri, toTag string, cseq int, body string) {
	t.Helper()
	r := u.raw
	r.branch++
	to := "<" + u.ruri + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	msg := fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d;rport\r\n"+
		"From: <sip:%s@pbx.example.com>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"+
		"Contact: <sip:pbx@%s>\r\nMax-Forwards: 70\r\n%sContent-Length: %d\r\n\r\n%s",
		method, ruri, r.local, r.callID, r.branch, u.from, r.tag, to, r.callID, cseq, method, r.local, ct, len(body), body)
	if _, err := r.conn.WriteToUDPAddrPort([]byte(msg), r.server); err != nil {
		t.Fatal(err)
	}
}

// Issue 10, item 3: an ACL entry wider than the store accepts today (one
// written before the /8 rule, say 0.0.0.0/1) trusts nobody: the
// signalling skips it rather than admit half the internet.
func TestWideACLFromOldStore(t *testing.T) {
	p := provision(t)
	// deniedHost's list holds 10.0.0.0/8; make it 0.0.0.0/1, which holds 127.0.0.1
	if n := storetest.Exec(t, p.dsn, `UPDATE ip_addresses SET ip_address = '0.0.0.0', cidr_prefix_length = 1 WHERE ip_address = '10.0.0.0'`); n != 1 {
		t.Fatalf("updated %d rows", n)
	}
	cfg := testConfig(t)
	edge := serve(t, cfg, p.st).Addr("UDP")
	got := exchange(t, "127.0.0.1:0", edge.String(), rawRequest{ruri: "sip:+14155550123@" + deniedHost, body: goodSDP}, 3*time.Second)
	if statusLine(got) != "SIP/2.0 403 Forbidden" {
		t.Fatalf("a source in an old 0.0.0.0/1 entry: %q", statusLine(got))
	}
}

// The same for an IPv6 range that carries IPv4 addresses (a tenant
// review, 2026-12-08): ::/32 is an IPv6 /32, the widest the store took,
// and it holds every IPv4-compatible and IPv4-mapped address (as
// 2001::/32 holds every Teredo client). An old entry of it trusts
// nobody; ::1, inside it, is refused.
func TestIPv4CarryingACLFromOldStore(t *testing.T) {
	pc, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	pc.Close()
	p := provision(t)
	if n := storetest.Exec(t, p.dsn, `UPDATE ip_addresses SET ip_address = '::', cidr_prefix_length = 32 WHERE ip_address = '10.0.0.0'`); n != 1 {
		t.Fatalf("updated %d rows", n)
	}
	cfg := testConfig(t)
	cfg.ListenUDP = "[::1]:0"
	edge := serve(t, cfg, p.st).Addr("UDP")
	got := exchange(t, "[::1]:0", edge.String(), rawRequest{ruri: "sip:+14155550123@" + deniedHost, body: goodSDP}, 3*time.Second)
	if statusLine(got) != "SIP/2.0 403 Forbidden" {
		t.Fatalf("::1 under an old ::/32 entry: %q", statusLine(got))
	}
}
