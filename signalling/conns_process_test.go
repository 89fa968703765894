package signalling

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTCPLimitsProcess runs `xtrunk sip` as its own process on loopback
// with --tcp-max-per-source 32 and --tcp-idle-timeout 5s: 40 connections
// from one address get 32 through, 1,000 silent connections from 50
// others are all closed by the idle timeout, and the process's sockets
// come back to where they were.
func TestTCPLimitsProcess(t *testing.T) {
	p := provision(t)
	bin := xtrunkBinary(t)
	cfgFile := filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(cfgFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "sip", "--config", cfgFile, "--listen-udp", "127.0.0.1:0", "--domain", testDomain,
		"--db", p.dsn, "--relay-ng", freeUDPPort(t, "127.0.0.1"), "--tcp-max-per-source", "32", "--tcp-idle-timeout", "5s")
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e struct{ Message, TCP string }
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Message == "sip ready" {
				addr <- e.TCP
			}
		}
	}()
	var tcp string
	select {
	case tcp = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("xtrunk sip did not say it was ready")
	}
	// fds counts the process's sockets: the store's pool opens SQLite
	// connections (a database file and its WAL each) as concurrent
	// queries need them, at any time, which a count of every descriptor
	// took for connections not given back (a CI failure: "descriptors
	// back").
	fds := func() int {
		dir := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				n++
			}
		}
		return n
	}
	// the count once the process has opened what it keeps open (the
	// listeners, the relay's NG socket): the same three times in a row
	fds0, same := fds(), 0
	for deadline := time.Now().Add(5 * time.Second); same < 3 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if n := fds(); n == fds0 {
			same++
		} else {
			fds0, same = n, 0
		}
	}

	var one []*net.TCPConn
	dialled := time.Now()
	for i := 0; i < 40; i++ {
		c, err := dialFrom("127.0.14.1", tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		one = append(one, c)
	}
	// The refused ones are closed at accept, which a loaded machine may
	// get to after any fixed pause. Until the idle timeout (5 s from
	// accept, so from after dialled) every close is a refusal: poll until
	// the 8 are seen or that time is nearly up.
	closed := make([]bool, len(one))
	refused := 0
	for refused < 8 && time.Since(dialled) < 4*time.Second {
		for i, c := range one {
			if !closed[i] && closedByPeer(c, time.Millisecond) {
				closed[i] = true
				refused++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if refused != 8 {
		t.Errorf("%d of 40 connections from one address refused, want 8", refused)
	}

	conns := dialMany(t, tcp, 50, 20)
	defer closeAll(conns)
	waitFor(t, 10*time.Second, "1,000 connections accepted", func() bool { return fds() >= fds0+1000 })
	for i, c := range conns {
		if !closedByPeer(c, 30*time.Second) {
			t.Fatalf("idle connection %d still open", i)
		}
	}
	waitFor(t, 30*time.Second, "descriptors back", func() bool { return fds() <= fds0+2 })
	// Still serving: a keep-alive ping gets its pong.
	c, err := dialFrom("127.0.14.2", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "\r\n" {
		t.Fatalf("after the flood: %q, %v", buf[:n], err)
	}
}
