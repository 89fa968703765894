package signalling

import (
	"net/url"
	"testing"
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
