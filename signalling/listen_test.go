package signalling

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/xtrunk/xtrunk/control/store"
)

// testPKI is a CA and a server certificate for 127.0.0.1 and localhost,
// as PEM files.
type testPKI struct {
	ca, cert, key string
	pool          *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xtrunk test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testPKI{ca: write("ca.pem", "CERTIFICATE", caDER), cert: write("cert.pem", "CERTIFICATE", der),
		key: write("key.pem", "EC PRIVATE KEY", keyDER), pool: pool}
}

// testConfig listens on loopback at ephemeral ports (UDP, and TCP on
// auto) with no relay behind.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Domain = testDomain
	cfg.ListenUDP = "127.0.0.1:0"
	cfg.RelayNG = freeUDPPort(t, "127.0.0.1") // nothing answers: no call gets that far
	cfg.DefaultCPS = 0
	cfg.CarrierProbeInterval = 0 // the tests' carriers answer calls, not probes
	return cfg
}

// serve runs a Server until the test ends. New binds the sockets, so it
// is reachable when serve returns.
func serve(t testing.TB, cfg Config, st *store.Store, opts ...Option) *Server {
	t.Helper()
	opts = append([]Option{WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))}, opts...)
	s, err := New(cfg, st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return run(t, s)
}

// run serves s until the test ends.
func run(t testing.TB, s *Server) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx) }()
	t.Cleanup(func() {
		cancel()
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	})
	return s
}

// streamRequest is req as sent over a stream transport ("TCP", "TLS").
func streamRequest(req rawRequest, transport, local string) []byte {
	return bytes.Replace(req.bytes(local), []byte("SIP/2.0/UDP"), []byte("SIP/2.0/"+transport), 1)
}

