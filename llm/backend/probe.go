package backend

import (
	"context"
	"fmt"
	"os"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// ProbeTarget is one OpenAI-compatible model of a scenario as `society
// probe` asks it (llm.Probe): its client's settings and the query mode
// the scenario asks of it.
type ProbeTarget struct {
	Client llm.ClientConfig
	Mode   string
}

// ProbeTargets are the OpenAI-compatible models of sc, in its order, and
// the names of the models its synthetic respondents serve: those have no
// endpoint to probe.
func ProbeTargets(sc *scenarios.Scenario) (targets []ProbeTarget, synthetic []string) {
	for _, m := range sc.Models {
		if m.Backend != scenarios.OpenAI {
			synthetic = append(synthetic, m.Name)
			continue
		}
		targets = append(targets, ProbeTarget{Mode: string(m.Mode), Client: llm.ClientConfig{
			Name: m.Name, BaseURL: m.BaseURL, Model: m.Model, APIKeyEnv: m.APIKeyEnv,
			Temperature: m.Temperature, TopP: m.TopP, MaxTokens: m.MaxTokens, Timeout: m.Timeout,
			ReasoningEffort: m.ReasoningEffort, ExtraBody: m.ExtraBody,
		}})
	}
	return targets, synthetic
}

// ProbeQuestion is the question a probe asks: an item of the first
// questionnaire of sc (its persona questionnaire aside), or of the PVQ-40
// when sc is nil or has none, to a persona of one value. A questionnaire
// that cannot be loaded is sim.ErrBadInput.
func ProbeQuestion(sc *scenarios.Scenario) (*agent.Question, error) {
	var in *questionnaires.Instrument
	if sc != nil {
		for _, q := range sc.Questionnaires {
			var err error
			if q.File != "" {
				in, err = questionnaires.Load(q.File)
			} else if q.Name != questionnaires.PersonaName {
				in, err = questionnaires.Builtin(q.Name)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: questionnaire %q: %v", sim.ErrBadInput, q.Name, err)
			}
			if in != nil {
				break
			}
		}
	}
	if in == nil {
		var err error
		if in, err = questionnaires.Builtin("pvq40"); err != nil {
			return nil, err
		}
	}
	return &agent.Question{Persona: agent.Persona{Value: values.Achievement, Style: agent.StyleDescription}, Instrument: in}, nil
}

// Rebuild reads the results directory dir back (sim.Rebuild) without
// calling any model: the scenario's models are built only to describe
// them, over a throwaway cache, so that the user's cache is neither
// opened nor changed.
func Rebuild(ctx context.Context, dir string) (*analysis.Output, error) {
	cache, err := os.MkdirTemp("", "society-report-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cache)
	models := New(cache, nil, nil)
	defer models.Close()
	return sim.Rebuild(ctx, dir, models.Backends())
}
