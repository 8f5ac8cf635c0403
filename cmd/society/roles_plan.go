package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/bus"
)

// openRegistryWait opens the run registry, waiting while the cluster's
// JetStream is not ready (a server that is starting); nil with a nil
// error means ctx ended first.
func openRegistryWait(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*bus.Registry, error) {
	for attempt := 0; ; attempt++ {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		reg, err := bus.OpenRegistry(octx, js, bus.RegistryOptions{})
		cancel()
		if err == nil {
			return reg, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if attempt == 0 {
			log.Warn("run registry not reachable yet; trying again", "err", err)
		}
		if !sleepCtx(ctx, time.Second) {
			return nil, nil
		}
	}
}
