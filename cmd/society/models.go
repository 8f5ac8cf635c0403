package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
)

// backends builds the model backends of a scenario and keeps what is
// needed to report their traffic.
type backends struct {
	cacheDir string // "" = the user's cache directory

	once    sync.Once
	cache   *llm.Cache
	cacheEr error
	clients []*llm.Client
}

func (b *backends) sharedCache() (*llm.Cache, error) {
	b.once.Do(func() {
		dir := b.cacheDir
		if dir == "" {
			d, err := llm.DefaultCacheDir()
			if err != nil {
				b.cacheEr = fmt.Errorf("model cache: %w (choose one with --cache DIR)", err)
				return
			}
			dir = d
		}
		st, err := llm.NewDirStore(dir)
		if err != nil {
			b.cacheEr = fmt.Errorf("model cache: %w", err)
			return
		}
		b.cache = llm.NewCache(st)
	})
	return b.cache, b.cacheEr
}

// model builds one scenario model.
func (b *backends) model(sc *scenarios.Scenario, m scenarios.Model) (agent.Model, analysis.ModelInfo, error) {
	switch m.Backend {
	case scenarios.Synthetic:
		means, err := population.HumanMeans(syntheticMeans)
		if err != nil {
			return nil, analysis.ModelInfo{}, err
		}
		return llm.NewSynthetic(sc.Seed, means), analysis.ModelInfo{Name: m.Name, Backend: "synthetic", Mode: "distribution", Synthetic: true}, nil
	case scenarios.OpenAI:
		if m.APIKeyEnv != "" {
			if _, ok := os.LookupEnv(m.APIKeyEnv); !ok {
				return nil, analysis.ModelInfo{}, sc.Problem(fieldOfModel(sc, m.Name, "api_key_env"),
					fmt.Sprintf("environment variable %s is not set", m.APIKeyEnv))
			}
		}
		cache, err := b.sharedCache()
		if err != nil {
			return nil, analysis.ModelInfo{}, err
		}
		c, err := llm.NewClient(llm.ClientConfig{
			Name: m.Name, BaseURL: m.BaseURL, Model: m.Model, APIKeyEnv: m.APIKeyEnv,
			Mode: string(m.Mode), Temperature: m.Temperature, TopP: m.TopP, MaxTokens: m.MaxTokens,
			Samples: m.Samples, Concurrency: m.Concurrency, Timeout: m.Timeout, Seed: m.Seed,
			Endpoint: m.Endpoint, StructuredOutputs: m.StructuredOutputs,
			Cache: cache,
		})
		if err != nil {
			return nil, analysis.ModelInfo{}, fmt.Errorf("%w: model %q: %v", errBadInput, m.Name, err)
		}
		b.clients = append(b.clients, c)
		return c, analysis.ModelInfo{Name: m.Name, Backend: "openai", Model: m.Model, Mode: string(m.Mode)}, nil
	default:
		return nil, analysis.ModelInfo{}, fmt.Errorf("%w: model %q: unknown backend %q", errBadInput, m.Name, m.Backend)
	}
}

// counts sums the traffic of every client.
func (b *backends) counts() analysis.LLMCounts {
	var out analysis.LLMCounts
	for _, c := range b.clients {
		s := c.Stats()
		out.Calls += s.Calls
		out.CacheHits += s.CacheHits
		out.Retries += s.Retries
	}
	return out
}

func (b *backends) close() {
	for _, c := range b.clients {
		c.Close()
	}
}

func fieldOfModel(sc *scenarios.Scenario, name, key string) string {
	for i, m := range sc.Models {
		if m.Name == name {
			return fmt.Sprintf("models[%d].%s", i, key)
		}
	}
	return "models"
}
