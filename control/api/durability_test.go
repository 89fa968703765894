package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

// apiClient is a bare HTTP client for load: form POSTs, JSON answers.
type apiClient struct {
	base, sid, token string
	hc               *http.Client
}

func (c *apiClient) do(method, path string, form url.Values) (int, map[string]any, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(c.sid, c.token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%d: %q: %w", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, m, nil
}

// ack is an acknowledged write: GET path must answer with field = want.
type ack struct {
	path, field, want string
}

// writerOps runs n operations for writer w against c and returns what was
// acknowledged. The mix: trunks (with domains), origination URLs, trunk
// updates, numbers bought and put on the trunk, IP ACL entries,
// credentials. Each writer updates only its own resources, so the last
// acknowledged value of each is the one that must be there.
func writerOps(c *apiClient, acct string, w, n int, stop *atomic.Bool) ([]ack, error) {
	var acks []ack
	A := "/2010-04-01/Accounts/" + acct
	post := func(path string, form url.Values, want int) (map[string]any, error) {
		code, m, err := c.do(http.MethodPost, path, form)
		if err != nil {
			return nil, err
		}
		if code != want {
			return nil, fmt.Errorf("POST %s: %d %v", path, code, m)
		}
		return m, nil
	}
	tr, err := post("/v1/Trunks", url.Values{"FriendlyName": {fmt.Sprint("writer ", w)}, "DomainName": {fmt.Sprintf("w%d.pstn.example.net", w)}}, 201)
	if err != nil {
		return acks, err
	}
	tk := tr["sid"].(string)
	acks = append(acks, ack{"/v1/Trunks/" + tk, "domain_name", fmt.Sprintf("w%d.pstn.example.net", w)})
	acl, err := post(A+"/SIP/IpAccessControlLists.json", url.Values{"FriendlyName": {fmt.Sprint("acl ", w)}}, 201)
	if err != nil {
		return acks, err
	}
	al := acl["sid"].(string)
	cl, err := post(A+"/SIP/CredentialLists.json", url.Values{"FriendlyName": {fmt.Sprint("cl ", w)}}, 201)
	if err != nil {
		return acks, err
	}
	cls := cl["sid"].(string)
	lastName := ""
	urls := 0
	for i := 0; i < n && !stop.Load(); i++ {
		switch i % 6 {
		case 0:
			name := fmt.Sprintf("w%d-%d", w, i)
			if _, err := post("/v1/Trunks/"+tk, url.Values{"FriendlyName": {name}}, 200); err != nil {
				return acks, err
			}
			lastName = name
		case 1:
			num := fmt.Sprintf("+1%03d%07d", 200+w, i)
			m, err := post(A+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {num}}, 201)
			if err != nil {
				return acks, err
			}
			pn := m["sid"].(string)
			acks = append(acks, ack{A + "/IncomingPhoneNumbers/" + pn + ".json", "phone_number", num})
			if _, err := post("/v1/Trunks/"+tk+"/PhoneNumbers", url.Values{"PhoneNumberSid": {pn}}, 201); err != nil {
				return acks, err
			}
			acks = append(acks, ack{"/v1/Trunks/" + tk + "/PhoneNumbers/" + pn, "phone_number", num})
		case 2:
			ip := fmt.Sprintf("10.%d.%d.%d", w, i/250, i%250)
			m, err := post(A+"/SIP/IpAccessControlLists/"+al+"/IpAddresses.json", url.Values{"FriendlyName": {"gw"}, "IpAddress": {ip}}, 201)
			if err != nil {
				return acks, err
			}
			acks = append(acks, ack{A + "/SIP/IpAccessControlLists/" + al + "/IpAddresses/" + m["sid"].(string) + ".json", "ip_address", ip})
		case 3:
			user := fmt.Sprintf("u%d", i)
			m, err := post(A+"/SIP/CredentialLists/"+cls+"/Credentials.json", url.Values{"Username": {user}, "Password": {"Load-Test-Passw0rd"}}, 201)
			if err != nil {
				return acks, err
			}
			acks = append(acks, ack{A + "/SIP/CredentialLists/" + cls + "/Credentials/" + m["sid"].(string) + ".json", "username", user})
		case 4:
			if urls == store.MaxOriginationURLs {
				m, err := post("/v1/Trunks", url.Values{"FriendlyName": {fmt.Sprintf("w%d-extra-%d", w, i)}}, 201)
				if err != nil {
					return acks, err
				}
				acks = append(acks, ack{"/v1/Trunks/" + m["sid"].(string), "friendly_name", fmt.Sprintf("w%d-extra-%d", w, i)})
				continue
			}
			su := fmt.Sprintf("sip:pbx%d-%d.example.com", w, i)
			m, err := post("/v1/Trunks/"+tk+"/OriginationUrls", url.Values{"SipUrl": {su}, "Priority": {"1"}, "Weight": {"1"}}, 201)
			if err != nil {
				return acks, err
			}
			urls++
			acks = append(acks, ack{"/v1/Trunks/" + tk + "/OriginationUrls/" + m["sid"].(string), "sip_url", su})
		case 5:
			code, m, err := c.do(http.MethodGet, "/v1/Trunks/"+tk, nil)
			if err != nil {
				return acks, err
			}
			if code != 200 || (lastName != "" && m["friendly_name"] != lastName) {
				return acks, fmt.Errorf("read-your-write: %d %v, want %q", code, m["friendly_name"], lastName)
			}
		}
	}
	if lastName != "" {
		acks = append(acks, ack{"/v1/Trunks/" + tk, "friendly_name", lastName})
	}
	return acks, nil
}

