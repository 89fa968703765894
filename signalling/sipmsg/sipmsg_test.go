package sipmsg

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestIsE164(t *testing.T) {
	for s, want := range map[string]bool{
		"+14155551212": true, "+442071234567": true, "+123456789012345": true,
		"14155551212": false, "+04155551212": false, "+1415555121a": false, "+1234567890123456": false, "+": false, "+1": false, "": false,
	} {
		if IsE164(s) != want {
			t.Errorf("IsE164(%q) = %v", s, !want)
		}
	}
}

func parse(t *testing.T, raw string) *sip.Request {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Request)
}

const base = "INVITE sip:+15105550100@acme.pstn.example.net SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 198.18.1.2:5060;branch=z9hG4bK-1\r\n" +
	"To: <sip:+15105550100@acme.pstn.example.net>\r\n" +
	"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n"

func TestCallerID(t *testing.T) {
	cases := []struct {
		headers, number, source string
		ok                      bool
	}{
		{"From: <sip:+14155551212@pbx.example.com>;tag=a\r\n", "+14155551212", "From", true},
		{"From: \"Front desk\" <sip:reception@pbx.example.com>;tag=a\r\nRemote-Party-ID: <sip:+14155551213@pbx>;party=calling\r\nP-Asserted-Identity: <sip:+14155551214@pbx>\r\n", "+14155551213", "Remote-Party-ID", true},
		{"From: <sip:anonymous@anonymous.invalid>;tag=a\r\nP-Asserted-Identity: \"Bob, Jr\" <sip:bob@pbx>, <tel:+14155551215>\r\nP-Asserted-Identity: <sip:+14155551216;user=phone@pbx>\r\n", "+14155551216", "P-Asserted-Identity", true},
		{"From: <sip:alice@pbx.example.com>;tag=a\r\n", "", "", false},
	}
	for _, c := range cases {
		req := parse(t, base+c.headers+"\r\n")
		n, s, ok := CallerID(req)
		if n != c.number || s != c.source || ok != c.ok {
			t.Errorf("%q: got %q %q %v", c.headers, n, s, ok)
		}
	}
}

func TestMaxForwards(t *testing.T) {
	if v, err := CheckMaxForwards(parse(t, base+"From: <sip:a@b>;tag=1\r\nMax-Forwards: 70\r\n\r\n")); err != nil || v != 69 {
		t.Errorf("70: %d %v", v, err)
	}
	if _, err := CheckMaxForwards(parse(t, base+"From: <sip:a@b>;tag=1\r\nMax-Forwards: 19\r\n\r\n")); err != ErrTooManyHops {
		t.Errorf("19: %v", err)
	}
	if v, err := CheckMaxForwards(parse(t, base+"From: <sip:a@b>;tag=1\r\nMax-Forwards: 20\r\n\r\n")); err != nil || v != 19 {
		t.Errorf("20: %d %v", v, err)
	}
}

func TestTrunkDomain(t *testing.T) {
	edges := []string{"ashburn", "dublin"}
	cases := []struct {
		host, domain, edge string
		ok                 bool
	}{
		{"acme.pstn.example.net", "acme.pstn.example.net", "", true},
		{"ACME.pstn.example.net.", "acme.pstn.example.net", "", true},
		{"acme.pstn.ashburn.example.net", "acme.pstn.example.net", "ashburn", true},
		{"a.b.pstn.dublin.example.net", "a.b.pstn.example.net", "dublin", true},
		{"a.b.pstn.example.net", "a.b.pstn.example.net", "", true},
		{"pstn.example.net", "", "", false},
		{"acme.example.net", "", "", false},
		{"acme.pstn.example.org", "", "", false},
		{"acme.pstn.frankfurt.example.net", "", "", false},
	}
	for _, c := range cases {
		d, e, ok := TrunkDomain(c.host, "example.net", edges)
		if d != c.domain || e != c.edge || ok != c.ok {
			t.Errorf("%s: %q %q %v", c.host, d, e, ok)
		}
	}
}
