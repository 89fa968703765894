package signalling

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/bench/testbed"
	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// svwar (Debian's sipvicious) enumerates extensions by how a server
// answers REGISTER or INVITE for each name of a word list. Against the
// edge it must find nobody, the provisioned user (pbx1) included: every
// name gets the same answer (REGISTER: 403, refused on a trunk; INVITE:
// 407 with a fresh challenge), or nothing at all when the abuse guard
// recognises svwar's User-Agent. So that the guard cannot hide a
// difference, each scan runs twice: with svwar's own User-Agent
// ("friendly-scanner") and with a PBX's (svwar has no option for it; the
// test sets sipvicious' default by hand). And since svwar only varies the
// Request-URI user, the test also tries each name as a digest username
// with a wrong password: the answers must not tell the names apart.

// svwarWords starts with the provisioned user: svwar stops at the first
// name whose answer is the one its random probe got ("We got an unknown
// response"), so that is the name it really compares.
var svwarWords = []string{testUser, "100", "1000", "1001", "2000", "admin", "administrator", "guest", "operator", "pbx", "pbx2", "sip", "test", "trunk", "user", "voip"}

// benignUA is what svwar sends instead of "friendly-scanner" in the
// second run of each scan.
const benignUA = "Grandstream UCM6202 V1.0.20.38"

func svwarPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("svwar")
	if err != nil {
		if os.Getenv("XTRUNK_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("svwar not installed (Debian package sipvicious; make deps)")
		}
		t.Skip("svwar not installed (Debian package sipvicious)")
	}
	return p
}

