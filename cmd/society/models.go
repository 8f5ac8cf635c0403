package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// modelSets makes the model backends of each plan a process runs (the
// main run's, a calibration's) and closes them all when the process is
// done with them. Every client reports to obs and logs to log, both known
// before any client is built.
type modelSets struct {
	cacheDir string // "" = the user's cache directory
	obs      llm.Observer
	log      *slog.Logger
	// cacheMode and cacheShared go to every set (see backends).
	cacheMode   llm.CacheMode
	cacheShared llm.Store

	mu   sync.Mutex
	sets []*backends
}

func newModelSets(cacheDir string, obs llm.Observer, log *slog.Logger) *modelSets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &modelSets{cacheDir: cacheDir, obs: obs, log: log}
}

// withCache sets the mode and the shared tier of the model cache of every
// set made after.
func (m *modelSets) withCache(mode llm.CacheMode, shared llm.Store) *modelSets {
	m.cacheMode, m.cacheShared = mode, shared
	return m
}

// backends makes a fresh set (sim.Engine.Backends).
func (m *modelSets) backends() sim.Backends { return m.set() }

func (m *modelSets) set() *backends {
	b := &backends{cacheDir: m.cacheDir, obs: m.obs, log: m.log, cacheMode: m.cacheMode, cacheShared: m.cacheShared}
	m.mu.Lock()
	m.sets = append(m.sets, b)
	m.mu.Unlock()
	return b
}

func (m *modelSets) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.sets {
		b.close()
	}
	m.sets = nil
}

// backends builds the model backends of one plan and keeps what is
// needed to report their traffic.
type backends struct {
	cacheDir string // "" = the user's cache directory
	obs      llm.Observer
	log      *slog.Logger
	// cacheMode says whether the cache's stores are read and written;
	// cacheShared is the shared tier (an agent host's KV bucket), nil
	// without one.
	cacheMode   llm.CacheMode
	cacheShared llm.Store

	once    sync.Once
	cache   *llm.Cache
	cacheEr error
	clients []*llm.Client
	byName  map[string]*llm.Client
}

var _ sim.Backends = (*backends)(nil)

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
		// A warning that another process holds the file goes to the
		// process's stderr, whatever the clients' logger (some roles
		// discard theirs): it concerns the whole process.
		c, err := llm.OpenCache(dir, b.cacheMode, b.cacheShared, nil)
		if err != nil {
			b.cacheEr = fmt.Errorf("model cache: %w", err)
			return
		}
		b.cache = c
	})
	return b.cache, b.cacheEr
}

// Model builds one scenario model.
func (b *backends) Model(sc *scenarios.Scenario, m scenarios.Model, demand func(values.Value) int) (agent.Model, analysis.ModelInfo, error) {
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
			ReasoningEffort: m.ReasoningEffort, ExtraBody: m.ExtraBody,
			Cache: cache, Observer: b.obs, Logger: b.log, Demand: func(p agent.Persona) int { return demand(p.Value) },
		})
		if err != nil {
			return nil, analysis.ModelInfo{}, fmt.Errorf("%w: model %q: %v", sim.ErrBadInput, m.Name, err)
		}
		b.clients = append(b.clients, c)
		if b.byName == nil {
			b.byName = map[string]*llm.Client{}
		}
		b.byName[m.Name] = c
		return c, analysis.ModelInfo{Name: m.Name, Backend: "openai", Model: m.Model, Mode: string(m.Mode)}, nil
	default:
		return nil, analysis.ModelInfo{}, fmt.Errorf("%w: model %q: unknown backend %q", sim.ErrBadInput, m.Name, m.Backend)
	}
}

