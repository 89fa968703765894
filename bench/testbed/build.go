package testbed

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildXtrunk builds cmd/xtrunk into the test's temporary directory and
// returns the binary's path, for tests that run xtrunk as processes in a
// lab.
func BuildXtrunk(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xtrunk")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/xtrunk/xtrunk/cmd/xtrunk").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
