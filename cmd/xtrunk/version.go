package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version and revision are stamped at build time by the Makefile:
//
//	-ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.revision=$(git rev-parse HEAD)"
//
// A plain `go build` leaves them empty; buildVersion then falls back to
// the VCS information Go records in the binary.
var version, revision string

// buildVersion is the version and revision of this binary: the stamped
// ones, else Go's VCS stamp (a revision, "-dirty" when modified), else
// "dev".
func buildVersion() (ver, rev string) {
	ver, rev = version, revision
	if bi, ok := debug.ReadBuildInfo(); ok {
		var modified bool
		var vcsRev string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev == "" {
			rev = vcsRev
		}
		if ver == "" && vcsRev != "" {
			ver = vcsRev[:min(12, len(vcsRev))]
			if modified {
				ver += "-dirty"
			}
		}
		if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
	}
	if ver == "" {
		ver = "dev"
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev
}

func printVersion(w io.Writer) {
	ver, rev := buildVersion()
	fmt.Fprintf(w, "xtrunk %s\ncommit %s\n%s %s/%s\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildInfo is xtrunk_build_info{version,revision,goversion} 1, on every
// process's /metrics: which build is running where.
func buildInfo() prometheus.Collector {
	ver, rev := buildVersion()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "xtrunk_build_info",
		Help:        "Always 1; the labels say which build of xtrunk this process runs.",
		ConstLabels: prometheus.Labels{"version": ver, "revision": rev, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

// versionString is the version for log lines.
func versionString() string {
	v, _ := buildVersion()
	return v
}
