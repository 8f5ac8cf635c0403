package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/society-sim/society/bus"
)

// startAuthServer runs a real nats-server on loopback with the given
// authentication set up in o, and returns its client URL.
func startAuthServer(t *testing.T, o *server.Options) string {
	t.Helper()
	o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(bus.TimeLeft(bus.BoundedContext(t))) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connect connects with o and sends itself a message. When a refusal is
// expected, a connection that Connect decides to try again (it says so in a
// warning) is given up at once and reported as errRetried, so that a
// refusal that were retried fails the test at once; a good connection has
// all the time a slow machine needs.
func connect(t *testing.T, o bus.ConnectOptions, wantRefusal bool) error {
	t.Helper()
	ctx, cancel := context.WithCancelCause(bus.BoundedContext(t))
	defer cancel(nil)
	if wantRefusal {
		o.Logger = slog.New(giveUpOnRetry{cancel})
	}
	nc, err := bus.Connect(ctx, o)
	if err != nil {
		if context.Cause(ctx) == errRetried {
			return fmt.Errorf("%w: %v", errRetried, err)
		}
		return err
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("ping")
	if err != nil {
		return err
	}
	if err := nc.Publish("ping", []byte("x")); err != nil {
		return err
	}
	_, err = sub.NextMsgWithContext(ctx)
	return err
}

var errRetried = errors.New("connect: retried")

// giveUpOnRetry ends the connection attempt at Connect's first warning
// that it will try again.
type giveUpOnRetry struct{ cancel context.CancelCauseFunc }

func (g giveUpOnRetry) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (g giveUpOnRetry) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "trying again") {
		g.cancel(errRetried)
	}
	return nil
}
func (g giveUpOnRetry) WithAttrs([]slog.Attr) slog.Handler { return g }
func (g giveUpOnRetry) WithGroup(string) slog.Handler      { return g }

func TestConnectAuth(t *testing.T) {
	// nkey
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	otherKP, _ := nkeys.CreateUser()
	otherSeed, _ := otherKP.Seed()

	// JWT credentials: an operator, an account it signs, a user the account signs.
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	if _, err := oc.Encode(okp); err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ckp, _ := nkeys.CreateUser()
	cpub, _ := ckp.PublicKey()
	cseed, _ := ckp.Seed()
	cjwt, err := jwt.NewUserClaims(cpub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(cjwt, cseed)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		server *server.Options
		good   bus.ConnectOptions
		bad    bus.ConnectOptions
	}{
		{"user and password", &server.Options{Username: "society", Password: "s3cret"},
			bus.ConnectOptions{User: "society", Password: "s3cret"}, bus.ConnectOptions{User: "society", Password: "wrong"}},
		{"token", &server.Options{Authorization: "t0ken"},
			bus.ConnectOptions{Token: "t0ken"}, bus.ConnectOptions{Token: "nope"}},
		{"nkey", &server.Options{Nkeys: []*server.NkeyUser{{Nkey: upub}}},
			bus.ConnectOptions{NkeyFile: writeFile(t, "user.nk", useed)}, bus.ConnectOptions{NkeyFile: writeFile(t, "other.nk", otherSeed)}},
		{"credentials file", &server.Options{TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver},
			bus.ConnectOptions{CredsFile: writeFile(t, "user.creds", creds)}, bus.ConnectOptions{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := startAuthServer(t, c.server)
			c.good.URLs, c.bad.URLs = []string{url}, []string{url}
			if err := connect(t, c.good, false); err != nil {
				t.Fatalf("good credentials: got %v, want a connection", err)
			}
			err := connect(t, c.bad, true)
			if err == nil {
				t.Fatal("bad credentials: got a connection, want a refusal")
			}
			if errors.Is(err, errRetried) {
				t.Errorf("bad credentials were tried again (%v), want a refusal", err)
			}
			for _, secret := range []string{"s3cret", "wrong", "t0ken", "nope", string(useed), string(cseed)} {
				if strings.Contains(err.Error(), secret) || strings.Contains(c.good.String(), secret) {
					t.Errorf("a secret shows in %q or %q", err, c.good.String())
				}
			}
		})
	}
}

func TestConnectTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "society test CA", true)
	srvCert, srvKey := newCert(t, ca, caKey, "127.0.0.1", false)
	cliCert, cliKey := newCert(t, ca, caKey, "society client", false)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	srvCertFile := writePEM(t, dir, "server.pem", "CERTIFICATE", srvCert.Raw)
	srvKeyFile := writeKey(t, dir, "server-key.pem", srvKey)
	cliCertFile := writePEM(t, dir, "client.pem", "CERTIFICATE", cliCert.Raw)
	cliKeyFile := writeKey(t, dir, "client-key.pem", cliKey)

	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCertFile, KeyFile: srvKeyFile, CaFile: caFile, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	url := startAuthServer(t, &server.Options{TLS: true, TLSConfig: tc, TLSVerify: true, TLSTimeout: 10})
	url = strings.Replace(url, "nats://", "tls://", 1)

	if err := connect(t, bus.ConnectOptions{URLs: []string{url}, CAFile: caFile, CertFile: cliCertFile, KeyFile: cliKeyFile}, false); err != nil {
		t.Fatalf("with CA and client certificate: got %v, want a connection", err)
	}
	// A refused certificate is final: Connect reports it instead of
	// retrying until its context ends. (The server's handshake timeout is
	// long so that a slow machine cannot turn the refusal into a timeout.)
	if err := connect(t, bus.ConnectOptions{URLs: []string{url}, CAFile: caFile}, true); err == nil {
		t.Error("without a client certificate: got a connection, want a refusal")
	} else if errors.Is(err, errRetried) {
		t.Errorf("a refused certificate was tried again (%v), want a refusal", err)
	}
	if err := connect(t, bus.ConnectOptions{URLs: []string{url}, CertFile: cliCertFile, KeyFile: cliKeyFile}, true); err == nil {
		t.Error("without the CA: got a connection to an unverified server, want a refusal")
	}
}

func TestConnectOptionsValidate(t *testing.T) {
	f := writeFile(t, "f", []byte("x"))
	cases := []struct {
		name string
		o    bus.ConnectOptions
		want string // "" means valid
	}{
		{"plain", bus.ConnectOptions{URLs: []string{"nats://127.0.0.1:4222"}}, ""},
		{"cluster", bus.ConnectOptions{URLs: []string{"nats://a:4222", "tls://b:4222"}, CAFile: f}, ""},
		{"no url", bus.ConnectOptions{}, "no server URL"},
		{"password in url", bus.ConnectOptions{URLs: []string{"nats://u:hunter2@a:4222"}}, "carries credentials"},
		{"scheme", bus.ConnectOptions{URLs: []string{"http://a:4222"}}, "scheme"},
		{"two methods", bus.ConnectOptions{URLs: []string{"nats://a:1"}, Token: "t", User: "u", Password: "p"}, "more than one way"},
		{"user without password", bus.ConnectOptions{URLs: []string{"nats://a:1"}, User: "u"}, "needs a password"},
		{"cert without key", bus.ConnectOptions{URLs: []string{"nats://a:1"}, CertFile: f}, "needs its key"},
		{"missing creds file", bus.ConnectOptions{URLs: []string{"nats://a:1"}, CredsFile: "/nonexistent/x.creds"}, "credentials file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.o.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	s := bus.ConnectOptions{URLs: []string{"nats://a:4222"}, User: "u", Password: "hunter2"}.String()
	if strings.Contains(s, "hunter2") || !strings.Contains(s, "user u") {
		t.Errorf("String: got %q, want the user and no password", s)
	}
}

// TestURLSecretsNeverShown: whatever form a URL carries its secret in, no
// message, log description or error shows it.
func TestURLSecretsNeverShown(t *testing.T) {
	const secret = "s3cr3t"
	cases := []struct{ name, url, want string }{
		{"user and password", "nats://alice:s3cr3t@a:4222", "nats://alice:xxxxx@a:4222"},
		{"token as user", "nats://s3cr3t@a:4222", "nats://xxxxx@a:4222"},
		{"tls", "tls://alice:s3cr3t@a:4222", "tls://alice:xxxxx@a:4222"},
		{"query token", "nats://a:4222?token=s3cr3t&auth_token=s3cr3t", "nats://a:4222?auth_token=xxxxx&token=xxxxx"},
		{"fragment", "nats://a:4222#s3cr3t", "nats://a:4222"},
		{"list", "nats://s3cr3t@a:4222,nats://b:4222, tls://u:s3cr3t@c:4222", "nats://xxxxx@a:4222,nats://b:4222,tls://u:xxxxx@c:4222"},
		{"unparseable", "nats://u:s3cr3t%zz@a:4222", "(unparseable URL)"},
		{"escaped", "nats://u:s3cr3t%21@a:4222", "nats://u:xxxxx@a:4222"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := bus.RedactURL(c.url); got != c.want {
				t.Errorf("RedactURL: got %q, want %q", got, c.want)
			}
			o := bus.ConnectOptions{URLs: strings.Split(c.url, ",")}
			err := o.Validate()
			if err == nil && c.name != "fragment" {
				t.Errorf("Validate: got nil, want the URL refused")
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("Validate shows the secret: %v", err)
			}
			if s := o.String(); strings.Contains(s, secret) {
				t.Errorf("String shows the secret: %q", s)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // one attempt, then the error
			_, err = bus.Connect(ctx, o)
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Errorf("Connect: got %v, want an error without the secret", err)
			}
		})
	}
}

func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeKey(t *testing.T, dir, name string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "EC PRIVATE KEY", der)
}
