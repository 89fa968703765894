package main

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPProfLoopbackOnly: the profiler refuses any address that is not a
// loopback IP and port, and on loopback serves the profile index and a
// named profile.
func TestPProfLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "[::]:6060", "198.18.0.1:6060", "localhost:6060", "127.0.0.1"} {
		if stop, _, err := servePProf(addr); !errors.Is(err, ErrConfig) {
			if stop != nil {
				stop()
			}
			t.Errorf("--pprof %s: err %v, want ErrConfig", addr, err)
		}
	}
	stop, bound, err := servePProf("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap"} {
		res, err := http.Get("http://" + bound + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("%s: %d, %d bytes", path, res.StatusCode, len(body))
		}
		if path == "/debug/pprof/goroutine?debug=1" && !strings.Contains(string(body), "goroutine profile") {
			t.Errorf("%s: not a goroutine profile: %.100s", path, body)
		}
	}
}
