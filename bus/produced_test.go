package bus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

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

// sampledDescribing describes models as a process whose clients of a
// distribution-mode model sampled no question: samples and max_tokens
// left out of Run, given in Sampling.
type sampledDescribing struct{ sim.Backends }

func (sampledDescribing) Report(_ context.Context, models []analysis.ModelInfo) sim.Report {
	run := make([]analysis.RunModel, len(models))
	sampling := map[string]sim.Sampling{}
	for i, m := range models {
		run[i] = analysis.RunModel{Name: m.Name, Backend: m.Backend, Mode: m.Mode, Concurrency: 16, Hosts: 1}
		sampling[m.Name] = sim.Sampling{Samples: 50, MaxTokens: 8}
	}
	return sim.Report{Models: models, Run: run, Sampling: sampling}
}

// A distributed run's models record the number of agent hosts that asked
// them beside the concurrency each keeps, and, in distribution mode, the
// samples and max_tokens when a host sampled questions instead (as a
// single process records them), not otherwise.
func TestRunModelsHostsAndFallbacks(t *testing.T) {
	models := []analysis.ModelInfo{{Name: "fell", Backend: "openai", Mode: "distribution"}, {Name: "dist", Backend: "openai", Mode: "distribution"}}
	traffic := func(fallbacks int64) analysis.ModelTraffic {
		return analysis.ModelTraffic{Calls: 3, Fallbacks: fallbacks}
	}
	stats := []HostStats{
		{Host: "h1", Models: []HostModelStats{{Model: "fell", ModelTraffic: traffic(0)}, {Model: "dist", ModelTraffic: traffic(0)}}},
		{Host: "h2", Models: []HostModelStats{{Model: "fell", ModelTraffic: traffic(2)}, {Model: "dist", ModelTraffic: traffic(0)}}},
		{Host: "h3", Models: []HostModelStats{{Model: "fell", ModelTraffic: traffic(0)}}},
	}
	got := runModels(t.Context(), sampledDescribing{}, models, stats)
	if f := got[0]; f.Samples != 50 || f.MaxTokens != 8 || f.Hosts != 3 || f.Concurrency != 16 {
		t.Errorf("model sampled on a host: got samples %d, max_tokens %d, hosts %d, concurrency %d; want 50, 8, 3, 16", f.Samples, f.MaxTokens, f.Hosts, f.Concurrency)
	}
	if d := got[1]; d.Samples != 0 || d.MaxTokens != 0 || d.Hosts != 2 {
		t.Errorf("model sampled nowhere: got samples %d, max_tokens %d, hosts %d; want 0, 0, 2", d.Samples, d.MaxTokens, d.Hosts)
	}
}

// counting is a dispatcher that counts the tasks handed to it.
type counting struct {
	sim.Dispatcher
	tasks int
}

func (c *counting) Dispatch(_ context.Context, tasks []sim.Task) error {
	c.tasks += len(tasks)
	return nil
}

// A start of a run keeps what its results last recorded while it hands
// out nothing, and forgets it before its first task: the results are
// then no longer those. A run taken over by another orchestrator hands
// out nothing.
func TestForgetProduced(t *testing.T) {
	ctx := boundedContext(t)
	srv, err := StartServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := OpenRegistry(ctx, js, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := RunRecord{ID: "study-42", Scenario: "name = \"study\"\nseed = 42\n", Shards: 1, Epoch: 2, State: RunRunning,
		Produced: &Produced{LLM: analysis.LLMCounts{Calls: 120}}}
	if _, err := reg.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	inner := &counting{}
	d := &forgetProduced{Dispatcher: inner, reg: reg, id: rec.ID, epoch: 2}
	if err := d.Dispatch(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if pr := currentProduced(ctx, reg, rec.ID); pr == nil || pr.LLM.Calls != 120 {
		t.Fatalf("nothing handed out: got %+v, want the results' record kept", pr)
	}
	if err := d.Dispatch(ctx, []sim.Task{{}}); err != nil {
		t.Fatal(err)
	}
	if pr := currentProduced(ctx, reg, rec.ID); pr != nil || inner.tasks != 1 {
		t.Fatalf("a task handed out: got %+v and %d tasks, want the record forgotten and the task dispatched", pr, inner.tasks)
	}

	if _, err := reg.Modify(ctx, rec.ID, func(r *RunRecord) error { r.Epoch, r.Produced = 3, rec.Produced; return nil }); err != nil {
		t.Fatal(err)
	}
	stale := &forgetProduced{Dispatcher: inner, reg: reg, id: rec.ID, epoch: 2}
	if err := stale.Dispatch(ctx, []sim.Task{{}}); err == nil || inner.tasks != 1 {
		t.Errorf("a run taken over: got %v and %d tasks, want an error and no task", err, inner.tasks)
	}
	if pr := currentProduced(ctx, reg, rec.ID); pr == nil {
		t.Error("a stale orchestrator forgot the new start's record")
	}
}
