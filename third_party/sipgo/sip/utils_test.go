package sip

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testCreateMessage(t testing.TB, rawMsg []string) Message {
	msg, err := ParseMessage([]byte(strings.Join(rawMsg, "\r\n")))
	require.NoError(t, err)
	return msg
}

func testCreateRequest(t testing.TB, method string, targetSipUri string, transport, fromAddr string) (r *Request) {
	branch := GenerateBranch()
	callid := "gotest-" + time.Now().Format(time.RFC3339Nano)
	ftag := fmt.Sprintf("%d", time.Now().UnixNano())
	return testCreateMessage(t, []string{
		method + " " + targetSipUri + " SIP/2.0",
		"Via: SIP/2.0/" + transport + " " + fromAddr + ";branch=" + branch,
		"From: \"Alice\" <sip:alice@" + fromAddr + ">;tag=" + ftag,
		"To: \"Bob\" <" + targetSipUri + ">",
		"Call-ID: " + callid,
		"CSeq: 1 INVITE",
		"Content-Length: 0",
		"",
		"",
	}).(*Request)
}

func testCreateInvite(t testing.TB, targetSipUri string, transport, fromAddr string) (r *Request, callid string, ftag string) {
	branch := GenerateBranch()
	callid = "gotest-" + time.Now().Format(time.RFC3339Nano)
	ftag = fmt.Sprintf("%d", time.Now().UnixNano())
	return testCreateMessage(t, []string{
		"INVITE " + targetSipUri + " SIP/2.0",
		"Via: SIP/2.0/" + transport + " " + fromAddr + ";branch=" + branch,
		"From: \"Alice\" <sip:alice@" + fromAddr + ">;tag=" + ftag,
		"To: \"Bob\" <" + targetSipUri + ">",
		"Call-ID: " + callid,
		"CSeq: 1 INVITE",
		"Content-Length: 0",
		"",
		"",
	}).(*Request), callid, ftag
}

func TestResolveInterfaceIP(t *testing.T) {
	if os.Getenv("TEST_INTEGRATION") == "" {
		t.Skip("Use TEST_INTEGRATION env value to run this test")
		return
	}

	ip, iface, err := ResolveInterfacesIP("ip4", nil)
	require.NoError(t, err)
	require.NotNil(t, ip)

	t.Log(ip.String(), len(ip), iface.Name)
	assert.False(t, ip.IsLoopback())
	assert.NotNil(t, ip.To4())

	ip, iface, err = ResolveInterfacesIP("ip6", nil)
	require.NoError(t, err)
	require.NotNil(t, ip)

	t.Log(ip.String(), len(ip), iface.Name)
	assert.False(t, ip.IsLoopback())
	assert.Nil(t, ip.To4())

	ipnet := net.IPNet{
		IP:   net.ParseIP("127.0.0.1"),
		Mask: net.IPv4Mask(255, 255, 255, 0),
	}
	ip, iface, err = ResolveInterfacesIP("ip4", &ipnet)
	require.NoError(t, err)
	require.NotNil(t, ip)
}

func TestASCIIToLower(t *testing.T) {
	val := ASCIIToLower("CSeq")
	assert.Equal(t, "cseq", val)
}

func BenchmarkHeaderToLower(b *testing.B) {
	//BenchmarkHeaderToLower-8   	1000000000	         1.033 ns/op	       0 B/op	       0 allocs/op
	h := "Content-Type"
	for i := 0; i < b.N; i++ {
		s := HeaderToLower(h)
		if s != "content-type" {
			b.Fatal("Header not lowered")
		}
	}
}

func TestHeaderNameIs(t *testing.T) {
	for _, name := range []string{"Via", "Session-Expires", "SESSION-EXPIRES", "session-expires", "X-Tenant", "Min-SE", "Ā-x", ""} {
		for _, lower := range []string{"via", "VIA", "session-expires", "Session-Expires", "x-tenant", "min-se", "MIN-SE", "ā-x", ""} {
			assert.Equal(t, HeaderToLower(name) == HeaderToLower(lower), headerNameIs(name, lower), "%q vs %q", name, lower)
			assert.Equal(t, headerNameIs(name, lower), headerNameIs(lower, name))
		}
	}
}

// BenchmarkGetHeaderMixedCase: a lookup in a message whose headers have
// names outside HeaderToLower's table allocates nothing.
func BenchmarkGetHeaderMixedCase(b *testing.B) {
	req := NewRequest(INVITE, Uri{User: "bob", Host: "example.net"})
	for _, n := range []string{"Session-Expires", "Supported", "Allow", "User-Agent", "P-Asserted-Identity", "X-Tenant"} {
		req.AppendHeader(NewHeader(n, "x"))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if req.GetHeader("min-se") != nil || len(req.GetHeaders("Require")) != 0 {
			b.Fatal("found a header that is not there")
		}
	}
}

func TestIsIPV6(t *testing.T) {
	for host, want := range map[string]bool{"::1": true, "2001:db8::1": true, "::ffff:192.0.2.1": false, "fe80::1": true,
		"192.0.2.1": false, "example.net": false, "localhost": false, "": false, "[::1]": false} {
		assert.Equal(t, want, isIPV6(host), host)
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { isIPV6("192.0.2.1"); isIPV6("pbx.example.net") }))
}
