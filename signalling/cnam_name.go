package signalling

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxCNAMName is the longest display name put toward a PBX, in
// characters (CNAM itself has 15; a Lookup source may have more).
const maxCNAMName = 64

// sanitizeDisplayName makes a caller name safe inside a SIP display
// name's quotes (sipgo writes it between "" as is): quotes and
// backslashes are dropped (they would end or escape the quoted string),
// control, format (bidi overrides), private-use and invalid characters
// become spaces, runs of spaces one, and the result is trimmed to
// maxCNAMName characters.
func sanitizeDisplayName(s string) string {
	var b strings.Builder
	n, space := 0, false
	for len(s) > 0 && n < maxCNAMName {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		switch {
		case r == '"' || r == '\\':
			continue
		case r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) ||
			unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs) || !unicode.IsPrint(r) && r != ' ':
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
			n++
			if n == maxCNAMName {
				break
			}
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// nonUSCanadaNPAs are the NANP area codes of countries other than the
// United States (territories included) and Canada: the Caribbean and
// Bermuda. CNAM is a US/Canada service (REQUIREMENTS §3.9).
var nonUSCanadaNPAs = map[string]bool{
	"242": true, "246": true, "264": true, "268": true, "284": true, "345": true, "441": true, "473": true,
	"649": true, "658": true, "664": true, "721": true, "758": true, "767": true, "784": true, "809": true,
	"829": true, "849": true, "868": true, "869": true, "876": true,
}

// isUSCanadaNumber reports whether e164 is +1 NPA NXX XXXX of the shape
// the NANP assigns (NPA and NXX start with 2-9 and are not N11 service
// codes; an NPA's middle digit is not 9, kept for expansion) and its NPA
// is not one of another NANP country.
func isUSCanadaNumber(e164 string) bool {
	if len(e164) != 12 || !strings.HasPrefix(e164, "+1") {
		return false
	}
	d := e164[2:]
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	npa, nxx := d[0:3], d[3:6]
	if npa[0] < '2' || npa[1] == '9' || npa[1:] == "11" {
		return false
	}
	if nxx[0] < '2' || nxx[1:] == "11" {
		return false
	}
	return !nonUSCanadaNPAs[npa]
}

// lookupV2 is the part of a Twilio Lookup v2 answer
// (GET /v2/PhoneNumbers/{number}?Fields=caller_name) the edge reads.
type lookupV2 struct {
	CallerName *struct {
		CallerName *string          `json:"caller_name"`
		CallerType *string          `json:"caller_type"`
		ErrorCode  *json.RawMessage `json:"error_code"`
	} `json:"caller_name"`
}

// parseLookupV2 reads a Lookup v2 answer: the caller's sanitised name,
// "" when the answer has none (no caller_name object, a null or empty
// name, or an error_code), and an error only for a body that is not such
// an answer at all.
func parseLookupV2(body []byte) (string, error) {
	var v lookupV2
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("%w: %w", ErrCNAM, err)
	}
	cn := v.CallerName
	if cn == nil || cn.CallerName == nil {
		return "", nil
	}
	if cn.ErrorCode != nil && !bytes.Equal(bytes.TrimSpace(*cn.ErrorCode), []byte("null")) {
		return "", nil
	}
	return sanitizeDisplayName(*cn.CallerName), nil
}
