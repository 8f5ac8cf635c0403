package bus

import (
	"context"
	"testing"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/sim"
)

// describing describes models by their settings only, as a process whose
// clients made no request does.
type describing struct{ sim.Backends }

func (describing) Report(_ context.Context, models []analysis.ModelInfo) sim.Report {
	run := make([]analysis.RunModel, len(models))
	for i, m := range models {
		run[i] = analysis.RunModel{Name: m.Name, Backend: m.Backend, Mode: m.Mode, BaseURL: "http://gpu/v1", MaxRetries: 8}
	}
	return sim.Report{Models: models, Run: run}
}

// The run block's models keep the resolved settings and take what the
// hosts' servers said: the first served model and fingerprint, the last,
// and a change between hosts counts as a change.
func TestRunModelsFromHosts(t *testing.T) {
	models := []analysis.ModelInfo{{Name: "a", Backend: "openai", Mode: "sample"}, {Name: "b", Backend: "openai", Mode: "sample"}}
	stats := []HostStats{
		{Host: "h1", Models: []HostModelStats{{Model: "a", ServedModel: "m", Fingerprint: "fp1", LastServedModel: "m", LastFingerprint: "fp1", Synthetic: true}}},
		{Host: "h2", Models: []HostModelStats{{Model: "a", ServedModel: "m", Fingerprint: "fp2", LastServedModel: "m2", LastFingerprint: "fp2"}}},
	}
	got := runModels(t.Context(), describing{}, models, stats)
	a, b := got[0], got[1]
	if a.BaseURL != "http://gpu/v1" || a.MaxRetries != 8 || !a.Synthetic || a.ServedModel != "m" || a.SystemFingerprint != "fp1" ||
		a.LastServedModel != "m2" || a.LastSystemFingerprint != "fp2" || !a.FingerprintChanged {
		t.Errorf("a: got %+v; want its settings, synthetic, served m/fp1 first and m2/fp2 last, fingerprint changed", a)
	}
	if b.BaseURL != "http://gpu/v1" || b.ServedModel != "" || b.FingerprintChanged {
		t.Errorf("b: got %+v; want its settings and nothing served", b)
	}
	one := runModels(t.Context(), describing{}, models, stats[:1])
	if one[0].FingerprintChanged || one[0].LastSystemFingerprint != "fp1" {
		t.Errorf("one host, one fingerprint: got %+v, want it unchanged", one[0])
	}
}
