package backend

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
)

// TestCheckListedModel: the check before a run warns that an endpoint
// does not serve the scenario's model only when it really does not: the
// model server accepts any name (it lists only its default) unless
// --models names them, and the warning says what the list holds.
func TestCheckListedModel(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	const hf = "meta-llama/Meta-Llama-3-8B-Instruct"
	cases := []struct {
		name   string
		served []string // the server's --models; none accepts any name
		model  string
		warn   bool
	}{
		{"any name accepted", nil, hf, false},
		{"listed", []string{"llama", "qwen"}, "qwen", false},
		{"not served", []string{"llama", "qwen"}, hf, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := httptest.NewServer(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1, Models: c.served}))
			defer hs.Close()
			sc, err := scenarios.Parse(fmt.Appendf(nil, `name = "check"
[population]
size = 10
[[models]]
name = "m"
base_url = %q
model = %q
[[questionnaires]]
name = "pvq40"
`, hs.URL+"/v1", c.model), "check.toml")
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			sets := New(t.TempDir(), nil, slog.New(slog.NewTextHandler(&logs, nil)))
			defer sets.Close()
			b := sets.Set()
			if _, _, err := b.Model(sc, sc.Models[0], func(values.Value) int { return 1 }); err != nil {
				t.Fatal(err)
			}
			if err := b.Check(t.Context()); err != nil {
				t.Fatalf("check: %v", err)
			}
			warned := strings.Contains(logs.String(), "does not list the model")
			if warned != c.warn {
				t.Fatalf("warned: got %v, want %v (log %q)", warned, c.warn, logs.String())
			}
			if c.warn {
				for _, want := range []string{"model=m", "model_id=" + hf, "listed=llama,qwen"} {
					if !strings.Contains(logs.String(), want) {
						t.Errorf("log: got %q, want it to say %s", logs.String(), want)
					}
				}
			}
		})
	}
}

// TestEstimateUnlisted: a plan whose endpoint does not serve the model by
// its name says so, with what the endpoint lists, instead of pricing a
// run whose first request will be refused without a word.
func TestEstimateUnlisted(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1, Models: []string{"llama", "qwen"}}))
	defer hs.Close()
	sc := estimateScenario(t, hs.URL, hs.URL)
	sc.Models = sc.Models[:2] // "synthetic-respondents", not served; "llama", served
	p, err := Estimate(t.Context(), sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Models[0]; got.ModelID != "synthetic-respondents" || got.Unlisted != "llama, qwen" {
		t.Errorf("unserved model: got id %q, unlisted %q; want synthetic-respondents, \"llama, qwen\"", got.ModelID, got.Unlisted)
	}
	if got := p.Models[1].Unlisted; got != "" {
		t.Errorf("served model: got unlisted %q, want none", got)
	}
	var b strings.Builder
	p.WriteText(&b, false)
	if want := `Warning: model on-server: its endpoint neither lists nor retrieves "synthetic-respondents" (its list: llama, qwen)`; !strings.Contains(b.String(), want) {
		t.Errorf("text: got\n%s\nwant a line %q", b.String(), want)
	}
}