// readResponse reads the first final response from a stream ("" after
// wait).
func readResponse(t *testing.T, c net.Conn, wait time.Duration) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	defer c.SetReadDeadline(time.Time{})
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		for {
			end := bytes.Index(got, []byte("\r\n\r\n"))
			if end < 0 {
				break
			}
			msg := string(got[:end+4])
			got = got[end+4:]
			if !strings.HasPrefix(msg, "SIP/2.0 1") {
				return msg
			}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ""
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

func dialTLS(t *testing.T, addr string, conf *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestListenersUDPTCPTLS: OPTIONS to a trunk's domain is answered 200 on
// each transport, TLS with a certificate made here; each transport's
// dialogs carry a Contact for that transport.
func TestListenersUDPTCPTLS(t *testing.T) {
	p := provision(t)
	pki := newTestPKI(t)
	cfg := testConfig(t)
	cfg.ListenTLS = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey = pki.cert, pki.key
	cfg.OptionsInterval = 0 // the same source pings on each transport
	s := serve(t, cfg, p.st)

	if got := strings.Join(s.Transports(), ","); got != "UDP,TCP,TLS" {
		t.Fatalf("transports %q", got)
	}
	opts := rawRequest{method: "OPTIONS", ruri: "sip:" + aclHost}
	if got := exchange(t, "127.0.0.1:0", s.Addr("UDP").String(), opts, 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("UDP: %q", statusLine(got))
	}
	tcp := dialTCP(t, s.Addr("TCP").String())
	if _, err := tcp.Write(streamRequest(opts, "TCP", tcp.LocalAddr().String())); err != nil {
		t.Fatal(err)
	}
	if got := readResponse(t, tcp, 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("TCP: %q", statusLine(got))
	}
	tc := dialTLS(t, s.Addr("TLS").String(), &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", v)
	}
	if _, err := tc.Write(streamRequest(opts, "TLS", tc.LocalAddr().String())); err != nil {
		t.Fatal(err)
	}
	if got := readResponse(t, tc, 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("TLS: %q", statusLine(got))
	}
	// An unknown domain gets nothing on a stream either.
	if _, err := tc.Write(streamRequest(rawRequest{method: "OPTIONS", ruri: "sip:nope.pstn.example.net"}, "TLS", tc.LocalAddr().String())); err != nil {
		t.Fatal(err)
	}
	if got := readResponse(t, tc, 500*time.Millisecond); got != "" {
		t.Fatalf("unknown domain over TLS: %q", statusLine(got))
	}

	for _, tr := range []string{"UDP", "TCP", "TLS"} {
		c := s.legUA(strings.ToLower(tr), netip.MustParseAddr("127.0.0.1")).ContactHDR.Address
		want := "sip:127.0.0.1:" + itoa(int(s.Addr(tr).Port()))
		if tr != "UDP" {
			want += ";transport=" + strings.ToLower(tr)
		}
		if c.String() != want {
			t.Errorf("%s Contact %q, want %q", tr, c.String(), want)
		}
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// TestTLSMinVersion: TLS 1.2 unless 1.0/1.1 are asked for.
func TestTLSMinVersion(t *testing.T) {
	p := provision(t)
	pki := newTestPKI(t)
	old := &tls.Config{RootCAs: pki.pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	for _, tc := range []struct {
		min string
		ok  bool
	}{{"", false}, {"1.2", false}, {"1.1", true}, {"1.0", true}} {
		cfg := testConfig(t)
		cfg.ListenUDP, cfg.ListenTCP, cfg.ListenTLS = "", "", "127.0.0.1:0"
		cfg.TLSCert, cfg.TLSKey, cfg.TLSMinVersion = pki.cert, pki.key, tc.min
		s := serve(t, cfg, p.st)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr("TLS").String(), old)
		if err == nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("tls_min_version %q: TLS 1.1 client: err %v", tc.min, err)
		}
	}
}

// TestCRLFKeepAlive: RFC 5626 §3.5.1 on TCP and TLS: a double CRLF (ping)
// gets a single CRLF (pong), a single CRLF gets nothing, and the
// connection goes on carrying SIP.
func TestCRLFKeepAlive(t *testing.T) {
	p := provision(t)
	pki := newTestPKI(t)
	cfg := testConfig(t)
	cfg.ListenTLS = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey = pki.cert, pki.key
	s := serve(t, cfg, p.st)
	conns := map[string]net.Conn{
		"TCP": dialTCP(t, s.Addr("TCP").String()),
		"TLS": dialTLS(t, s.Addr("TLS").String(), &tls.Config{RootCAs: pki.pool, ServerName: "localhost"}),
	}
	for tr, c := range conns {
		t.Run(tr, func(t *testing.T) {
			for i := 0; i < 3; i++ {
				if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 16)
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := c.Read(buf)
				if err != nil || string(buf[:n]) != "\r\n" {
					t.Fatalf("ping %d: got %q, %v; want a single CRLF", i+1, buf[:n], err)
				}
			}
			if _, err := c.Write([]byte("\r\n")); err != nil { // a pong from the peer: no answer
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				t.Fatalf("single CRLF answered with %q", buf[:n])
			}
			_ = c.SetReadDeadline(time.Time{})
			req := rawRequest{method: "REGISTER", ruri: "sip:" + aclHost}
			if _, err := c.Write(streamRequest(req, tr, c.LocalAddr().String())); err != nil {
				t.Fatal(err)
			}
			if got := readResponse(t, c, 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 403") {
				t.Fatalf("REGISTER after keep-alives: %q", statusLine(got))
			}
		})
	}
}

// peerUAS is a SIP UAS on TCP or TLS that answers OPTIONS 200: a
// customer's PBX or a carrier, for xtrunk's client side.
func peerUAS(t *testing.T, transport string, conf *tls.Config) string {
	t.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if transport == "TLS" {
		go func() { _ = srv.ServeTLS(tls.NewListener(ln, conf)) }()
	} else {
		go func() { _ = srv.ServeTCP(ln) }()
	}
	t.Cleanup(func() { ln.Close(); ua.Close() })
	return ln.Addr().String()
}

// TestClientTransports: xtrunk's client side reaches peers over TCP and
// TLS (as origination toward a ;transport=tcp|tls URI does); TLS servers
// are verified against the system CAs plus --tls-ca, or not at all with
// --tls-insecure-skip-verify.
func TestClientTransports(t *testing.T) {
	p := provision(t)
	pki := newTestPKI(t)
	cert, err := tls.LoadX509KeyPair(pki.cert, pki.key)
	if err != nil {
		t.Fatal(err)
	}
	tlsPeer := peerUAS(t, "TLS", &tls.Config{Certificates: []tls.Certificate{cert}})
	tcpPeer := peerUAS(t, "TCP", nil)

	options := func(s *Server, addr, transport string) (int, error) {
		host, port, _ := splitHostPort(addr)
		u := sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}
		u.UriParams.Add("transport", transport)
		req := sip.NewRequest(sip.OPTIONS, u)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.clientAt(strings.ToUpper(transport), "127.0.0.1").Do(ctx, req)
		if err != nil {
			return 0, err
		}
		return res.StatusCode, nil
	}
	for _, tc := range []struct {
		name      string
		ca        string
		insecure  bool
		addr, tr  string
		wantError bool
	}{
		{"TCP", "", false, tcpPeer, "tcp", false},
		{"TLS with --tls-ca", pki.ca, false, tlsPeer, "tls", false},
		{"TLS unknown CA", "", false, tlsPeer, "tls", true},
		{"TLS insecure", "", true, tlsPeer, "tls", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TLSCA, cfg.TLSInsecureSkipVerify = tc.ca, tc.insecure
			s := serve(t, cfg, p.st)
			code, err := options(s, tc.addr, tc.tr)
			if tc.wantError {
				if err == nil || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("got %d, %v; want a certificate error", code, err)
				}
				return
			}
			if err != nil || code != 200 {
				t.Fatalf("got %d, %v", code, err)
			}
		})
	}
}

