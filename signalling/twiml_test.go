package signalling

import (
	"errors"
	"testing"
)

func TestParseTwiML(t *testing.T) {
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Play loop="2">https://example.com/a.wav</Play>
  <Dial timeout="10" callerId="+15551230000" action="/next">
    <Number>+15557654321</Number>
    <Sip>sip:pbx@example.com</Sip>
  </Dial>
  <Say>skipped &amp; logged</Say>
  <Hangup/>
</Response>`
	vs, err := parseTwiML([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 4 || vs[0].Name != "Play" || vs[0].attr("loop") != "2" || vs[0].Text != "https://example.com/a.wav" {
		t.Fatalf("verbs: %+v", vs)
	}
	d := vs[1]
	if d.attr("callerId") != "+15551230000" || len(d.Children) != 2 || d.Children[0].Text != "+15557654321" || d.Children[1].Name != "Sip" {
		t.Errorf("dial: %+v", d)
	}
	if vs[2].Text != "skipped & logged" || vs[3].Name != "Hangup" {
		t.Errorf("tail: %+v", vs[2:])
	}
	for name, bad := range map[string]string{
		"empty":         "",
		"not xml":       "hello",
		"wrong root":    "<Foo/>",
		"unterminated":  "<Response><Dial>",
		"two roots":     "<Response/><Response/>",
		"text outside":  "<Response/>junk",
		"mismatched":    "<Response><Dial></Number></Response>",
		"too deep":      "<Response><a><b><c><d/></c></b></a></Response>",
		"undefined ent": "<Response><Say>&foo;</Say></Response>",
	} {
		if _, err := parseTwiML([]byte(bad)); !errors.Is(err, ErrBadTwiML) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseTwiML(f *testing.F) {
	f.Add([]byte(`<Response><Dial timeout="5"><Sip>sip:a@b</Sip></Dial><Reject reason="busy"/></Response>`))
	f.Add([]byte(`<?xml version="1.0"?><Response><Play loop="0">http://x/y.wav</Play><Redirect>/n</Redirect></Response>`))
	f.Add([]byte(`<Response><![CDATA[x]]><!-- c --><Pause length="1"/></Response>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := parseTwiML(b)
		if err != nil && !errors.Is(err, ErrBadTwiML) {
			t.Errorf("error not ErrBadTwiML: %v", err)
		}
		if err == nil && len(vs) > maxTwiMLVerbs {
			t.Errorf("%d verbs", len(vs))
		}
	})
}
