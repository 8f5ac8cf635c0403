package bus

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNATSOptions(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantURLs []string
		wantAuth string // what String() says about authentication
		wantErr  string
	}{
		{"host:port becomes a URL", []string{"--nats", "127.0.0.1:4222"}, nil, []string{"nats://127.0.0.1:4222"}, "no auth", ""},
		{"cluster", []string{"--nats", "nats://a:4222, tls://b:4222"}, nil, []string{"nats://a:4222", "tls://b:4222"}, "no auth", ""},
		{"user from the environment", []string{"--nats", "nats://a:4222"}, map[string]string{EnvUser: "ann", EnvPassword: "pw-9f2"}, nil, "user ann", ""},
		{"token from the environment", []string{"--nats", "nats://a:4222"}, map[string]string{EnvToken: "tok-77"}, nil, "token", ""},
		{"credentials file from the environment", []string{"--nats", "nats://a:4222"}, map[string]string{EnvCreds: creds}, nil, "credentials file", ""},
		{"credentials file flag", []string{"--nats", "nats://a:4222", "--nats-creds", creds}, nil, nil, "credentials file", ""},
		{"password in the URL", []string{"--nats", "nats://ann:pw-9f2@a:4222"}, nil, nil, "", "carries credentials"},
		{"two ways to authenticate", []string{"--nats", "nats://a:4222", "--nats-creds", creds}, map[string]string{EnvToken: "tok-77"}, nil, "", "more than one way"},
		{"missing key file", []string{"--nats", "nats://a:4222", "--tls-cert", creds}, nil, nil, "", "needs its key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			nf := AddFlags(fs, true)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			o, err := nf.Options("test", func(k string) string { return c.env[k] }, nil)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "pw-9f2") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.wantURLs != nil && !slices.Equal(o.URLs, c.wantURLs) {
				t.Errorf("got URLs %q, want %q", o.URLs, c.wantURLs)
			}
			s := o.String()
			if !strings.Contains(s, c.wantAuth) {
				t.Errorf("got %q, want it to say %q", s, c.wantAuth)
			}
			for _, secret := range []string{"pw-9f2", "tok-77"} {
				if strings.Contains(s, secret) {
					t.Errorf("a secret shows in %q", s)
				}
			}
		})
	}
}

func TestQueueFlags(t *testing.T) {
	cases := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"--ack-wait", "100ms", "--max-deliver", "1", "--replicas", "5"}, ""},
		{[]string{"--ack-wait", "99ms"}, "--ack-wait: must be at least 100ms, got 99ms"},
		{[]string{"--max-deliver", "0"}, "--max-deliver: must be at least 1, got 0"},
		{[]string{"--replicas", "0"}, "--replicas: must be 1 to 5, got 0"},
		{[]string{"--replicas", "6"}, "--replicas: must be 1 to 5, got 6"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			q := AddQueueFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			err := q.Check()
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case c.wantErr != "" && (err == nil || err.Error() != c.wantErr || !errors.Is(err, ErrBadFlags)):
				t.Errorf("got %v, want %q marked ErrBadFlags", err, c.wantErr)
			}
		})
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	if q := AddQueueFlags(fs); q.AckWait != 30*time.Second || q.MaxDeliver != 5 || q.Replicas != 1 {
		t.Errorf("got defaults %+v, want 30s, 5 deliveries, 1 replica", *q)
	}
}
