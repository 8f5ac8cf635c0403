package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/metrics"
)

// startMetrics serves the program's metrics on --metrics addr (none when
// addr is empty; see metrics.StartEndpoint).
func startMetrics(ctx context.Context, addr string, stderr io.Writer) (*metrics.Endpoint, error) {
	e, err := metrics.StartEndpoint(ctx, addr, buildInfo(), stderr)
	if errors.Is(err, metrics.ErrAddress) {
		return nil, fmt.Errorf("%w: --metrics %q: %w", errUsage, addr, err)
	}
	return e, err
}

func buildInfo() metrics.BuildInfo {
	v := programVersion()
	return metrics.BuildInfo{Version: v.Version, Revision: v.Revision, GoVersion: v.GoVersion}
}

var _ llm.Observer = (*metrics.Metrics)(nil)

// modelObserver is the model clients' observer for m: none without
// --metrics.
func modelObserver(m *metrics.Metrics) llm.Observer {
	if m == nil {
		return nil
	}
	return m
}
