package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/bus"
)

// natsFlags are the options of every role that talks to an external NATS
// server or cluster. Secrets never come from the command line, where any
// user of the machine could read them in the process list: user, password
// and token come from the environment, keys and credentials from files.
type natsFlags struct {
	url, creds, nkey, ca, cert, key string
}

// The environment variables holding NATS secrets.
const (
	envNATSUser     = "NATS_USER"
	envNATSPassword = "NATS_PASSWORD"
	envNATSToken    = "NATS_TOKEN"
	envNATSCreds    = "NATS_CREDS"
	envNATSNkey     = "NATS_NKEY"
)

const natsHelp = `NATS authentication comes from the environment or files, never from the
command line: NATS_USER and NATS_PASSWORD, or NATS_TOKEN, or a credentials
file (--nats-creds or NATS_CREDS), or an nkey seed file (--nats-nkey or
NATS_NKEY). TLS: a tls:// URL or --tls-ca, with --tls-cert and --tls-key
for a client certificate.`

func addNATSFlags(fs *flag.FlagSet, required bool) *natsFlags {
	f := &natsFlags{}
	help := "NATS server or cluster `URL[,URL...]`"
	if !required {
		help += " (default: an embedded server in this process)"
	}
	fs.StringVar(&f.url, "nats", "", help)
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials `FILE` (JWT and nkey seed; or NATS_CREDS)")
	fs.StringVar(&f.nkey, "nats-nkey", "", "NATS nkey seed `FILE` (or NATS_NKEY)")
	fs.StringVar(&f.ca, "tls-ca", "", "CA certificate `FILE` that verifies the NATS servers")
	fs.StringVar(&f.cert, "tls-cert", "", "client certificate `FILE` for NATS servers that require one")
	fs.StringVar(&f.key, "tls-key", "", "client key `FILE` for --tls-cert")
	return f
}

// set reports whether an external server was asked for.
func (f *natsFlags) set() bool { return f.url != "" }

// options builds the connection options from the flags and the
// environment.
func (f *natsFlags) options(name string, getenv func(string) string, log *slog.Logger) (bus.ConnectOptions, error) {
	o := bus.ConnectOptions{
		Name:      name,
		User:      getenv(envNATSUser),
		Password:  getenv(envNATSPassword),
		Token:     getenv(envNATSToken),
		CredsFile: cmpOrString(f.creds, getenv(envNATSCreds)),
		NkeyFile:  cmpOrString(f.nkey, getenv(envNATSNkey)),
		CAFile:    f.ca,
		CertFile:  f.cert,
		KeyFile:   f.key,
		Logger:    log,
	}
	for u := range strings.SplitSeq(f.url, ",") {
		if u = strings.TrimSpace(u); u != "" {
			if !strings.Contains(u, "://") {
				u = "nats://" + u
			}
			o.URLs = append(o.URLs, u)
		}
	}
	if err := o.Validate(); err != nil {
		return bus.ConnectOptions{}, fmt.Errorf("%w: --nats: %w", errUsage, err)
	}
	return o, nil
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// connectNATS connects a role to the cluster named by the flags.
func connectNATS(ctx context.Context, f *natsFlags, role string, log *slog.Logger) (*nats.Conn, error) {
	host, _ := os.Hostname()
	o, err := f.options(fmt.Sprintf("society-%s@%s", role, host), os.Getenv, log)
	if err != nil {
		return nil, err
	}
	log.Info("connecting to nats", "nats", o.String())
	nc, err := bus.Connect(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return nc, nil
}

// joinCluster connects a long-running role (agent host, analysis service)
// to the cluster and opens the run registry, waiting for the registry to
// exist. A nil registry with a nil error means ctx ended first. The caller
// closes the connection with closeNATS.
func joinCluster(ctx context.Context, f *natsFlags, role string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, *bus.Registry, error) {
	nc, err := connectNATS(ctx, f, role, log)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		closeNATS(nc)
		return nil, nil, nil, err
	}
	reg, err := openRegistryWait(ctx, js, log)
	if err != nil || reg == nil {
		closeNATS(nc)
		return nil, nil, nil, err
	}
	return nc, js, reg, nil
}

// roleLogger writes a role's log lines (text, one per line) to w.
func roleLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// closeNATS drains the connection (delivering what was published) and
// closes it.
func closeNATS(nc *nats.Conn) {
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		nc.Close()
	}
}
