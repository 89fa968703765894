package api

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xtrunk/xtrunk/control/store"
)

// Credentials are the operator's main account: what `xtrunk init` writes
// and `xtrunk api --credentials` reads, as KEY=value lines (a shell or
// systemd EnvironmentFile can source the same file).
type Credentials struct {
	AccountSid string // XTRUNK_ACCOUNT_SID: AC + 32 hex digits
	AuthToken  string // XTRUNK_AUTH_TOKEN: 32 hex digits
}

// Credentials file keys: the environment variables that stand for them.
const (
	credKeySid   = "XTRUNK_ACCOUNT_SID"
	credKeyToken = "XTRUNK_AUTH_TOKEN"
)

// maxCredentialsFile bounds what ReadCredentials reads: the file is two
// short lines and comments; anything much larger is not one.
const maxCredentialsFile = 64 << 10

// NewCredentials makes a main account's credentials from crypto/rand.
func NewCredentials() Credentials {
	return Credentials{AccountSid: store.NewSid(store.PrefixAccount), AuthToken: store.NewAuthToken()}
}

// ParseCredentials reads KEY=value lines: blank lines and # comments are
// skipped, an "export " prefix and quotes around the value are allowed
// (the file may be sourced by a shell). Both keys are required, each
// once; other keys are errors, named with their line.
func ParseCredentials(b []byte) (Credentials, error) {
	var c Credentials
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxCredentialsFile)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Credentials{}, fmt.Errorf("%w: line %d: want KEY=value", ErrCredentials, n)
		}
		k, v = strings.TrimSpace(k), unquote(strings.TrimSpace(v))
		if prev, dup := seen[k]; dup {
			return Credentials{}, fmt.Errorf("%w: line %d: %s already set on line %d", ErrCredentials, n, k, prev)
		}
		seen[k] = n
		switch k {
		case credKeySid:
			if !store.ValidSid(store.PrefixAccount, v) {
				return Credentials{}, fmt.Errorf("%w: line %d: %s is not AC followed by 32 hex digits", ErrCredentials, n, k)
			}
			c.AccountSid = v
		case credKeyToken:
			if !validHexToken(v) {
				return Credentials{}, fmt.Errorf("%w: line %d: %s is not 32 hex digits", ErrCredentials, n, k)
			}
			c.AuthToken = v
		default:
			return Credentials{}, fmt.Errorf("%w: line %d: unknown key %q (want %s and %s)", ErrCredentials, n, k, credKeySid, credKeyToken)
		}
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, fmt.Errorf("%w: line %d: %w", ErrCredentials, n+1, err)
	}
	if c.AccountSid == "" || c.AuthToken == "" {
		return Credentials{}, fmt.Errorf("%w: needs both %s and %s", ErrCredentials, credKeySid, credKeyToken)
	}
	return c, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

func validHexToken(t string) bool {
	if len(t) != 32 {
		return false
	}
	for i := range len(t) {
		c := t[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// ReadCredentials reads and parses the file at path. A file the group or
// others may read is refused: the token is the operator's password.
// Errors name the file.
func ReadCredentials(path string) (Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Credentials{}, err
	}
	if !fi.Mode().IsRegular() {
		return Credentials{}, fmt.Errorf("%w: %s is not a regular file", ErrCredentials, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Credentials{}, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrCredentialsMode, path, fi.Mode().Perm(), path)
	}
	if fi.Size() > maxCredentialsFile {
		return Credentials{}, fmt.Errorf("%w: %s is %d bytes, not a credentials file", ErrCredentials, path, fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, err
	}
	c, err := ParseCredentials(b)
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WriteCredentials writes c to path with mode 0600, creating its
// directory (0700) if needed, and returns the absolute path. It never
// replaces an existing file unless replace: the file may hold the only
// copy of a token. The write goes through a temporary file in the same
// directory, so a crash leaves no half-written file.
func WriteCredentials(path string, c Credentials, replace bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(abs)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".xtrunk-credentials-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	fmt.Fprintf(tmp, "# xtrunk main account, created %s. Keep this file secret (mode 0600).\n"+
		"# Use it with Twilio's helper libraries as AccountSid / AuthToken.\n%s=%s\n%s=%s\n",
		time.Now().UTC().Format(time.RFC3339), credKeySid, c.AccountSid, credKeyToken, c.AuthToken)
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if replace {
		return abs, os.Rename(tmp.Name(), abs)
	}
	// link fails if abs exists: no window where another writer's file
	// is replaced
	if err := os.Link(tmp.Name(), abs); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%w: %s exists", fs.ErrExist, abs)
		}
		return "", err
	}
	return abs, nil
}
