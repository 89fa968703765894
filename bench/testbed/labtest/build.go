package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Build describes one build of cmd/xtrunk for tests that run xtrunk as a
// process: the zero Build is a plain `go build`.
type Build struct {
	// LDFlags are passed as -ldflags (tests stamp main.version with them).
	LDFlags string
	// Env is added to the go command's environment (CGO_ENABLED=0 for the
	// .deb test, which ships a static binary).
	Env []string
}

// builds caches one binary per distinct Build for the test process; the
// go build cache makes a rebuild cheap, but linking is not.
var builds struct {
	sync.Mutex
	dir  string
	bins map[string]*built
}

type built struct {
	once sync.Once
	path string
	err  error
}

// BuildXtrunk builds cmd/xtrunk once per test process and returns the
// binary's path. Packages that use it remove the binary with Main.
func BuildXtrunk(t testing.TB) string {
	t.Helper()
	return Build{}.Binary(t)
}

// Binary builds cmd/xtrunk as b describes, once per test process, and
// returns the binary's path; a failed build fails the test.
func (b Build) Binary(t testing.TB) string {
	t.Helper()
	key := b.LDFlags + "\x00" + strings.Join(b.Env, "\x00")
	builds.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*built{}
	}
	e := builds.bins[key]
	if e == nil {
		e = &built{}
		builds.bins[key] = e
	}
	builds.Unlock()
	e.once.Do(func() { e.path, e.err = b.build() })
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.path
}

func (b Build) build() (string, error) {
	builds.Lock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "xtrunk-test-bin-")
		if err != nil {
			builds.Unlock()
			return "", err
		}
		builds.dir = dir
	}
	dir := builds.dir
	builds.Unlock()
	bin, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	bin = filepath.Join(bin, "xtrunk")
	args := []string{"build"}
	if b.LDFlags != "" {
		args = append(args, "-ldflags", b.LDFlags)
	}
	args = append(args, "-o", bin, "github.com/xtrunk/xtrunk/cmd/xtrunk")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), b.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// Main runs a package's tests (call it from TestMain) and then removes the
// binaries BuildXtrunk built, returning the exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir = ""
	}
	return code
}
