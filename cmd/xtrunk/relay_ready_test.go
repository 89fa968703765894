package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// getIn is an HTTP GET from inside namespace ns: the socket is made in
// the namespace, the request and response go over it from here.
func getIn(t *testing.T, ns *testbed.NS, addr, path string) (int, string, error) {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr); err != nil {
		return 0, "", err
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// TestRelayReadyWithXDP: an XDP relay process in a namespace lab is ready
// once the program is attached and NG answers, and exports which build and
// which XDP mode it runs.
func TestRelayReadyWithXDP(t *testing.T) {
	tri := labtest.NewTriangle(t)
	pins := labtest.MountBPFFS(t)
	empty := filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	metrics := net.JoinHostPort(tri.RelayCallerIP.String(), "9101")
	cmd := tri.Relay.Command(t.Context(), xtrunkBinary(t), "relay", "--config", empty,
		"--interface", "customer/"+tri.RelayCallerIP.String(), "--interface", "carrier/"+tri.RelayCalleeIP.String(),
		"--listen-ng", net.JoinHostPort(tri.RelayCallerIP.String(), "2223"), "--metrics", metrics,
		"--pin-path", filepath.Join(pins, "relay"), "--remove-on-exit", "--recording-dir", t.TempDir())
	p, err := tri.Relay.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var code int
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if code, body, err = getIn(t, tri.Relay, metrics, "/readyz"); err == nil && code == 200 {
			break
		}
		select {
		case <-p.Done():
			t.Fatalf("relay exited: %v\n%s", p.Wait(), p.Output())
		default:
		}
	}
	if code != 200 || !strings.Contains(body, `"dataplane":"ok"`) || !strings.Contains(body, `"ng":"ok"`) {
		t.Fatalf("/readyz: %d %s %v\n%s", code, body, err, p.Output())
	}
	_, m, err := getIn(t, tri.Relay, metrics, "/metrics")
	if err != nil || !strings.Contains(m, "xtrunk_build_info{") || !strings.Contains(m, `xtrunk_relay_dataplane_info{device=`) {
		t.Errorf("/metrics: %v\n%s", err, m)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("relay exit: %v\n%s", err, p.Output())
	}
}
