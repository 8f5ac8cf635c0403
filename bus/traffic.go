package bus

import (
	"cmp"
	"slices"

	"github.com/society-sim/society/analysis"
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
