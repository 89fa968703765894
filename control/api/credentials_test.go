package api_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/api"
	"github.com/xtrunk/xtrunk/control/store"
	"github.com/xtrunk/xtrunk/control/store/storetest"
)

const (
	testSid   = "AC0123456789abcdef0123456789abcdef"
	testToken = "0123456789abcdef0123456789ABCDEF"
)

func TestParseCredentials(t *testing.T) {
	good := "XTRUNK_ACCOUNT_SID=" + testSid + "\nXTRUNK_AUTH_TOKEN=" + testToken + "\n"
	for _, tc := range []struct{ body, err string }{
		{good, ""},
		{"# comment\n\n  export XTRUNK_ACCOUNT_SID=\"" + testSid + "\"\nXTRUNK_AUTH_TOKEN = '" + testToken + "'", ""},
		{"XTRUNK_ACCOUNT_SID=" + testSid + "\n", "needs both"},
		{"# c\nXTRUNK_ACCOUNT_SID " + testSid + "\n", "line 2: want KEY=value"},
		{good + "XTRUNK_AUTH_TOKEN=" + testToken + "\n", "line 3: XTRUNK_AUTH_TOKEN already set on line 2"},
		{"XTRUNK_ACCOUNT_SID=AB" + testSid[2:] + "\nXTRUNK_AUTH_TOKEN=" + testToken + "\n", "line 1: XTRUNK_ACCOUNT_SID is not AC"},
		{"XTRUNK_ACCOUNT_SID=" + testSid + "\nXTRUNK_AUTH_TOKEN=changeme\n", "line 2: XTRUNK_AUTH_TOKEN is not 32 hex"},
		{good + "PASSWORD=x\n", `line 3: unknown key "PASSWORD"`},
		{strings.Repeat("x", 70000), "line 1"},
	} {
		c, err := api.ParseCredentials([]byte(tc.body))
		switch {
		case tc.err == "" && (err != nil || c.AccountSid != testSid || c.AuthToken != testToken):
			t.Errorf("%q: %+v %v", tc.body, c, err)
		case tc.err != "" && (err == nil || !errors.Is(err, api.ErrCredentials) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%.60q: err %v, want %q", tc.body, err, tc.err)
		}
	}
}

// TestCredentialsFile: written 0600 and never over an existing file; read
// back; refused when the group or others may read it.
func TestCredentialsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "credentials")
	c := api.NewCredentials()
	if !store.ValidSid(store.PrefixAccount, c.AccountSid) || len(c.AuthToken) != 32 || c == api.NewCredentials() {
		t.Fatalf("NewCredentials: %+v", c)
	}
	if _, err := api.WriteCredentials(p, c, false); err != nil {
		t.Fatal(err)
	}
	if _, err := api.WriteCredentials(p, api.NewCredentials(), false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite: %v", err)
	}
	if got, err := api.ReadCredentials(p); err != nil || got != c {
		t.Fatalf("read back %+v %v", got, err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ReadCredentials(p); !errors.Is(err, api.ErrCredentialsMode) || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Fatalf("group-readable: %v", err)
	}
}

// TestEnsureMainAccountFromFile: an empty store takes the account from
// the file; the environment wins over it; a malformed, exposed, or
// foreign file is an error that names it.
func TestEnsureMainAccountFromFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "credentials")
	c := api.NewCredentials()
	if _, err := api.WriteCredentials(p, c, false); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	st := storetest.Open(t, "sqlite", storeOpts)
	a := r(api.EnsureMainAccount(ctxT(t), st, "", "", p, log)).must(t)
	if a.Sid != c.AccountSid || a.AuthToken != c.AuthToken {
		t.Fatalf("account %s, file %s", a.Sid, c.AccountSid)
	}
	if !strings.Contains(logs.String(), p) || strings.Contains(logs.String(), c.AuthToken) {
		t.Errorf("log: %s", logs.String())
	}
	// a later start: the same account
	if b := r(api.EnsureMainAccount(ctxT(t), st, "", "", p, log)).must(t); b.Sid != a.Sid {
		t.Fatal("second start")
	}

	// the environment wins over the file
	st2 := storetest.Open(t, "sqlite", storeOpts)
	if b := r(api.EnsureMainAccount(ctxT(t), st2, testSid, strings.ToLower(testToken), p, log)).must(t); b.Sid != testSid {
		t.Fatalf("env: %s", b.Sid)
	}
	// a file naming an account the store lacks
	if _, err := api.EnsureMainAccount(ctxT(t), st2, "", "", p, log); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("foreign file: %v", err)
	}
	// malformed and exposed files
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("XTRUNK_ACCOUNT_SID="+testSid+"\nXTRUNK_AUTH_TOKEN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st3 := storetest.Open(t, "sqlite", storeOpts)
	if _, err := api.EnsureMainAccount(ctxT(t), st3, "", "", bad, log); !errors.Is(err, api.ErrCredentials) || !strings.Contains(err.Error(), bad+": ") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("malformed: %v", err)
	}
	if err := os.Chmod(p, 0o604); err != nil {
		t.Fatal(err)
	}
	if _, err := api.EnsureMainAccount(ctxT(t), st3, "", "", p, log); !errors.Is(err, api.ErrCredentialsMode) {
		t.Fatalf("world-readable: %v", err)
	}
}

// FuzzParseCredentials: any input gives credentials that are valid or an
// error, never a panic; what parses survives a write and read back.
func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte("XTRUNK_ACCOUNT_SID=" + testSid + "\nXTRUNK_AUTH_TOKEN=" + testToken + "\n"))
	f.Add([]byte("# x\nexport XTRUNK_ACCOUNT_SID='" + testSid + "'\r\nXTRUNK_AUTH_TOKEN=\"" + testToken + "\"\n"))
	f.Add([]byte("=\n=="))
	f.Add([]byte("XTRUNK_ACCOUNT_SID=\"\nXTRUNK_AUTH_TOKEN='"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := api.ParseCredentials(b)
		if err != nil {
			if !errors.Is(err, api.ErrCredentials) {
				t.Fatalf("error %v is not ErrCredentials", err)
			}
			return
		}
		if !store.ValidSid(store.PrefixAccount, c.AccountSid) || len(c.AuthToken) != 32 {
			t.Fatalf("accepted %+v", c)
		}
		p := filepath.Join(dir, "c")
		os.Remove(p)
		if _, err := api.WriteCredentials(p, c, false); err != nil {
			t.Fatal(err)
		}
		if got, err := api.ReadCredentials(p); err != nil || got != c {
			t.Fatalf("round trip %+v: %+v %v", c, got, err)
		}
	})
}
