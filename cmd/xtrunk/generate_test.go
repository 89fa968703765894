package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// hideHostHeaders is the Makefile's HIDE_HOST_HEADERS: in a private mount
// namespace, an empty read-only tmpfs over /usr/include.
const hideHostHeaders = "mount --make-rprivate / && mount -t tmpfs -o ro,size=64k xtrunk-no-host-headers /usr/include"

// TestBPFGeneratesFromVendoredHeaders runs each package's //go:generate
// bpf2go line with the host's /usr/include hidden and checks the output is
// the committed bpf2go output byte for byte: the programs build from
// bpf/headers alone, without libbpf-dev or linux-libc-dev (make
// check-generate does the same over the working tree).
func TestBPFGeneratesFromVendoredHeaders(t *testing.T) {
	labtest.RequirePrivileged(t)
	labtest.RequireCommand(t, "clang")
	labtest.RequireCommand(t, "unshare")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"bpf", "bench/media"} {
		t.Run(dir, func(t *testing.T) {
			pkg, args := bpf2goLine(t, filepath.Join(root, dir, "gen.go"))
			out := t.TempDir()
			script := hideHostHeaders + " && test -z \"$(ls -A /usr/include)\" && go tool bpf2go -output-dir " + out + " " + args
			cmd := exec.Command("unshare", "-m", "sh", "-c", script)
			cmd.Dir = filepath.Join(root, dir)
			cmd.Env = append(os.Environ(), "GOPACKAGE="+pkg)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("bpf2go with /usr/include hidden: %v\n%s", err, b)
			}
			made, err := os.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(made) == 0 {
				t.Fatal("bpf2go wrote nothing")
			}
			for _, e := range made {
				got, err := os.ReadFile(filepath.Join(out, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				want, err := os.ReadFile(filepath.Join(root, dir, e.Name()))
				if err != nil {
					t.Fatalf("bpf2go made %s, which is not committed: %v", e.Name(), err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s/%s differs from what bpf2go makes from the vendored headers: run make generate and commit it", dir, e.Name())
				}
			}
		})
	}
}

// bpf2goLine reads a gen.go: its package name and the arguments of its
// "//go:generate go tool bpf2go" line, quoted as go generate (and sh) read them.
func bpf2goLine(t *testing.T, path string) (pkg, args string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "package "); ok {
			pkg = strings.TrimSpace(p)
		}
		if a, ok := strings.CutPrefix(l, "//go:generate go tool bpf2go "); ok {
			args = a
		}
	}
	if pkg == "" || args == "" {
		t.Fatalf("%s: no package line or no //go:generate go tool bpf2go line", path)
	}
	return pkg, args
}
