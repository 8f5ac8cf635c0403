package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/backend"
)

// syntheticMeans is the human sample whose value means centre the synthetic
// respondents' answers.
const syntheticMeans = backend.SyntheticMeans

// newModelSets makes the model backends of the plans a process runs.
func newModelSets(cacheDir string, obs llm.Observer, log *slog.Logger) *backend.Sets {
	return backend.New(cacheDir, obs, log)
}

// hostModels are an agent host's models of one run: a backend set, which
// reports its traffic to the registry as bus.HostStats.
type hostModels struct{ *backend.Set }

var _ bus.HostModels = hostModels{}

// HostStats is the clients' traffic, per model too, as an agent host
// reports it.
func (h hostModels) HostStats(ctx context.Context, host string) bus.HostStats {
	out := bus.HostStats{Host: host, LLMCounts: h.Counts()}
	traffic, clients := h.Traffic(), h.Clients()
	for _, name := range slices.Sorted(maps.Keys(traffic)) {
		sv := clients[name].Served(ctx)
		out.Models = append(out.Models, bus.HostModelStats{Model: name, ModelTraffic: traffic[name],
			ServedModel: sv.Model, Fingerprint: sv.Fingerprint, Synthetic: sv.Synthetic,
			LastServedModel: sv.LastModel, LastFingerprint: sv.LastFingerprint, FingerprintChanged: sv.FingerprintChanged})
	}
	return out
}