func TestSvwarLab(t *testing.T) {
	tri := labtest.NewTriangle(t)
	svwar := svwarPath(t)
	p := provision(t)
	bin := buildXtrunk(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	// No call is placed: the relay address only has to be well-formed.
	ngAddr := netip.AddrPortFrom(tri.RelayCallerIP, 2223).String()
	sipAddr := netip.AddrPortFrom(tri.RelayCallerIP, 5060)
	startEdge(t, ctx, tri, bin, p.dsn, ngAddr, sipAddr.String(), false, nil)
	// The PBX's IPv4 address is in the ACL trunk's list (that edge runs
	// without flood and auth-failure bans: the ACL exempts it on its own
	// trunk only); its IPv6 address is in no list, like a scanner's.
	// A second edge listens on IPv6 for the scans from there.
	sipAddr6 := netip.AddrPortFrom(tri.RelayCallerIP6, 5060)
	edge6 := startEdgeQuiet(t, ctx, tri, bin, p.dsn, ngAddr, sipAddr6.String())

	words := filepath.Join(t.TempDir(), "words.txt")
	if err := os.WriteFile(words, []byte(strings.Join(svwarWords, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// One sipvicious process with its default User-Agent replaced.
	const benign = `import sys
sys.path.insert(0, '/usr/share/sipvicious')
import sipvicious.libs.svhelper as h
d = list(h.makeRequest.__defaults__)
d[d.index('friendly-scanner')] = sys.argv[1]
h.makeRequest.__defaults__ = tuple(d)
from sipvicious import svwar
sys.argv = ['svwar'] + sys.argv[2:]
svwar.main()
`
	localPort := 5070
	for _, v6 := range []bool{false, true} {
		for _, method := range []string{"REGISTER", "INVITE"} {
			for _, ua := range []string{"", benignUA} {
				// a port of its own per run: svwar's ACK for a 407 has a
				// branch of its own, so the edge retransmits the 407 for
				// 32 s, and those would keep the next run listening
				localPort++
				from := tri.CallerIP
				if v6 {
					// and an address of its own: a scan is a flood
					// (more than 16 requests in 2 s), which bans its
					// source for 5 minutes
					from = netip.MustParseAddr(fmt.Sprintf("2001:2:0:1::%x", localPort))
					if _, err := tri.Caller.IP("addr", "add", netip.PrefixFrom(from, 64).String(), "dev", tri.CallerLink.A.Name, "nodad"); err != nil {
						t.Fatal(err)
					}
				}
				svwarRun(t, ctx, tri, svwar, benign, words, from, localPort, method, ua)
			}
		}
	}
	select {
	case <-edge6.Done():
		t.Fatalf("the IPv6 edge exited:\n%s", edge6.Output())
	default:
	}

	// Names as digest usernames, wrong password: one answer for all.
	t.Run("digest usernames", func(t *testing.T) {
		uri := "sip:" + labCalled + "@" + acmeHost
		var first, firstUser string
		nonces := map[string]bool{}
		nonceRE := regexp.MustCompile(`nonce="[^"]*"`)
		for _, w := range svwarWords {
			var res string
			err := tri.Caller.Do(func() error {
				laddr := netip.AddrPortFrom(tri.CallerIP, 0).String()
				chal := challengeOf(t, exchange(t, laddr, sipAddr.String(), rawRequest{ruri: uri}, 2*time.Second))
				h := answerChallenge(t, chal, w, "Wr0ngPassw0rd!2026", uri, 1, true)
				res = exchange(t, laddr, sipAddr.String(), rawRequest{ruri: uri, extra: "Proxy-Authorization: " + h + "\r\n"}, 2*time.Second)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			chal := challengeOf(t, res)
			n := nonceRE.FindString(chal)
			if nonces[n] {
				t.Fatalf("nonce %s handed out twice", n)
			}
			nonces[n] = true
			shape := statusLine(res) + " " + nonceRE.ReplaceAllString(chal, `nonce=""`) + " " + headerNames(res)
			if first == "" {
				first, firstUser = shape, w
			} else if shape != first {
				t.Fatalf("%q and %q are told apart:\n%s\n%s", firstUser, w, first, shape)
			}
		}
		t.Logf("every username: %s", first)
	})
}

// headerNames lists a message's header names in order.
func headerNames(msg string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	var names []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		if name, _, ok := strings.Cut(line, ":"); ok {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}

// svwarRun runs one svwar scan of acme's domain from from (IPv4: the
// edge on the relay's IPv4 address; IPv6: the one on its IPv6 address),
// with svwar's User-Agent or ua, and checks it found nobody: with a
// scanner's User-Agent from an address in no ACL because nothing answers
// it, otherwise because every name gets the random probe's answer.
func svwarRun(t *testing.T, ctx context.Context, tri *testbed.Triangle, svwar, benign, words string, from netip.Addr, localPort int, method, ua string) {
	t.Helper()
	name := method + "/friendly-scanner"
	if ua != "" {
		name = method + "/benign UA"
	}
	target := tri.RelayCallerIP
	if from.Is6() {
		name, target = "IPv6/"+name, tri.RelayCallerIP6
	}
	t.Run(name, func(t *testing.T) {
		// never -A (it asks msn.com for our address) nor -R (it mails
		// the author): -x and -b pin the address
		args := []string{"-p", "5060", "-P", fmt.Sprint(localPort), "-x", from.String(), "-b", from.String(),
			"-d", words, "-m", method, "--domain", acmeHost, "--force", "--maximumtime", "3", "-t", "0.05"}
		if from.Is6() {
			args = append(args, "-6")
		}
		args = append(args, target.String())
		cmd, cmdArgs := svwar, args
		if ua != "" {
			cmd, cmdArgs = "python3", append([]string{"-c", benign, ua}, args...)
		}
		sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
		defer scancel()
		proc, err := tri.Caller.Start(sctx, cmd, cmdArgs...)
		if err != nil {
			t.Fatal(err)
		}
		_ = proc.Wait() // svwar's exit status says nothing about what it found
		out := proc.Output()
		t.Logf("svwar -m %s (%s):\n%s", method, name, out)
		if regexp.MustCompile(`(?i)extension '[^']*' (exists|probably exists)|we have \d+ extensions|Unhandled exception`).MatchString(out) {
			t.Fatalf("svwar found something:\n%s", out)
		}
		for _, w := range svwarWords {
			if regexp.MustCompile(`(?m)^\s*\|?\s*` + regexp.QuoteMeta(w) + `\s*\|`).MatchString(out) {
				t.Fatalf("svwar lists %q:\n%s", w, out)
			}
		}
		// svwar 0.3.3 says "socket error: timed out" when its first
		// probe gets no answer, then "found nothing"
		silence := strings.Contains(out, "socket error: timed out") || strings.Contains(out, "No server response")
		switch {
		case silence:
			// the abuse guard's scanner rule; a trunk's ACL exempts its
			// addresses from it on that trunk only, and the scans go to
			// another, so the PBX's IPv4 address gets silence too
			if ua != "" {
				t.Errorf("svwar got no answer:\n%s", out)
			}
		case strings.Contains(out, "found nothing"):
			// it got the provisioned user's answer and took it for
			// the random probe's
			if !strings.Contains(out, `"`+testUser+`" <sip:`+testUser+`@`) {
				t.Errorf("svwar found nothing without comparing %q's answer:\n%s", testUser, out)
			}
			if ua == "" {
				t.Errorf("a scanner's User-Agent was answered on a trunk whose ACL does not hold it:\n%s", out)
			}
		default:
			t.Fatalf("svwar neither found nothing nor got no answer:\n%s", out)
		}
	})
}

// startEdgeQuiet runs `xtrunk sip` on listen (UDP only) and waits for its
// "sip ready" without pinging it (an OPTIONS counts against the source).
func startEdgeQuiet(t *testing.T, ctx context.Context, tri *testbed.Triangle, bin, dsn, ngAddr, listen string) *testbed.Process {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "xtrunk.yaml")
	if err := os.WriteFile(cfgFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The lab's PBX address is in the open trunk's IP ACL, which exempts
	// it on that trunk only and never from auth-failure bans: the scans
	// and the digest-usernames probe to the acme trunk would be banned
	// midway. This lab is about what a scanner learns, not bans
	// (TestGuardAuthFailures, TestFloodIgnoredLoopback,
	// TestGuardLoopbackSources).
	proc, err := tri.Relay.Start(ctx, bin, "sip", "--config", cfgFile, "--listen-udp", listen, "--listen-tcp", "",
		"--domain", testDomain, "--relay-ng", ngAddr, "--db", dsn, "--default-cps", "0", "--log-level", "info",
		"--guard-max-auth-failures", "0", "--guard-max-requests", "0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = proc.Stop()
		if t.Failed() {
			t.Logf("xtrunk sip on %s:\n%s", listen, proc.Output())
		}
	})
	// Its start may take startupStoreTimeout for the store alone: 10 s of
	// waiting raced it on a loaded machine.
	for deadline := time.Now().Add(startupStoreTimeout + 10*time.Second); time.Now().Before(deadline) && !strings.Contains(proc.Output(), "sip ready"); {
		select {
		case <-proc.Done():
			t.Fatalf("xtrunk sip on %s exited:\n%s", listen, proc.Output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !strings.Contains(proc.Output(), "sip ready") {
		t.Fatalf("xtrunk sip on %s is not ready:\n%s", listen, proc.Output())
	}
	return proc
}
