package backend

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
)

// TestSettingsApply: a model's run entry records the settings that
// applied: samples and max_tokens in sample mode, and in distribution
// mode only when questions were sampled instead of their distribution.
func TestSettingsApply(t *testing.T) {
	temp := 1.0
	p := llm.Params{BaseURL: "http://127.0.0.1:1/v1", Model: "m", Endpoint: "chat", Temperature: &temp,
		Samples: 50, MaxTokens: 32, Concurrency: 4, Timeout: 10 * time.Second, MaxRetries: 3}
	for _, tt := range []struct {
		mode               string
		sampled            bool
		samples, maxTokens int
	}{
		{llm.ModeSample, false, 50, 32},
		{llm.ModeDistribution, false, 0, 0},
		{llm.ModeDistribution, true, 50, 32},
	} {
		p.Mode = tt.mode
		var m analysis.RunModel
		Settings(&m, p, tt.sampled)
		if m.Samples != tt.samples || m.MaxTokens != tt.maxTokens || m.Mode != tt.mode || m.Concurrency != 4 ||
			m.TimeoutSeconds != 10 || m.MaxRetries != 3 || m.Temperature == nil || m.BaseURL != p.BaseURL {
			t.Errorf("%s, sampled %v: got %+v, want samples %d, max_tokens %d and the other settings", tt.mode, tt.sampled, m, tt.samples, tt.maxTokens)
		}
	}

	// A client in distribution mode that sampled nothing.
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}))
	t.Cleanup(hs.Close)
	c, err := llm.NewClient(llm.ClientConfig{Name: "d", BaseURL: hs.URL + "/v1", Model: "synthetic-respondents",
		Mode: llm.ModeDistribution, Samples: 50, MaxTokens: 32, Concurrency: 2, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := RunModel(t.Context(), analysis.ModelInfo{Name: "d", Backend: "openai", Model: "synthetic-respondents", Mode: llm.ModeDistribution}, c)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, `"samples"`) || strings.Contains(s, `"max_tokens"`) || !strings.Contains(s, `"concurrency":2`) {
		t.Errorf("distribution mode, nothing sampled: got %s, want no samples or max_tokens", s)
	}
}
