package signalling

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// Numbers the lab's Lookup server knows.
const (
	cnamNamed = labCarrierFrom  // has a name (with quotes to sanitise)
	cnamSlow  = "+13125550100"  // answered after 10 s, far past --cnam-timeout
	cnamIntl  = "+441632960123" // not US/Canada: never looked up
	cnamName  = "LAB CNAM Q BUSINESS"
)

// lookupServer is a real HTTP server in the relay namespace answering as
// Twilio Lookup v2 (GET /v2/PhoneNumbers/{number}?Fields=caller_name),
// recording when each number was asked for.
type lookupServer struct {
	addr string
	mu   sync.Mutex
	asks map[string][]time.Time
}

func startLookupServer(t *testing.T, l *trunkLab) *lookupServer {
	t.Helper()
	ls := &lookupServer{asks: map[string][]time.Time{}}
	var ln net.Listener
	if err := l.tri.Relay.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(l.tri.RelayCallerIP, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ls.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(ls.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ls
}

func (ls *lookupServer) serve(w http.ResponseWriter, r *http.Request) {
	number := strings.TrimPrefix(r.URL.Path, "/v2/PhoneNumbers/")
	ls.mu.Lock()
	ls.asks[number] = append(ls.asks[number], time.Now())
	ls.mu.Unlock()
	if r.URL.Query().Get("Fields") != "caller_name" {
		http.Error(w, `{"code":20001,"message":"Fields"}`, http.StatusBadRequest)
		return
	}
	name := ""
	switch number {
	case cnamNamed:
		name = `LAB CNAM "Q" BUSINESS`
	case cnamSlow:
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
			return
		}
		name = "TOO LATE"
	default:
		http.Error(w, `{"code":20404,"message":"not found","status":404}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"phone_number": number, "valid": true,
		"caller_name": map[string]any{"caller_name": name, "caller_type": "BUSINESS", "error_code": nil}})
}

// asked is when number was asked for, in order.
func (ls *lookupServer) asked(number string) []time.Time {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]time.Time(nil), ls.asks[number]...)
}

// Issue 12, CNAM (REQUIREMENTS §3.9): `xtrunk sip --cnam-url` toward a
// real Lookup v2 server, SIPp carrier and PBXs in the lab's namespaces.
// A +1 caller's name reaches the PBX in From, Contact and
// P-Asserted-Identity (then from the cache); a +44 caller is not looked
// up and gets no name; a trunk without CnamLookupEnabled gets none; a
// lookup slower than --cnam-timeout is counted as a timeout and the call
// goes on without a name.
func TestCNAMLab(t *testing.T) {
	l := newTrunkLab(t, relayXtrunk)
	ls := startLookupServer(t, l)
	metrics := netip.AddrPortFrom(l.tri.RelayCallerIP, uint16(l.port())).String()
	sipAddr := l.startSIP(t, sipOpts{metrics: metrics, extra: []string{
		// 3 s: the named lookups must beat it on a loaded machine too (at
		// 500 ms a slow round trip lost the name); the slow server is far
		// past it.
		"--cnam-url", "http://" + ls.addr + "/v2/PhoneNumbers/{number}?Fields=caller_name", "--cnam-timeout", "3s"}})
	scrape := func() string { return httpGetIn(t, l.tri.Relay, "http://"+metrics+"/metrics") }
	series := func(trunk, result string, n int) string {
		return `xtrunk_sip_cnam_lookups_total{result="` + result + `",trunk="` + trunk + `"} ` + itoa(n)
	}
	cnamOn := url.Values{"CnamLookupEnabled": {"true"}}

	t.Run("+1 caller: name in From, Contact, PAI; then cached", func(t *testing.T) {
		trunk, did := l.cnamCalls(t, sipAddr, cnamOn, cnamNamed, "uas_cnam.xml", 2)
		for _, c := range l.cdrs(t, did, 2) {
			if c.CallerName != cnamName {
				t.Errorf("CDR %s: caller_name %q, want %q", c.Sid, c.CallerName, cnamName)
			}
		}
		waitSeries(t, scrape, series(trunk, cnamHit, 1))
		waitSeries(t, scrape, series(trunk, cnamCached, 1))
		if n := len(ls.asked(cnamNamed)); n != 1 {
			t.Errorf("the Lookup server was asked %d times for %s, want 1 (then the cache)", n, cnamNamed)
		}
	})
	t.Run("+44 caller: no lookup, no name", func(t *testing.T) {
		_, did := l.cnamCalls(t, sipAddr, cnamOn, cnamIntl, "uas_nocnam.xml", 1)
		if c := l.cdrs(t, did, 1)[0]; c.CallerName != "" {
			t.Errorf("CDR caller_name %q for a +44 caller", c.CallerName)
		}
		if n := len(ls.asked(cnamIntl)); n != 0 {
			t.Errorf("the Lookup server was asked %d times for a +44 number", n)
		}
	})
	t.Run("trunk without CnamLookupEnabled: no lookup", func(t *testing.T) {
		before := len(ls.asked(cnamNamed))
		l.cnamCalls(t, sipAddr, nil, cnamNamed, "uas_nocnam.xml", 1)
		if n := len(ls.asked(cnamNamed)) - before; n != 0 {
			t.Errorf("the Lookup server was asked %d times for a trunk without CNAM", n)
		}
	})
	t.Run("a 10 s Lookup server: timeout counted, call goes on", func(t *testing.T) {
		trunk, did := l.cnamCalls(t, sipAddr, cnamOn, cnamSlow, "uas_nocnam.xml", 1)
		c := l.cdrs(t, did, 1)[0]
		checkCDR(t, c, cdrWant{dir: store.DirectionOriginating, from: cnamSlow, to: did, status: "completed", code: 200,
			hangup: hangupCause(hangupCaller, reasonBye), answered: true})
		waitSeries(t, scrape, series(trunk, cnamTimeout, 1))
		asks := ls.asked(cnamSlow)
		if len(asks) != 1 {
			t.Fatalf("the Lookup server was asked %d times for %s, want 1", len(asks), cnamSlow)
		}
		t.Logf("lookup started %v after the INVITE's admission; the call was answered %v after the lookup started (--cnam-timeout 3s, server 10 s)",
			asks[0].Sub(c.Start).Round(time.Millisecond), c.Answer.Sub(asks[0]).Round(time.Millisecond))
	})
}

// cnamCalls makes a trunk (form's fields) with one origination URI, a
// SIPp PBX running scenario on it, and n carrier calls from caller; it
// returns the trunk's sid and the DID.
func (l *trunkLab) cnamCalls(t *testing.T, sipAddr netip.AddrPort, form url.Values, caller, scenario string, n int) (string, string) {
	t.Helper()
	tri := l.tri
	pbxPort := l.port()
	name := "cnam-" + itoa(pbxPort)
	trunk, did := l.origTrunk(t, name, form, origURL{l.customerURI(pbxPort), 1, 10})
	pbx := l.startUAS(t, tri.Caller, name+"-pbx", scenario, tri.CallerIP, pbxPort, l.port(), "-m", itoa(n))
	uac := l.startSIPp(t, tri.Callee, name+"-carrier", "uac_carrier_quick.xml", tri.CalleeIP, l.port(), l.port(),
		"-d", "500", "-s", did, "-key", "caller", caller, "-m", itoa(n), "-l", "1", sipAddr.String())
	uac.wait(t)
	pbx.wait(t)
	return trunk, did
}
