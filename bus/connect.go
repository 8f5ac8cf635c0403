package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnectOptions say how to reach an external NATS server or cluster. The
// secrets (Password, Token, and the contents of the credential and key
// files) are read by the caller from the environment or from files; they
// are never part of a URL, and String never shows them, so they cannot end
// up in a log, a metric or a results directory.
type ConnectOptions struct {
	// URLs are the servers of the cluster (nats://host:4222, tls://...).
	URLs []string
	// Name identifies the connection in the server's monitoring.
	Name string

	User, Password string
	Token          string
	// CredsFile is a JWT + nkey seed credentials file (decentralised auth).
	CredsFile string
	// NkeyFile holds an nkey seed.
	NkeyFile string

	// TLS: CAFile verifies the servers; CertFile and KeyFile are a client
	// certificate for servers that require one.
	CAFile, CertFile, KeyFile string

	// Logger is told about disconnects and reconnects; nil discards.
	Logger *slog.Logger
}

// Validate reports every problem with the options at once.
func (o ConnectOptions) Validate() error {
	var errs []error
	if len(o.URLs) == 0 {
		errs = append(errs, errors.New("no server URL"))
	}
	for _, raw := range o.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("server URL %q: want nats://HOST:PORT or tls://HOST:PORT", redactURL(raw)))
			continue
		}
		if u.User != nil || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("server URL %q carries credentials or a query string: pass them in the environment (NATS_USER and NATS_PASSWORD, or NATS_TOKEN) or in a credentials file instead, so that they never show in a process list or a log", redactURL(raw)))
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			errs = append(errs, fmt.Errorf("server URL %q: scheme %q, want nats or tls", redactURL(raw), u.Scheme))
		}
	}
	methods := 0
	for _, set := range []bool{o.User != "" || o.Password != "", o.Token != "", o.CredsFile != "", o.NkeyFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		errs = append(errs, errors.New("more than one way to authenticate: give a user and password, a token, a credentials file or an nkey seed file, not several"))
	}
	if (o.User == "") != (o.Password == "") {
		errs = append(errs, errors.New("a user needs a password and a password a user"))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("a client certificate needs its key and a key its certificate"))
	}
	for _, f := range []struct{ what, path string }{
		{"credentials file", o.CredsFile}, {"nkey seed file", o.NkeyFile},
		{"CA file", o.CAFile}, {"client certificate", o.CertFile}, {"client key", o.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.what, err))
		}
	}
	return errors.Join(errs...)
}

// TLS reports whether the connection uses TLS.
func (o ConnectOptions) TLS() bool {
	if o.CAFile != "" || o.CertFile != "" {
		return true
	}
	for _, u := range o.URLs {
		if strings.HasPrefix(u, "tls://") {
			return true
		}
	}
	return false
}

// String describes the options for a log line, without any secret.
func (o ConnectOptions) String() string {
	urls := make([]string, len(o.URLs))
	for i, u := range o.URLs {
		urls[i] = redactURL(u)
	}
	var auth string
	switch {
	case o.CredsFile != "":
		auth = "credentials file"
	case o.NkeyFile != "":
		auth = "nkey"
	case o.Token != "":
		auth = "token"
	case o.User != "":
		auth = "user " + o.User
	default:
		auth = "no auth"
	}
	s := strings.Join(urls, ",") + " (" + auth
	if o.TLS() {
		s += ", tls"
	}
	return s + ")"
}

// redactURL is RedactURL, kept for the callers in this package.
func redactURL(raw string) string { return RedactURL(raw) }

// RedactURL hides every secret a server URL, or a comma-separated list of
// them, may carry: a password (nats://user:xxxxx@host), a user name alone
// (nats://xxxxx@host: NATS reads it as a token), and every query value
// (?token=xxxxx). A URL that does not parse shows only "(unparseable URL)",
// since where its secret would be cannot be told.
func RedactURL(raw string) string {
	if strings.Contains(raw, ",") {
		parts := strings.Split(raw, ",")
		for i, p := range parts {
			parts[i] = RedactURL(strings.TrimSpace(p))
		}
		return strings.Join(parts, ",")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// natsOptions turns o into nats.go options.
func (o ConnectOptions) natsOptions() ([]nats.Option, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		// Never give up on a cluster that restarts: the roles keep their
		// work in JetStream and carry on when it is back.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", redactURL(nc.ConnectedUrl()))
		}),
	}
	switch {
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.NkeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NkeyFile)
		if err != nil {
			// The error may quote the file; it never holds the seed.
			return nil, fmt.Errorf("nkey seed file: %w", err)
		}
		opts = append(opts, opt)
	}
	if o.TLS() {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	return opts, nil
}

// connectRetry is how long Connect waits between attempts to reach a
// cluster that is not up yet.
const connectRetry = time.Second

// Connect connects to the cluster. A cluster that cannot be reached yet is
// tried again every second until ctx is done, so that the roles of a run
// can be started in any order; a refused authentication or a bad TLS
// setup fails at once, since trying again cannot mend it.
func Connect(ctx context.Context, o ConnectOptions) (*nats.Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("nats %s: %w", o, err)
	}
	opts, err := o.natsOptions()
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", o, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for attempt := 0; ; attempt++ {
		nc, err := nats.Connect(strings.Join(o.URLs, ","), opts...)
		if err == nil {
			return nc, nil
		}
		if permanentConnectError(err) {
			return nil, fmt.Errorf("nats %s: %w", o, err)
		}
		if attempt == 0 {
			log.Warn("cannot reach nats yet; trying again every second", "nats", o.String(), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nats %s: %w (last error: %v)", o, ctx.Err(), err)
		case <-time.After(connectRetry):
		}
	}
}

func permanentConnectError(err error) bool {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) ||
		// A server that closes the connection right after the handshake
		// refused the client's certificate; depending on timing the
		// client sees that as a broken pipe, without a TLS alert.
		errors.Is(err, nats.ErrTLS) {
		return true
	}
	// TLS and credential failures come as wrapped errors of several
	// packages; their text is the common ground.
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"certificate", "tls:", "x509", "nkey", "authorization", "credentials", "authentication"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
