package bus

import (
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// The environment variables holding NATS secrets. Secrets never come from
// the command line, where any user of the machine could read them in the
// process list: user, password and token come from the environment, keys
// and credentials from files.
const (
	EnvUser     = "NATS_USER"
	EnvPassword = "NATS_PASSWORD"
	EnvToken    = "NATS_TOKEN"
	EnvCreds    = "NATS_CREDS"
	EnvNkey     = "NATS_NKEY"
)

// FlagsHelp tells a command's user where authentication and TLS come from.
const FlagsHelp = `NATS authentication comes from the environment or files, never from the
command line: NATS_USER and NATS_PASSWORD, or NATS_TOKEN, or a credentials
file (--nats-creds or NATS_CREDS), or an nkey seed file (--nats-nkey or
NATS_NKEY). TLS: a tls:// URL or --tls-ca, with --tls-cert and --tls-key
for a client certificate.`

// Flags are the command-line options of a program that talks to an
// external NATS server or cluster. Like nats-server's own flags, they live
// with the options they set; Options turns them into ConnectOptions.
type Flags struct {
	// URL is a comma-separated list of servers; "host:port" means
	// nats://host:port.
	URL                        string
	Creds, Nkey, CA, Cert, Key string // file paths
}

// AddFlags defines --nats, --nats-creds, --nats-nkey, --tls-ca, --tls-cert
// and --tls-key on fs. required only changes the help: without --nats the
// caller may run an embedded server.
func AddFlags(fs *flag.FlagSet, required bool) *Flags {
	f := &Flags{}
	help := "NATS server or cluster `URL[,URL...]`"
	if !required {
		help += " (default: an embedded server in this process)"
	}
	fs.StringVar(&f.URL, "nats", "", help)
	fs.StringVar(&f.Creds, "nats-creds", "", "NATS credentials `FILE` (JWT and nkey seed; or NATS_CREDS)")
	fs.StringVar(&f.Nkey, "nats-nkey", "", "NATS nkey seed `FILE` (or NATS_NKEY)")
	fs.StringVar(&f.CA, "tls-ca", "", "CA certificate `FILE` that verifies the NATS servers")
	fs.StringVar(&f.Cert, "tls-cert", "", "client certificate `FILE` for NATS servers that require one")
	fs.StringVar(&f.Key, "tls-key", "", "client key `FILE` for --tls-cert")
	return f
}

// AddQueueFlags defines --ack-wait, --max-deliver and --replicas on fs:
// the task queue options of a run's orchestrator (see TaskQueueOptions).
func AddQueueFlags(fs *flag.FlagSet) *TaskQueueOptions {
	q := &TaskQueueOptions{}
	fs.DurationVar(&q.AckWait, "ack-wait", 30*time.Second, "with --nats: how long a silent agent host keeps a task before it goes to another")
	fs.IntVar(&q.MaxDeliver, "max-deliver", 5, "with --nats: deliveries of a task before it is a dead letter and the run fails")
	fs.IntVar(&q.Replicas, "replicas", 1, "with --nats: JetStream replicas of the run's streams (3 on a 3-node cluster)")
	return q
}

// Check refuses, as ErrBadFlags, the first queue option its flag cannot
// take: an ack wait under 100ms (heartbeats would flood the cluster), no
// delivery, or replicas outside the 1 to 5 JetStream allows.
func (o TaskQueueOptions) Check() error {
	switch {
	case o.AckWait < 100*time.Millisecond:
		return badFlags{fmt.Errorf("--ack-wait: must be at least 100ms, got %v", o.AckWait)}
	case o.MaxDeliver < 1:
		return badFlags{fmt.Errorf("--max-deliver: must be at least 1, got %d", o.MaxDeliver)}
	case o.Replicas < 1 || o.Replicas > 5:
		return badFlags{fmt.Errorf("--replicas: must be 1 to 5, got %d", o.Replicas)}
	}
	return nil
}

// Set reports whether an external server was asked for.
func (f *Flags) Set() bool { return f.URL != "" }

// Options builds the connection options named name from the flags and the
// secrets in the environment (read with getenv); a file flag wins over its
// variable. The error is Validate's, every problem at once.
func (f *Flags) Options(name string, getenv func(string) string, log *slog.Logger) (ConnectOptions, error) {
	o := ConnectOptions{
		Name:      name,
		User:      getenv(EnvUser),
		Password:  getenv(EnvPassword),
		Token:     getenv(EnvToken),
		CredsFile: firstSet(f.Creds, getenv(EnvCreds)),
		NkeyFile:  firstSet(f.Nkey, getenv(EnvNkey)),
		CAFile:    f.CA,
		CertFile:  f.Cert,
		KeyFile:   f.Key,
		Logger:    log,
	}
	for u := range strings.SplitSeq(f.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			if !strings.Contains(u, "://") {
				u = "nats://" + u
			}
			o.URLs = append(o.URLs, u)
		}
	}
	if err := o.Validate(); err != nil {
		return ConnectOptions{}, err
	}
	return o, nil
}

func firstSet(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
