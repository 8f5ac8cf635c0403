package bus

import (
	"encoding/json"
	"testing"

	"github.com/society-sim/society/analysis"
)

// The agent hosts' reports add up per model (the answers reused too, as
// a single process counts them), and a model any host saw
// served by the model server is labelled synthetic.
func TestHostsTraffic(t *testing.T) {
	models := []analysis.ModelInfo{{Name: "a", Backend: "openai", Mode: "distribution"}, {Name: "b", Backend: "openai", Mode: "sample"}}
	stats := []HostStats{
		{Host: "h1", Models: []HostModelStats{
			{Model: "a", ModelTraffic: analysis.ModelTraffic{Calls: 10, Distributions: 8, Fallbacks: 2, CoverageSum: 6}, Synthetic: true, Fingerprint: "society-synthetic"},
			{Model: "b", ModelTraffic: analysis.ModelTraffic{Calls: 5, AnswersReused: 3, StrictRetries: 1, PromptTokens: 100}, ServedModel: "meta-llama/Meta-Llama-3-8B-Instruct"},
		}},
		{Host: "h2", Models: []HostModelStats{
			{Model: "a", ModelTraffic: analysis.ModelTraffic{Calls: 4, Distributions: 2, Fallbacks: 2, CoverageSum: 0.5}},
			{Model: "b", ModelTraffic: analysis.ModelTraffic{Calls: 7, AnswersReused: 4, StrictRetries: 2, PromptTokens: 50}},
		}},
		{Host: "old"}, // a host that reports no models
	}
	traffic, labelled := Traffic(stats, models)
	wantA := analysis.ModelTraffic{Calls: 14, Distributions: 10, Fallbacks: 4, CoverageSum: 6.5}
	wantB := analysis.ModelTraffic{Calls: 12, AnswersReused: 7, StrictRetries: 3, PromptTokens: 150}
	if traffic["a"] != wantA || traffic["b"] != wantB {
		t.Errorf("traffic: got %+v, want a %+v, b %+v", traffic, wantA, wantB)
	}
	if !labelled[0].Synthetic || labelled[0].SystemFingerprint != "society-synthetic" {
		t.Errorf("model a: got %+v, want it labelled synthetic", labelled[0])
	}
	if labelled[1].Synthetic || labelled[1].ServedModel != "meta-llama/Meta-Llama-3-8B-Instruct" {
		t.Errorf("model b: got %+v, want a served model, not synthetic", labelled[1])
	}
	if models[0].Synthetic {
		t.Error("Traffic changed its input")
	}
}

// A host's report keeps the keys hosts have always written, so that hosts
// and analysis services of different releases read each other's.
func TestHostStatsKeys(t *testing.T) {
	s := HostStats{V: 1, Host: "h", LLMCounts: analysis.LLMCounts{Calls: 1, CacheHits: 2, AnswersReused: 3, Retries: 4},
		Models: []HostModelStats{{Model: "m", ModelTraffic: analysis.ModelTraffic{Calls: 1, CacheHits: 2, AnswersReused: 3, Retries: 4,
			StrictRetries: 5, PromptTokens: 6, CompletionTokens: 7, Distributions: 8, Fallbacks: 9, Questions: 10, CoverageSum: 1.5},
			ServedModel: "s", Fingerprint: "f", LastServedModel: "ls", LastFingerprint: "lf", FingerprintChanged: true, Synthetic: true}}}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"host":"h","calls":1,"cache_hits":2,"answers_reused":3,"retries":4,"models":[{"model":"m","calls":1,"cache_hits":2,` +
		`"answers_reused":3,"retries":4,"strict_retries":5,"prompt_tokens":6,"completion_tokens":7,"distributions":8,"fallbacks":9,` +
		`"questions":10,"coverage_sum":1.5,"served_model":"s","system_fingerprint":"f","last_served_model":"ls",` +
		`"last_system_fingerprint":"lf","fingerprint_changed":true,"synthetic":true}]}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