// verify checks every acknowledged write is there.
func verify(t *testing.T, c *apiClient, acks []ack) {
	t.Helper()
	for _, a := range acks {
		code, m, err := c.do(http.MethodGet, a.path, nil)
		if err != nil || code != 200 || fmt.Sprint(m[a.field]) != a.want {
			t.Fatalf("acknowledged write lost: GET %s: %d %v %v (want %s=%q)", a.path, code, err, m[a.field], a.field, a.want)
		}
	}
}

// TestConcurrentWriters: 8 writers × 500 operations over HTTP lose no
// acknowledged write, on both backends.
func TestConcurrentWriters(t *testing.T) {
	const writers, ops = 8, 500
	storetest.Run(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		c := &apiClient{base: e.srv.URL, sid: e.main.Sid, token: e.main.AuthToken, hc: &http.Client{Timeout: 30 * time.Second}}
		began := time.Now()
		var wg sync.WaitGroup
		results := make([][]ack, writers)
		errs := make([]error, writers)
		var stop atomic.Bool
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[w], errs[w] = writerOps(c, e.main.Sid, w, ops, &stop)
				if errs[w] != nil {
					stop.Store(true)
				}
			}()
		}
		wg.Wait()
		for w, err := range errs {
			if err != nil {
				t.Fatalf("writer %d: %v", w, err)
			}
		}
		var all []ack
		for _, r := range results {
			all = append(all, r...)
		}
		t.Logf("%s: %d writers × %d operations in %v; verifying %d acknowledged writes", backend, writers, ops, time.Since(began).Round(time.Millisecond), len(all))
		verify(t, c, all)
		// nothing extra either: the counts match what was acknowledged
		ctx := ctxT(t)
		nums, _, err := e.st.ListPhoneNumbers(ctx, e.main.Sid, store.NumberFilter{}, store.Page{Size: store.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, a := range all {
			if strings.Contains(a.path, "/IncomingPhoneNumbers/") {
				want++
			}
		}
		if len(nums) != want {
			t.Fatalf("%d numbers in the store, %d acknowledged", len(nums), want)
		}
	})
}

// TestMain removes the binary xtrunkBinary built.
func TestMain(m *testing.M) { os.Exit(labtest.Main(m)) }

