package signalling

import (
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestTwilioSignatureKnownAnswers checks twilioSignature against the
// examples of Twilio's signature-validation documentation (its
// api-snippets: auth token 12345, the URL with its query string, the POST
// parameters of a call).
func TestTwilioSignatureKnownAnswers(t *testing.T) {
	const u = "https://mycompany.com/myapp.php?foo=1&bar=2"
	for caller, want := range map[string]string{
		"+14158675309": "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
		"+14158675310": "GvWf1cFY/Q7PnoempGyD5oXAezc=",
	} {
		params := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {caller}, "Digits": {"1234"},
			"From": {caller}, "To": {"+18005551212"}}
		if got := twilioSignature("12345", u, params); got != want {
			t.Errorf("caller %s: signature %s, want %s", caller, got, want)
		}
	}
	if twilioSignature("12345", u, nil) == twilioSignature("12346", u, nil) {
		t.Error("the token does not change the signature")
	}
}

func TestResolveTwiMLURL(t *testing.T) {
	base, _ := url.Parse("https://dr.example.com/a/b?x=1")
	for ref, want := range map[string]string{
		"/next":                "https://dr.example.com/next",
		"c.wav":                "https://dr.example.com/a/c.wav",
		" http://o.example/x ": "http://o.example/x",
	} {
		if got := resolve(base, ref); got != want {
			t.Errorf("resolve(%q) = %q, want %q", ref, got, want)
		}
	}
}

// TestDialCallerID: a <Dial callerId> goes into the B-leg's From only as
// an E.164 number; anything else (a header smuggled in with character
// references for CR LF, a URI, a name) is ignored and logged, and the
// call keeps its own caller ID.
func TestDialCallerID(t *testing.T) {
	logs := &syncBuffer{}
	r := &drRun{c: &call{log: zerolog.New(logs)}}
	for _, tc := range []struct{ attr, want string }{
		{`callerId="+15551230000"`, "+15551230000"},
		{`callerId=" +15551230000 "`, "+15551230000"},
		{``, ""},
		{`callerId="+1555&#13;&#10;X-Injected: yes"`, ""},
		{`callerId="sip:alice@example.com"`, ""},
		{`callerId="a&gt;b"`, ""},
		{`callerId="15551230000"`, ""},
	} {
		verbs, err := parseTwiML([]byte(`<Response><Dial ` + tc.attr + `><Number>+15557654321</Number></Dial></Response>`))
		if err != nil {
			t.Fatalf("%s: %v", tc.attr, err)
		}
		if got := r.callerID(verbs[0]); got != tc.want {
			t.Errorf("%s: caller ID %q, want %q", tc.attr, got, tc.want)
		}
	}
	if n := strings.Count(logs.take(), "is not E.164, ignored"); n != 4 {
		t.Errorf("%d warnings logged, want 4", n)
	}
}
