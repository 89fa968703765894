package labtest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

func TestRequirePrivilegedSkipsOrFails(t *testing.T) {
	saved := privileged
	t.Cleanup(func() { privileged = saved })
	privileged = func() error { return fmt.Errorf("%w: not root", testbed.ErrNotPrivileged) }
	for _, tt := range []struct {
		env       string
		wantFatal bool
		wantMsg   string
	}{
		{"", false, "not root"},
		{"0", false, "not root"},
		{"1", true, "privileged test skipped but XTRUNK_REQUIRE_PRIVILEGED=1"},
	} {
		t.Setenv(testbed.RequirePrivilegedEnv, tt.env)
		ft := &fakeT{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			RequirePrivileged(ft)
		}()
		<-done
		if !ft.ended || ft.fatal != tt.wantFatal || !strings.Contains(ft.msg, tt.wantMsg) {
			t.Errorf("%s=%q: ended=%v fatal=%v msg=%q; want fatal=%v and %q", testbed.RequirePrivilegedEnv, tt.env, ft.ended, ft.fatal, ft.msg, tt.wantFatal, tt.wantMsg)
		}
	}
}

// fakeT records how RequirePrivileged ends a test.
type fakeT struct {
	testing.TB
	ended, fatal bool
	msg          string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.ended, f.fatal, f.msg = true, true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Skipf(format string, args ...any) {
	f.ended, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