// xtrunkBinary builds cmd/xtrunk once per test process.
func xtrunkBinary(t *testing.T) string { return labtest.BuildXtrunk(t) }

// apiProcess is a running `xtrunk api`.
type apiProcess struct {
	cmd  *exec.Cmd
	addr string
	logs *strings.Builder
	mu   *sync.Mutex
}

func startAPI(t *testing.T, bin, dir, dsn, sid, token string) *apiProcess {
	t.Helper()
	cmd := exec.Command(bin, "api", "--listen", "127.0.0.1:0", "--db", dsn, "--domain", "example.net", "--edges", "ashburn,dublin")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XTRUNK_ACCOUNT_SID="+sid, "XTRUNK_AUTH_TOKEN="+token, "XTRUNK_CONFIG=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &apiProcess{cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "api ready" {
				ready <- m["listen"].(string)
			}
		}
		close(ready)
	}()
	select {
	case addr, ok := <-ready:
		if !ok {
			t.Fatalf("xtrunk api exited:\n%s", p.logs.String())
		}
		p.addr = addr
	case <-time.After(60 * time.Second):
		t.Fatalf("xtrunk api not ready:\n%s", p.logs.String())
	}
	return p
}

// TestKillDashNine: `xtrunk api` killed with SIGKILL in the middle of a
// write load, restarted on the same store: it opens, and every write it
// had acknowledged is there.
func TestKillDashNine(t *testing.T) {
	bin := xtrunkBinary(t)
	storetest.Run(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		dsn := storetest.DSN(t, backend)
		sid, token := store.NewSid("AC"), store.NewAuthToken()
		p := startAPI(t, bin, dir, dsn, sid, token)
		c := &apiClient{base: "http://" + p.addr, sid: sid, token: token, hc: &http.Client{Timeout: 10 * time.Second}}

		const writers = 8
		var mu sync.Mutex
		var acked []ack
		var total atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					name := fmt.Sprintf("w%d-%d", w, i)
					code, m, err := c.do(http.MethodPost, "/v1/Trunks", url.Values{"FriendlyName": {name}, "DomainName": {name + ".pstn.example.net"}})
					if err != nil || code != 201 {
						return // the server is gone: this write was not acknowledged
					}
					mu.Lock()
					acked = append(acked, ack{"/v1/Trunks/" + m["sid"].(string), "domain_name", name + ".pstn.example.net"})
					mu.Unlock()
					total.Add(1)
				}
			}()
		}
		deadline := time.Now().Add(20 * time.Second)
		for total.Load() < 1000 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		stop.Store(true)
		wg.Wait()
		if len(acked) < 100 {
			t.Fatalf("only %d writes acknowledged before the kill", len(acked))
		}

		p2 := startAPI(t, bin, dir, dsn, sid, token)
		c.base = "http://" + p2.addr
		verify(t, c, acked)
		n := 0
		for next := "/v1/Trunks?PageSize=1000"; next != ""; {
			code, m, err := c.do(http.MethodGet, next, nil)
			if err != nil || code != 200 {
				t.Fatal(code, err)
			}
			n += len(m["trunks"].([]any))
			next, _ = m["meta"].(map[string]any)["next_page_url"].(string)
			next = strings.TrimPrefix(next, c.base)
		}
		t.Logf("%s: %d writes acknowledged before kill -9, all there after restart; %d trunks in the store (writes in flight may have committed unacknowledged)", backend, len(acked), n)
		if n < len(acked) || n > len(acked)+writers {
			t.Fatalf("%d trunks for %d acknowledged writes and %d writers", n, len(acked), writers)
		}
		p2.cmd.Process.Signal(syscall.SIGTERM)
		if err := p2.cmd.Wait(); err != nil {
			t.Fatalf("clean stop: %v", err)
		}
		if backend == "sqlite" {
			st := storetest.OpenDSN(t, dsn, storeOpts)
			if err := st.IntegrityCheck(context.Background()); err != nil {
				t.Fatalf("integrity_check: %v", err)
			}
		}
	})
}
