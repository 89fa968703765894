package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
	"github.com/xtrunk/xtrunk/control/ng"
)

// `xtrunk relay` serves NG only to --ng-allow sources (issue 10 item 9):
// a real relay process on loopback (userspace dataplane) answers a ping
// from 127.0.0.1 (the default list), drops one from 127.0.0.99 without a
// word and counts it in xtrunk_relay_ng_refused_total; restarted with
// --ng-allow 127.0.0.99/32 added, it answers 127.0.0.99 too.
func TestNGAllowProcess(t *testing.T) {
	bin := labtest.BuildXtrunk(t)
	t.Run("default", func(t *testing.T) {
		ngAddr, metrics := startLoopbackRelay(t, bin)
		if !pingFrom(t, "127.0.0.1", ngAddr) {
			t.Fatal("no pong to 127.0.0.1, which the default --ng-allow allows")
		}
		for range 3 {
			if pingFrom(t, "127.0.0.99", ngAddr) {
				t.Fatal("127.0.0.99 got an answer although outside --ng-allow")
			}
		}
		if got := metricValue(t, metrics, "xtrunk_relay_ng_refused_total"); got < 3 {
			t.Errorf("xtrunk_relay_ng_refused_total = %v, want >= 3 (every ping from 127.0.0.99, retransmits included)", got)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		ngAddr, metrics := startLoopbackRelay(t, bin, "--ng-allow", "127.0.0.1/32", "--ng-allow", "127.0.0.99/32")
		if !pingFrom(t, "127.0.0.99", ngAddr) {
			t.Fatal("no pong to 127.0.0.99 with --ng-allow 127.0.0.99/32")
		}
		if !pingFrom(t, "127.0.0.1", ngAddr) {
			t.Fatal("no pong to 127.0.0.1, listed too")
		}
		if pingFrom(t, "127.0.0.98", ngAddr) {
			t.Fatal("127.0.0.98 got an answer")
		}
		if got := metricValue(t, metrics, "xtrunk_relay_ng_refused_total"); got < 1 {
			t.Errorf("xtrunk_relay_ng_refused_total = %v, want >= 1", got)
		}
	})
}

// freeLoopbackPort is a port nobody holds on 127.0.0.1 right now (for
// network, "udp" or "tcp").
func freeLoopbackPort(t *testing.T, network string) int {
	t.Helper()
	var addr net.Addr
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = c.LocalAddr()
		c.Close()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr()
		l.Close()
	}
	_, p, _ := net.SplitHostPort(addr.String())
	n, _ := strconv.Atoi(p)
	return n
}

// startLoopbackRelay runs `xtrunk relay` (userspace) on 127.0.0.1 with
// extra flags and returns its NG address and metrics URL once it answers
// 127.0.0.1... or, when 127.0.0.1 is not allowed, once it is up.
func startLoopbackRelay(t *testing.T, bin string, extra ...string) (ngAddr, metrics string) {
	t.Helper()
	ngAddr = "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t, "udp"))
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t, "tcp"))
	pmin := 40000 + 4*(freeLoopbackPort(t, "udp")%2000)
	conf := filepath.Join(t.TempDir(), "xtrunk.yaml") // flags only, never a stray ./xtrunk.yaml
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"relay", "--config", conf, "--interface", "default/127.0.0.1", "--dataplane", "userspace",
		"--listen-ng", ngAddr, "--metrics", metricsAddr, "--port-min", strconv.Itoa(pmin), "--port-max", strconv.Itoa(pmin + 3),
		"--recording-dir", t.TempDir()}, extra...)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	var outMu sync.Mutex
	cmd.Stdout = &lockedWriter{w: &out, mu: &outMu}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	output := func() string { outMu.Lock(); defer outMu.Unlock(); return out.String() }
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("xtrunk relay:\n%s", output())
		}
	})
	metrics = "http://" + metricsAddr + "/metrics"
	deadline := time.Now().Add(15 * time.Second)
	for {
		if res, err := http.Get(metrics); err == nil {
			res.Body.Close()
			return ngAddr, metrics
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not up within 15 s:\n%s", output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pingFrom sends NG pings from src (an address of lo) to ngAddr and
// reports whether a pong came back.
func pingFrom(t *testing.T, src, ngAddr string) bool {
	t.Helper()
	c, err := ng.Dial(ngAddr, ng.WithLocalAddr(src+":0"), ng.WithTimeout(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Do(context.Background(), ng.Dict{"command": "ping"})
	return err == nil && res.Str("result") == "pong"
}

// metricValue reads one unlabelled series from a /metrics page.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, _ = fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("%s not in %s", name, url)
	return 0
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
