package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrBadFlags marks an error caused by the flags themselves (options
// Flags.Connect and Flags.Join cannot make, queue options
// TaskQueueOptions.Check refuses, a --resume Orchestrator.Scenario cannot
// follow): the user's input, which trying again cannot mend.
var ErrBadFlags = errors.New("bad nats flags")

// badFlags marks err as ErrBadFlags, its text unchanged.
type badFlags struct{ err error }

func (e badFlags) Error() string   { return e.err.Error() }
func (e badFlags) Unwrap() []error { return []error{ErrBadFlags, e.err} }

// Connect connects a role of the program (run, agents, analyze) to the
// cluster the flags name, as client "society-ROLE@HOST", with the secrets
// in the environment (see Options), logging on log (nil: nowhere). Options
// the flags cannot make are ErrBadFlags; when ctx ends before the cluster
// answers, the error is ctx's.
func (f *Flags) Connect(ctx context.Context, role string, log *slog.Logger) (*nats.Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	o, err := f.Options(fmt.Sprintf("society-%s@%s", role, host), os.Getenv, log)
	if err != nil {
		return nil, badFlags{fmt.Errorf("--nats: %w", err)}
	}
	log.Info("connecting to nats", "nats", o.String())
	nc, err := Connect(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return nc, nil
}

// Join connects a long-running role (agent host, analysis service) to the
// cluster and opens the run registry, waiting for the registry to exist
// (OpenRegistryWait). A nil registry with a nil error means ctx ended
// first. The caller closes the connection with Drain.
func (f *Flags) Join(ctx context.Context, role string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, *Registry, error) {
	nc, err := f.Connect(ctx, role, log)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		Drain(nc)
		return nil, nil, nil, err
	}
	reg, err := OpenRegistryWait(ctx, js, log)
	if err != nil || reg == nil {
		Drain(nc)
		return nil, nil, nil, err
	}
	return nc, js, reg, nil
}

// RepliesBucket is the cluster's shared model reply bucket: one per
// cluster, kept across runs, the shared tier of the model cache of every
// agent host and orchestrator on the cluster.
const RepliesBucket = "society-replies"

// OpenReplies opens the cluster's shared reply bucket, at most maxBytes.
// The bucket only saves calls: when it cannot be opened, OpenReplies warns
// on log (when not nil) and returns nil, and the caller goes on without
// it.
func OpenReplies(ctx context.Context, js jetstream.JetStream, maxBytes int64, log *slog.Logger) *KVStore {
	kv, err := NewKVStore(ctx, js, RepliesBucket, maxBytes)
	if err != nil {
		if log == nil {
			return nil
		}
		log.Warn("shared model cache unavailable; each host pays for its own replies", "err", err)
		return nil
	}
	return kv
}

// registryRetry is how often OpenRegistryWait tries again; registryTry
// bounds one try, so that a server that accepts the connection but never
// answers does not hold the caller.
const (
	registryRetry = time.Second
	registryTry   = 10 * time.Second
)

// OpenRegistryWait opens the run registry, waiting while the cluster's
// JetStream is not ready (a server that is starting), as a long-running
// role (agent host, analysis service) must. A nil registry with a nil
// error means ctx ended first.
func OpenRegistryWait(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Registry, error) {
	for attempt := 0; ; attempt++ {
		octx, cancel := context.WithTimeout(ctx, registryTry)
		reg, err := OpenRegistry(octx, js, RegistryOptions{})
		cancel()
		if err == nil {
			return reg, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if attempt == 0 && log != nil {
			log.Warn("run registry not reachable yet; trying again", "err", err)
		}
		t := time.NewTimer(registryRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
	}
}

// Drain delivers what nc has published and closes it; a connection that
// cannot drain is closed at once.
func Drain(nc *nats.Conn) {
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		nc.Close()
	}
}
