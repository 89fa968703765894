package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

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
	CredentialsFile string   `yaml:"credentials-file"` // --credentials: read on an empty store, written when generated
	PublicURL       string   `yaml:"public-url"`       // scheme://host in absolute URLs (default: from requests)
	RecordingDir    string   `yaml:"recording-dir"`    // the relay's --recording-dir: recordings are served from here, by name
	EdgeAddresses   []string `yaml:"edge-address"`     // the edge's addresses beyond this host's interfaces (no origination URI may point at them)
	// TenantWriteRate and TenantWriteBurst limit each subaccount's writes
	// (POST, DELETE): a second and at once (rate <= 0: no limit). The
	// main account is not limited.
	TenantWriteRate float64 `yaml:"tenant-write-rate"`
	// TrustedProxies are the reverse proxies in front of the API
	// (addresses or CIDRs): X-Forwarded-For is believed from them only.
	TrustedProxies   []string `yaml:"trusted-proxy"`
	TenantWriteBurst int      `yaml:"tenant-write-burst"`
}

// DefaultConfig is the single-box default: loopback only, SQLite in the
// working directory.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8080", DB: "sqlite:xtrunk.db", Domain: store.DefaultDomain, RecordingDir: DefaultRecordingDir,
		TenantWriteRate: DefaultTenantWriteRate, TenantWriteBurst: DefaultTenantWriteBurst}
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
// (XTRUNK_ACCOUNT_SID/XTRUNK_AUTH_TOKEN) it uses those; else, when
// credFile exists (`xtrunk init` wrote it), the credentials in it; else a
// new store gets generated credentials, written to credFile (mode 0600)
// whose path is logged, never the token itself. A credentials file
// others may read, or a malformed one, is an error.
func EnsureMainAccount(ctx context.Context, st *store.Store, sid, token, credFile string, log zerolog.Logger) (store.Account, error) {
	if (sid == "") != (token == "") {
		return store.Account{}, fmt.Errorf("set both XTRUNK_ACCOUNT_SID and XTRUNK_AUTH_TOKEN, or neither")
	}
	from := "XTRUNK_ACCOUNT_SID/XTRUNK_AUTH_TOKEN"
	if sid == "" && credFile != "" {
		c, err := ReadCredentials(credFile)
		switch {
		case err == nil:
			sid, token, from = c.AccountSid, c.AuthToken, credFile
		case !errors.Is(err, fs.ErrNotExist):
			return store.Account{}, err
		}
	}
	var path string
	a, created, err := st.Bootstrap(ctx, sid, token, "", func(a store.Account) error {
		if sid != "" {
			return nil
		}
		var err error
		path, err = WriteCredentials(credFile, Credentials{AccountSid: a.Sid, AuthToken: a.AuthToken}, false)
		return err
	})
	if err != nil {
		if sid != "" {
			return store.Account{}, fmt.Errorf("main account from %s: %w", from, err)
		}
		return store.Account{}, err
	}
	switch {
	case !created:
		if token != "" && token != a.AuthToken {
			log.Warn().Str("account_sid", a.Sid).Str("from", from).Msg("the auth token given differs from the stored one; the stored one stays in force")
		}
		log.Info().Str("account_sid", a.Sid).Msg("main account")
	case sid != "":
		log.Info().Str("account_sid", a.Sid).Str("from", from).Msg("main account created")
	default:
		log.Info().Str("account_sid", a.Sid).Str("credentials_file", path).Msg("main account created; its auth token is in the credentials file")
	}
	return a, nil
}
