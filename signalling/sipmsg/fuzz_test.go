package sipmsg

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// Fuzz tests for every check of this package, on what sipgo's parser
// makes of arbitrary bytes; the seeds are the RFC 4475 torture messages.

var e164RE = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

func FuzzIsE164(f *testing.F) {
	for _, s := range []string{"+14155551212", "+123456789012345", "+1234567890123456", "+0", "+", "", "14155551212", "+1\x00", "+１２３"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsE164(s), e164RE.MatchString(s); got != want {
			t.Fatalf("IsE164(%q) = %v, want %v", s, got, want)
		}
	})
}

func FuzzTrunkDomain(f *testing.F) {
	for _, s := range [][3]string{
		{"acme.pstn.example.net", "example.net", "ashburn"},
		{"ACME.pstn.Ashburn.example.net.", "example.net", "ashburn"},
		{"a.b.pstn.example.net", "example.net", ""},
		{".pstn.example.net", "example.net", ""},
		{"pstn.example.net", "example.net", "pstn"},
		{"x.pstn.pstn.example.net", "example.net", "pstn"},
		{"example.net", "", ""},
		{"İ.pstn.example.net", "example.net", "İ"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, host, base, edge string) {
		var edges []string
		if edge != "" {
			edges = []string{edge}
		}
		domain, e, ok := TrunkDomain(host, base, edges)
		if !ok {
			if domain != "" || e != "" {
				t.Fatalf("TrunkDomain(%q, %q, %q) = %q, %q, false", host, base, edges, domain, e)
			}
			return
		}
		if e != "" && e != edge {
			t.Fatalf("TrunkDomain(%q, %q, %q): edge %q is not one of the edges", host, base, edges, e)
		}
		suffix := ".pstn." + strings.ToLower(base)
		if !strings.HasSuffix(domain, suffix) || len(domain) == len(suffix) {
			t.Fatalf("TrunkDomain(%q, %q, %q) = %q: not {prefix}%s", host, base, edges, domain, suffix)
		}
		// The global form of a trunk's domain is that trunk's domain.
		if d2, e2, ok2 := TrunkDomain(domain, base, nil); !ok2 || d2 != domain || e2 != "" {
			t.Fatalf("TrunkDomain(%q) = %q via %q, but TrunkDomain(%q) = %q, %q, %v", host, domain, e, domain, d2, e2, ok2)
		}
	})
}

// torture adds the RFC 4475 messages as seeds.
func torture(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "torture", "*", "*.dat"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no torture messages: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

var numberRE = regexp.MustCompile(`^\+?[0-9]+$`)

// FuzzRequestChecks runs what admission asks of a parsed request:
// CallerID, CheckMaxForwards, TrunkDomain and IsE164 of the Request-URI.
func FuzzRequestChecks(f *testing.F) {
	torture(f)
	f.Add([]byte(base + "From: <sip:+14155551212@pbx.example.com>;tag=a\r\nMax-Forwards: 19\r\n\r\n"))
	f.Add([]byte(base + "From: <sip:anonymous@anonymous.invalid>;tag=a\r\nRemote-Party-ID: \"a,b\" <sip:x@y>, <sip:+14155551213;x=y@pbx>;party=calling\r\nP-Asserted-Identity: <tel:+14155551214>\r\nMax-Forwards: 4294967296\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := sip.ParseMessage(raw)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		if number, source, ok := CallerID(req); ok {
			if !numberRE.MatchString(number) || source == "" {
				t.Fatalf("CallerID = %q from %q", number, source)
			}
		}
		mf, err := CheckMaxForwards(req)
		if err == nil {
			if h := req.MaxForwards(); h != nil && (uint32(*h) < MinMaxForwards || mf != uint32(*h)-1) {
				t.Fatalf("Max-Forwards %d passed as %d", *h, mf)
			}
		}
		_ = IsE164(req.Recipient.User)
		_, _, _ = TrunkDomain(req.Recipient.Host, "example.net", []string{"ashburn"})
		for _, h := range req.GetHeaders("P-Asserted-Identity") {
			_ = splitList(h.Value())
		}
	})
}

func FuzzSplitList(f *testing.F) {
	for _, s := range []string{`"a,b" <sip:x@y>, <sip:z@w>`, `<<,>>`, `",`, `>,<`, ``, `,,,`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts := splitList(s)
		if len(parts) == 0 {
			t.Fatalf("splitList(%q) is empty", s)
		}
		if len(parts) != strings.Count(s, ",")+1 {
			// quoted or bracketed commas join parts; never more parts than commas+1
			if len(parts) > strings.Count(s, ",")+1 {
				t.Fatalf("splitList(%q) = %q", s, parts)
			}
		}
	})
}
