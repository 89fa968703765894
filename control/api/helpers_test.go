package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"
	trunking "github.com/twilio/twilio-go/rest/trunking/v1"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

var storeOpts = store.Options{Domain: "example.net", Edges: []string{"ashburn", "dublin"}}

// env is an API server on a fresh store with its main account, and
// Twilio's own Go clients pointed at it.
type env struct {
	st     *store.Store
	dsn    string
	srv    *httptest.Server
	main   store.Account
	recDir string               // the API's --recording-dir
	tk     *trunking.ApiService // as the main account
	v10    *twapi.ApiService
}

func newEnv(t testing.TB, backend string, opts ...api.Option) *env {
	t.Helper()
	dsn := storetest.DSN(t, backend)
	st := storetest.OpenDSN(t, dsn, storeOpts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	main, _, err := st.Bootstrap(ctx, "", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	recDir := t.TempDir()
	srv := httptest.NewServer(api.New(st, append([]api.Option{api.WithRecordingDir(recDir)}, opts...)...))
	t.Cleanup(srv.Close)
	e := &env{st: st, dsn: dsn, srv: srv, main: main, recDir: recDir}
	e.tk, e.v10 = e.clients(main.Sid, main.AuthToken)
	return e
}

// rewrite sends every request to the test server, whatever host Twilio's
// client aimed at: the one change twilio-go needs to talk to xtrunk.
type rewrite struct{ target *url.URL }

func (rw rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = rw.target.Scheme, rw.target.Host, rw.target.Host
	return http.DefaultTransport.RoundTrip(r)
}

func (e *env) clients(sid, token string) (*trunking.ApiService, *twapi.ApiService) {
	u, _ := url.Parse(e.srv.URL)
	c := &client.Client{
		Credentials: client.NewCredentials(sid, token),
		HTTPClient:  &http.Client{Transport: rewrite{u}, Timeout: 30 * time.Second},
	}
	c.SetAccountSid(sid)
	return trunking.NewApiServiceWithClient(c), twapi.NewApiServiceWithClient(c)
}

// twErr asserts err is Twilio's error document with status and code.
func twErr(t testing.TB, err error, status, code int) {
	t.Helper()
	var te *client.TwilioRestError
	if !errors.As(err, &te) {
		t.Fatalf("want a TwilioRestError %d/%d, got %T %v", status, code, err, err)
	}
	if te.Status != status || te.Code != code || te.Message == "" || te.MoreInfo == "" {
		t.Fatalf("want %d/%d, got %+v", status, code, te)
	}
}

type res[T any] struct {
	v   T
	err error
}

// r(f()).must(t) unwraps a (value, error) pair or fails the test.
func r[T any](v T, err error) res[T] { return res[T]{v, err} }

func (x res[T]) must(t testing.TB) T {
	t.Helper()
	if x.err != nil {
		t.Fatal(x.err)
	}
	return x.v
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ctxT(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}
