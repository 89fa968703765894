// Package domain holds the rules about numbers, names and SIP URIs that
// provisioning and calls must agree on: what an E.164 number is, what text
// a value may hold, what an origination URI may say and which edge it
// names. control/store applies them to what it stores (with Twilio error
// codes); signalling applies the same ones to the calls it handles, so
// what provisioning accepts is what a call may use. It imports only the
// standard library, so a SIP parser can use it without the store's
// database drivers.
package domain

import (
	"strings"
	"unicode/utf8"
)

// ValidE164 reports whether s is an E.164 number: '+', a non-zero digit,
// and at most 15 digits in all.
func ValidE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckText rejects what no text column may hold: invalid UTF-8 and NUL
// (PostgreSQL refuses both; SQLite would store them and hand them back),
// and more than max characters when max > 0. param names the value in the
// error.
func CheckText(param, v string, max int) error {
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return invalid(param, "%s is not valid text", param)
	}
	if max > 0 && utf8.RuneCountInString(v) > max {
		return invalid(param, "%s is longer than %d characters", param, max)
	}
	return nil
}

// ValidLabel reports whether l is a DNS label as trunk domains and
// origination hosts use them: 1 to 63 lower-case letters, digits and
// dashes, not starting or ending with a dash.
func ValidLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// legacyRegions are Twilio's region codes for ;region= in origination
// URIs, mapped to the edge names xtrunk uses for the same sites.
var legacyRegions = map[string]string{
	"us1": "ashburn", "us2": "umatilla", "ie1": "dublin", "de1": "frankfurt",
	"sg1": "singapore", "jp1": "tokyo", "br1": "sao-paulo", "au1": "sydney",
}

// EdgeOfRegion maps a ;region= value to an edge name: a legacy region
// code (us1 … au1) to its edge, anything else (an edge name) as it is,
// lower-cased.
func EdgeOfRegion(region string) string {
	r := strings.ToLower(region)
	if e, ok := legacyRegions[r]; ok {
		return e
	}
	return r
}
