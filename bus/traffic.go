package bus

import (
	"cmp"
	"context"
	"slices"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/sim"
)

// Traffic adds up the agent hosts' reports per model, and labels the
// models with what their servers said, as a single process's model
// clients report them (sim.Report). Models no host reported on keep their
// description and have no traffic entry.
func Traffic(stats []HostStats, models []analysis.ModelInfo) (map[string]analysis.ModelTraffic, []analysis.ModelInfo) {
	traffic := map[string]analysis.ModelTraffic{}
	out := slices.Clone(models)
	for _, h := range stats {
		for _, m := range h.Models {
			t := traffic[m.Model]
			t.Add(m.ModelTraffic)
			traffic[m.Model] = t
			for i := range out {
				if out[i].Name != m.Model {
					continue
				}
				out[i].Synthetic = out[i].Synthetic || m.Synthetic
				out[i].ServedModel = cmp.Or(out[i].ServedModel, m.ServedModel)
				out[i].SystemFingerprint = cmp.Or(out[i].SystemFingerprint, m.Fingerprint)
			}
		}
	}
	return traffic, out
}

// hostTraffic adds up the model traffic the agent hosts reported for run,
// and the model-specific calibration's that the orchestrator made, into
// the counts it returns and the per-model traffic of p's study (whose
// models it labels as Traffic does). Hosts report about once a second, so
// a host that died just after its last call may have left its last second
// out. It returns the hosts' reports too. Unreadable reports go to bad; a
// registry that cannot be read is the error, with the calibration's
// traffic still counted.
func hostTraffic(ctx context.Context, reg *Registry, run string, p *sim.Plan, bad func(error)) (analysis.LLMCounts, []HostStats, error) {
	var counts analysis.LLMCounts
	stats, err := reg.HostStats(ctx, run, bad)
	for _, s := range stats {
		counts.Add(s.LLMCounts)
	}
	traffic, models := Traffic(stats, p.Study.Models)
	if traffic = p.AddCalibrationTraffic(&counts, traffic); len(traffic) > 0 {
		p.Study.Traffic, p.Study.Models = traffic, models
	}
	return counts, stats, err
}
