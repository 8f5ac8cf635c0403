package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

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
