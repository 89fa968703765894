package testbed

import "testing"

// The package's own tests cannot import bench/testbed/labtest (it imports
// this package), so they carry these three small wrappers; other packages'
// tests use labtest's.

// RequirePrivileged skips (or with XTRUNK_REQUIRE_PRIVILEGED=1 fails) t
// unless the process can build labs.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	err := Privileged()
	if err == nil {
		return
	}
	if RequirePrivilegedSet() {
		t.Fatalf("privileged test skipped but %s=1: %v", RequirePrivilegedEnv, err)
	}
	t.Skipf("privileged test: %v", err)
}

// NewT creates a lab closed when t ends.
func NewT(t testing.TB, opts ...Option) *Lab {
	t.Helper()
	RequirePrivileged(t)
	l, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab %s: %v", l.Prefix, err)
		}
	})
	return l
}

// NewTriangle builds a Triangle closed when t ends.
func NewTriangle(t testing.TB, opts ...Option) *Triangle {
	t.Helper()
	tr, err := NewT(t, opts...).buildTriangle()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
