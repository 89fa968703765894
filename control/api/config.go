package api

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
)

// Config is `xtrunk api`'s configuration (flags and xtrunk.yaml "api:").
type Config struct {
	Listen          string   `yaml:"listen"`           // host:port, or unix:/path
	DB              string   `yaml:"db"`               // sqlite:PATH or postgres://...
	Domain          string   `yaml:"domain"`           // trunk domains are {prefix}.pstn.{domain}
	Edges           []string `yaml:"edges"`            // edge names for localized URIs and edge=
	Realm           string   `yaml:"realm"`            // SIP digest realm (default: domain)
	CredentialsFile string   `yaml:"credentials-file"` // where generated main-account credentials go
	PublicURL       string   `yaml:"public-url"`       // scheme://host in absolute URLs (default: from requests)
	RecordingDir    string   `yaml:"recording-dir"`    // the relay's --recording-dir: recordings are served from here, by name
	EdgeAddresses   []string `yaml:"edge-address"`     // the edge's addresses beyond this host's interfaces (no origination URI may point at them)
}

// DefaultConfig is the single-box default: loopback only, SQLite in the
// working directory.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8080", DB: "sqlite:xtrunk.db", Domain: store.DefaultDomain, RecordingDir: DefaultRecordingDir}
}

// StoreOptions derives the store's options.
func (c Config) StoreOptions() store.Options {
	var edges []string
	for _, e := range c.Edges {
		for _, p := range strings.Split(e, ",") {
			if p = strings.TrimSpace(p); p != "" {
				edges = append(edges, p)
			}
		}
	}
	return store.Options{Domain: c.Domain, Edges: edges, Realm: c.Realm}
}

// CredentialsPath is where generated credentials are written: the
// configured file, else xtrunk-credentials.env beside the SQLite file (or
// in the working directory for PostgreSQL).
func (c Config) CredentialsPath() string {
	if c.CredentialsFile != "" {
		return c.CredentialsFile
	}
	dir := "."
	if strings.HasPrefix(c.DB, "sqlite:") {
		dir = filepath.Dir(strings.TrimPrefix(strings.TrimPrefix(c.DB, "sqlite:"), "//"))
	}
	return filepath.Join(dir, "xtrunk-credentials.env")
}

// EnsureMainAccount bootstraps the store's main account. With sid/token
// (XTRUNK_ACCOUNT_SID/XTRUNK_AUTH_TOKEN) it uses those; otherwise a new
// store gets generated credentials, written to credFile (mode 0600) whose
// path is logged, never the token itself.
func EnsureMainAccount(ctx context.Context, st *store.Store, sid, token, credFile string, log zerolog.Logger) (store.Account, error) {
	if (sid == "") != (token == "") {
		return store.Account{}, fmt.Errorf("set both XTRUNK_ACCOUNT_SID and XTRUNK_AUTH_TOKEN, or neither")
	}
	var path string
	a, created, err := st.Bootstrap(ctx, sid, token, "", func(a store.Account) error {
		if sid != "" {
			return nil
		}
		var err error
		path, err = writeCredentials(credFile, a)
		return err
	})
	if err != nil {
		return store.Account{}, err
	}
	switch {
	case !created:
		if token != "" && token != a.AuthToken {
			log.Warn().Str("account_sid", a.Sid).Msg("XTRUNK_AUTH_TOKEN differs from the stored auth token; the stored one stays in force")
		}
		log.Info().Str("account_sid", a.Sid).Msg("main account")
	case sid != "":
		log.Info().Str("account_sid", a.Sid).Msg("main account created from XTRUNK_ACCOUNT_SID/XTRUNK_AUTH_TOKEN")
	default:
		log.Info().Str("account_sid", a.Sid).Str("credentials_file", path).Msg("main account created; its auth token is in the credentials file")
	}
	return a, nil
}

func writeCredentials(path string, a store.Account) (string, error) {
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
	fmt.Fprintf(tmp, "# xtrunk main account, created %s. Keep this file secret.\n# Use it with Twilio's helper libraries as AccountSid / AuthToken.\nXTRUNK_ACCOUNT_SID=%s\nXTRUNK_AUTH_TOKEN=%s\n",
		a.Created.Format(time.RFC3339), a.Sid, a.AuthToken)
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return abs, os.Rename(tmp.Name(), abs)
}
