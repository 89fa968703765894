// Package labtest holds the test wrappers around bench/testbed: they take a
// testing.TB, skip (or, with XTRUNK_REQUIRE_PRIVILEGED=1, fail) a test that
// cannot run, and tie what they create to the test's lifetime with
// t.Cleanup. They live apart from bench/testbed so the lab package, which
// `xtrunk demo` and `xtrunk bench` use, does not put the testing package in
// the xtrunk binary.
package labtest

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
)

// privileged is testbed.Privileged, replaceable in tests.
var privileged = testbed.Privileged

// RequirePrivileged skips the test unless the process can build labs: root
// with CAP_SYS_ADMIN (namespaces), CAP_NET_ADMIN (links) and CAP_BPF (XDP).
// With XTRUNK_REQUIRE_PRIVILEGED=1 it fails the test instead, so CI cannot
// pass by skipping.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	err := privileged()
	if err == nil {
		return
	}
	if testbed.RequirePrivilegedSet() {
		t.Fatalf("privileged test skipped but %s=1: %v", testbed.RequirePrivilegedEnv, err)
	}
	t.Skipf("privileged test: %v", err)
}

// RequireCommand looks name up in PATH for a lab test and returns its
// path. Without it the test is skipped, or fails with
// XTRUNK_REQUIRE_PRIVILEGED=1 (make deps installs the lab's peers).
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if testbed.RequirePrivilegedSet() {
		t.Fatalf("%s not installed (make deps): %v", name, err)
	}
	t.Skipf("%s not installed: %v", name, err)
	return ""
}

// NewLab creates a lab for a test and closes it when the test ends, whether
// it passes or fails. It skips the test without privileges (see
// RequirePrivileged).
func NewLab(t testing.TB, opts ...testbed.Option) *testbed.Lab {
	t.Helper()
	RequirePrivileged(t)
	l, err := testbed.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, l)
	return l
}

// closeAtEnd closes l when the test ends.
func closeAtEnd(t testing.TB, l *testbed.Lab) {
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab %s: %v", l.Prefix, err)
		}
	})
}

// NewTriangle builds a testbed.Triangle for a test and tears it down when
// the test ends. It skips without privileges (see RequirePrivileged).
func NewTriangle(t testing.TB, opts ...testbed.Option) *testbed.Triangle {
	t.Helper()
	RequirePrivileged(t)
	tr, err := testbed.NewTriangleLab(opts...)
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, tr.Lab)
	return tr
}

// MountBPFFS mounts a bpffs of the test's own (testbed.MountBPFFS), in the
// host's mount namespace, and unmounts it when the test ends. Pins under it
// are shared by every process of the test (`ip netns exec` gives each
// process a fresh /sys, so /sys/fs/bpf would not be).
func MountBPFFS(t testing.TB) string {
	t.Helper()
	dir, err := testbed.MountBPFFS("xtrunk-test-bpffs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testbed.UnmountBPFFS(dir); err != nil {
			t.Errorf("bpffs: %v", err)
		}
	})
	return dir
}

// rtpengineStartTimeout bounds the wait for rtpengine's first pong.
const rtpengineStartTimeout = 15 * time.Second

// StartRtpengine runs Debian's rtpengine in the triangle's relay namespace
// for a test (testbed.RtpengineArgs) and waits until it answers ping. It
// returns the NG address. Without rtpengine the test is skipped (see
// RequireCommand); at its end rtpengine is stopped, and its output logged
// if the test failed.
func StartRtpengine(t testing.TB, tri *testbed.Triangle) string {
	t.Helper()
	addr, _ := StartRtpengineProcess(t, tri)
	return addr
}

// StartRtpengineProcess is StartRtpengine that also returns rtpengine's
// process, for benchmarks that read its CPU time.
func StartRtpengineProcess(t testing.TB, tri *testbed.Triangle) (string, *testbed.Process) {
	t.Helper()
	bin := RequireCommand(t, "rtpengine")
	addr := testbed.RtpengineNGAddr(tri)
	p, err := tri.Relay.Start(context.Background(), bin, testbed.RtpengineArgs(tri, addr)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping rtpengine: %v", err)
		}
		if t.Failed() {
			t.Logf("rtpengine output:\n%s", p.Output())
		}
	})
	if err := testbed.WaitNG(tri.Caller, addr, p.Done(), rtpengineStartTimeout); err != nil {
		t.Fatalf("rtpengine: %v\n%s", err, p.Output())
	}
	return addr, p
}