func TestConfigListenersAndTLS(t *testing.T) {
	cfg := DefaultConfig()
	if udp, tcp, tlsAddr := cfg.listenAddrs(); udp != "0.0.0.0:5060" || tcp != "0.0.0.0:5060" || tlsAddr != "" {
		t.Errorf("defaults: %q %q %q", udp, tcp, tlsAddr)
	}
	cfg.ListenUDP, cfg.TLSCert, cfg.TLSKey = "203.0.113.5:5070", "c.pem", "k.pem"
	if udp, tcp, tlsAddr := cfg.listenAddrs(); udp != "203.0.113.5:5070" || tcp != "203.0.113.5:5070" || tlsAddr != "203.0.113.5:5061" {
		t.Errorf("auto: %q %q %q", udp, tcp, tlsAddr)
	}
	cfg.ListenTCP, cfg.ListenTLS = "", "[::]:5081"
	if _, tcp, tlsAddr := cfg.listenAddrs(); tcp != "" || tlsAddr != "[::]:5081" {
		t.Errorf("explicit: %q %q", tcp, tlsAddr)
	}
	for name, mut := range map[string]func(*Config){
		"no listener":       func(c *Config) { c.ListenUDP, c.ListenTCP, c.ListenTLS = "", "", "" },
		"bad tcp":           func(c *Config) { c.ListenTCP = "nowhere" },
		"cert without key":  func(c *Config) { c.TLSCert = "c.pem" },
		"TLS 0.9":           func(c *Config) { c.TLSMinVersion = "0.9" },
		"bad carrier src":   func(c *Config) { c.CarrierSources = []string{"198.18.0.0/33"} },
		"negative drain":    func(c *Config) { c.DrainTimeout = -time.Second },
		"negative requests": func(c *Config) { c.GuardMaxRequests = -1 },
	} {
		c := DefaultConfig()
		mut(&c)
		if err := c.validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: want ErrConfig, got %v", name, err)
		}
	}
	if _, _, _, err := (Config{TLSCert: "/nonexistent.pem", TLSKey: "/nonexistent.key"}).tlsConfigs(); !errors.Is(err, ErrConfig) {
		t.Errorf("missing certificate: %v", err)
	}
}