// check asks every model endpoint for its model list before any work, so
// that an endpoint that cannot serve the run (nothing listening, a DNS or
// TLS failure, a rejected key) stops it within seconds, naming the URL and
// the cause. A model missing from the list is only logged: servers accept
// aliases of the names they list.
func (b *backends) Check(ctx context.Context) error {
	errs := make([]error, len(b.clients))
	var wg sync.WaitGroup
	for i, c := range b.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			served, listed, err := c.Check(ctx)
			switch {
			case err != nil:
				errs[i] = err
			case !served:
				b.log.Warn("the endpoint does not list the model; its first request will tell", "model", c.Name(), "listed", listed)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// counts sums the traffic of every client.
func (b *backends) counts() analysis.LLMCounts {
	var out analysis.LLMCounts
	for _, c := range b.clients {
		s := c.Stats()
		out.Calls += s.Calls
		out.CacheHits += s.CacheHits
		out.AnswersReused += s.AnswersReused
		out.Retries += s.Retries
	}
	return out
}

// traffic is each model client's traffic, by model name.
func (b *backends) traffic() map[string]analysis.ModelTraffic {
	out := make(map[string]analysis.ModelTraffic, len(b.byName))
	for name, c := range b.byName {
		s := c.Stats()
		out[name] = analysis.ModelTraffic{Calls: s.Calls, CacheHits: s.CacheHits, AnswersReused: s.AnswersReused, Retries: s.Retries, StrictRetries: s.StrictRetries,
			PromptTokens: s.PromptTokens, CompletionTokens: s.CompletionTokens,
			Distributions: s.CoverageN, Questions: distQuestions(s), Fallbacks: s.Fallbacks, CoverageSum: s.CoverageSum}
	}
	return out
}

// hostStats is the clients' traffic, per model too, as an agent host
// reports it.
func (b *backends) hostStats(ctx context.Context, host string) bus.HostStats {
	c := b.counts()
	out := bus.HostStats{Host: host, Calls: c.Calls, CacheHits: c.CacheHits, AnswersReused: c.AnswersReused, Retries: c.Retries}
	names := slices.Sorted(maps.Keys(b.byName))
	for _, name := range names {
		cl := b.byName[name]
		s, sv := cl.Stats(), cl.Served(ctx)
		out.Models = append(out.Models, bus.HostModelStats{Model: name, Calls: s.Calls, CacheHits: s.CacheHits, AnswersReused: s.AnswersReused, Retries: s.Retries,
			StrictRetries: s.StrictRetries, PromptTokens: s.PromptTokens, CompletionTokens: s.CompletionTokens,
			Distributions: s.CoverageN, Questions: distQuestions(s), Fallbacks: s.Fallbacks, CoverageSum: s.CoverageSum,
			ServedModel: sv.Model, Fingerprint: sv.Fingerprint, Synthetic: sv.Synthetic,
			LastServedModel: sv.LastModel, LastFingerprint: sv.LastFingerprint, FingerprintChanged: sv.FingerprintChanged})
	}
	return out
}

// hostsTraffic adds up the agent hosts' reports per model, and labels the
// models with what their servers said, as traffic and label do in one
// process. Models no host reported on keep their description and have no
// traffic entry.
func hostsTraffic(stats []bus.HostStats, models []analysis.ModelInfo) (map[string]analysis.ModelTraffic, []analysis.ModelInfo) {
	traffic := map[string]analysis.ModelTraffic{}
	out := slices.Clone(models)
	for _, h := range stats {
		for _, m := range h.Models {
			t := traffic[m.Model]
			t.Calls += m.Calls
			t.CacheHits += m.CacheHits
			t.AnswersReused += m.AnswersReused
			t.Retries += m.Retries
			t.StrictRetries += m.StrictRetries
			t.PromptTokens += m.PromptTokens
			t.CompletionTokens += m.CompletionTokens
			t.Distributions += m.Distributions
			t.Questions += m.Questions
			t.Fallbacks += m.Fallbacks
			t.CoverageSum += m.CoverageSum
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

// Report is the clients' traffic, and the models' descriptions labelled
// with what their endpoints said (sim.Backends).
func (b *backends) Report(ctx context.Context, models []analysis.ModelInfo) sim.Report {
	labelled := b.label(ctx, models)
	run := make([]analysis.RunModel, len(labelled))
	for i, m := range labelled {
		run[i] = runModel(ctx, m, b.byName[m.Name])
	}
	return sim.Report{Traffic: b.traffic(), Models: labelled, Counts: b.counts(), Run: run}
}

// label records in the models' descriptions what their endpoints said
// about themselves: a model served by the model server is synthetic
// respondents, whatever its name.
func (b *backends) label(ctx context.Context, models []analysis.ModelInfo) []analysis.ModelInfo {
	out := slices.Clone(models)
	for i, m := range out {
		c, ok := b.byName[m.Name]
		if !ok {
			continue
		}
		s := c.Served(ctx)
		out[i].ServedModel, out[i].SystemFingerprint = s.Model, s.Fingerprint
		out[i].Synthetic = out[i].Synthetic || s.Synthetic
	}
	return out
}

// keepShared copies the replies of the cluster's shared bucket that the
// cache's file lacks into it, so that a later run on this machine finds
// them without the cluster: the bucket's persistent store behind it. A
// failure only costs those later runs calls, so it is logged. Nothing is
// copied when no model of the plan opened the cache, or when its mode
// writes no store.
func (b *backends) keepShared(ctx context.Context, kv *bus.KVStore) {
	if b.cache == nil {
		return
	}
	log := b.log
	if log == nil {
		log = slog.Default()
	}
	kept := 0
	err := kv.Each(ctx, func(key string, val []byte) error {
		ok, err := b.cache.Keep(ctx, key, val)
		if ok {
			kept++
		}
		return err
	})
	if err != nil {
		log.Warn("copy the shared model cache to this machine's", "kept", kept, "err", err)
		return
	}
	log.Debug("shared model cache copied to this machine's", "kept", kept)
}

func (b *backends) close() {
	for _, c := range b.clients {
		c.Close()
	}
	if b.cache != nil {
		b.cache.Close()
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

// distQuestions is the number of questions a client asked in distribution
// mode: those whose reply gave a distribution (CoverageN, low coverage
// included), and those sampled because the reply had no alternatives or
// the request failed.
func distQuestions(s llm.ClientStats) int64 {
	return s.CoverageN + s.NoAlternatives + s.FallbackErrors
}
