package bus_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/bus"
)

// natsFlags parses args as a role's NATS flags.
func natsFlags(t *testing.T, args ...string) *bus.Flags {
	t.Helper()
	fs := flag.NewFlagSet("role", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := bus.AddFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestConnectBadFlags: options the flags cannot make are the user's
// input, named by --nats, without the secret that made them bad.
func TestConnectBadFlags(t *testing.T) {
	_, err := natsFlags(t, "--nats", "nats://ann:pw-9f2@127.0.0.1:1").Connect(t.Context(), "run", nil)
	if !errors.Is(err, bus.ErrBadFlags) {
		t.Fatalf("got %v, want ErrBadFlags", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "--nats: ") || !strings.Contains(msg, "carries credentials") || strings.Contains(msg, "pw-9f2") {
		t.Errorf("got %q, want --nats: and the problem, without the password", msg)
	}
}

// TestConnectEndedContext: a cluster that never answers is given up when
// the context ends, with the context's error, not as bad flags.
func TestConnectEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := natsFlags(t, "--nats", "nats://127.0.0.1:1").Connect(ctx, "run", nil)
	if err != context.Canceled {
		t.Errorf("got %v, want context.Canceled itself", err)
	}
}

// TestJoin: a long-running role joins a real server over TCP under its
// name and opens the run registry; when its context has ended it gets
// nothing, without an error.
func TestJoin(t *testing.T) {
	url := startAuthServer(t, &server.Options{JetStream: true, StoreDir: t.TempDir()})
	f := natsFlags(t, "--nats", url)
	nc, js, reg, err := f.Join(bus.BoundedContext(t), "agents", nil)
	if err != nil || nc == nil || js == nil || reg == nil {
		t.Fatalf("got %v, %v, %v, %v; want a connection, JetStream and the registry", nc, js, reg, err)
	}
	host, _ := os.Hostname()
	if got, want := nc.Opts.Name, "society-agents@"+host; got != want {
		t.Errorf("client name: got %q, want %q", got, want)
	}
	bus.Drain(nc)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if nc, js, reg, err := f.Join(ctx, "agents", nil); nc != nil || js != nil || reg != nil || err != nil {
		t.Errorf("ended context: got %v, %v, %v, %v; want all nil", nc, js, reg, err)
	}
}

// TestOpenReplies: every role opening the cluster's reply bucket shares
// it; a bucket that cannot be made is a warning and no bucket.
func TestOpenReplies(t *testing.T) {
	srv, err := bus.StartServer(bus.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("replies-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	ctx := bus.BoundedContext(t)
	a := bus.OpenReplies(ctx, js, 1<<20, logger)
	b := bus.OpenReplies(ctx, js, 1<<20, logger)
	if a == nil || b == nil {
		t.Fatalf("got %v and %v, want the bucket twice (log: %s)", a, b, log.String())
	}
	if err := a.Put(ctx, "k", []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Get(ctx, "k"); err != nil || !ok || string(v) != "reply" {
		t.Errorf("the other opener: got %q, %v, %v; want the reply", v, ok, err)
	}
	if _, err := js.KeyValue(ctx, bus.RepliesBucket); err != nil {
		t.Errorf("bucket %s: %v", bus.RepliesBucket, err)
	}
	if log.Len() != 0 {
		t.Errorf("log: got %q, want nothing", log.String())
	}
	if kv := bus.OpenReplies(ctx, js, 0, logger); kv != nil {
		t.Errorf("unbounded bucket: got %v, want none", kv)
	}
	if !strings.Contains(log.String(), "shared model cache unavailable") {
		t.Errorf("log: got %q, want a warning", log.String())
	}
}
