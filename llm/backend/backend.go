// Package backend builds a scenario's models for the engine: it implements
// sim.Backends over the llm clients and the synthetic respondents, one
// reply cache per set of a plan's models, and reports their traffic in
// the analysis's terms. It also prices a run before it starts (Estimate,
// `society plan`): it checks the endpoints and rehearses the run against
// the model server's synthetic respondents, metered, in process. It says
// what `society probe` asks of a scenario's endpoints (ProbeTargets,
// ProbeQuestion), and builds the models a results directory's rebuild
// describes (Rebuild).
//
// It is part of the llm adapter and imports llm, llm/modelserver (the
// rehearsal's endpoints) and the domain (agent, analysis, population,
// questionnaires, scenarios, sim, values); it must not import bus, metrics or nats, and
// llm must not import it (the synthetic respondents answer from the
// theory templates, not from the analysis).
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/values"
)

// SyntheticMeans is the human sample whose value means centre the
// synthetic respondents' answers: the PVQ-40 sample, whose instrument
// they answer.
const SyntheticMeans = "pvq40_smacof"

// Sets makes the model backends of each plan a process runs (the
// main run's, a calibration's) and closes them all when the process is
// done with them. Every client reports to obs and logs to log, both known
// before any client is built.
type Sets struct {
	cacheDir string // "" = the user's cache directory
	obs      llm.Observer
	log      *slog.Logger
	// cacheMode and cacheShared go to every set (see backends).
	cacheMode    llm.CacheMode
	cacheShared  llm.Store
	cacheFlights llm.Flights

	mu   sync.Mutex
	sets []*Set
}

// New makes the sets of a process whose clients cache their replies in
// cacheDir ("" = the user's cache directory), report to obs and log to
// log; obs and log may be nil.
func New(cacheDir string, obs llm.Observer, log *slog.Logger) *Sets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sets{cacheDir: cacheDir, obs: obs, log: log}
}

// WithCache sets the mode and the shared tier of the model cache of every
// set made after.
func (m *Sets) WithCache(mode llm.CacheMode, shared llm.Store) *Sets {
	m.cacheMode, m.cacheShared = mode, shared
	return m
}

// WithFlights shares the fetches of every set made after with the other
// agent hosts of a run (llm.WithFlights); nil for none.
func (m *Sets) WithFlights(f llm.Flights) *Sets {
	m.cacheFlights = f
	return m
}

// Describe makes the models of a plan that is only checked or described,
// never run (`society validate`, the analysis service): their reply cache
// is off, so no cache is opened or created, and another process may be
// using the user's. done closes them.
func Describe() (b sim.Backends, done func()) {
	m := New("", nil, nil).WithCache(llm.CacheOff, nil)
	return m.Backends(), m.Close
}

// Backends makes a fresh set (sim.Engine.Backends).
func (m *Sets) Backends() sim.Backends { return m.Set() }

// Set makes a fresh set, closed with the others by Close.
func (m *Sets) Set() *Set {
	b := &Set{cacheDir: m.cacheDir, obs: m.obs, log: m.log, cacheMode: m.cacheMode, cacheShared: m.cacheShared, cacheFlights: m.cacheFlights}
	m.mu.Lock()
	m.sets = append(m.sets, b)
	m.mu.Unlock()
	return b
}

// All is every set made and not yet closed, in the order made.
func (m *Sets) All() []*Set {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sets)
}

// Close closes every set made.
func (m *Sets) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.sets {
		b.Close()
	}
	m.sets = nil
}

// Set builds the model backends of one plan and keeps what is needed to
// report their traffic.
type Set struct {
	cacheDir string // "" = the user's cache directory
	obs      llm.Observer
	log      *slog.Logger
	// cacheMode says whether the cache's stores are read and written;
	// cacheShared is the shared tier (an agent host's KV bucket), nil
	// without one.
	cacheMode    llm.CacheMode
	cacheShared  llm.Store
	cacheFlights llm.Flights // the run's fetch claims, nil without

	once    sync.Once
	cache   *llm.Cache
	cacheEr error
	clients []*llm.Client
	byName  map[string]*llm.Client
}

var _ sim.Backends = (*Set)(nil)

func (b *Set) sharedCache() (*llm.Cache, error) {
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
		c, err := llm.OpenCache(dir, b.cacheMode, b.cacheShared, nil, llm.WithFlights(b.cacheFlights))
		if err != nil {
			b.cacheEr = fmt.Errorf("model cache: %w", err)
			return
		}
		b.cache = c
	})
	return b.cache, b.cacheEr
}

// Model builds one scenario model.
func (b *Set) Model(sc *scenarios.Scenario, m scenarios.Model, demand func(values.Value) int) (agent.Model, analysis.ModelInfo, error) {
	switch m.Backend {
	case scenarios.Synthetic:
		means, err := population.HumanMeans(SyntheticMeans)
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

// Check asks every model endpoint for its model list before any work, so
// that an endpoint that cannot serve the run (nothing listening, a DNS or
// TLS failure, a rejected key) stops it within seconds, naming the URL and
// the cause. A model that the list does not name and the endpoint does
// not retrieve by name (llm.Client.Check) is only logged, with the names
// the list gives: a server may still accept it as an alias.
func (b *Set) Check(ctx context.Context) error {
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
				b.log.Warn("the endpoint does not list the model; its first request will tell",
					"model", c.Name(), "model_id", c.Params().Model, "listed", strings.Join(listed, ","))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Counts sums the traffic of every client.
func (b *Set) Counts() analysis.LLMCounts {
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

// Traffic is each model client's traffic, by model name.
func (b *Set) Traffic() map[string]analysis.ModelTraffic {
	out := make(map[string]analysis.ModelTraffic, len(b.byName))
	for name, c := range b.byName {
		s := c.Stats()
		out[name] = analysis.ModelTraffic{Calls: s.Calls, CacheHits: s.CacheHits, AnswersReused: s.AnswersReused, Retries: s.Retries, StrictRetries: s.StrictRetries,
			PromptTokens: s.PromptTokens, CompletionTokens: s.CompletionTokens,
			Distributions: s.CoverageN, Questions: Questions(s), Fallbacks: s.Fallbacks, CoverageSum: s.CoverageSum}
	}
	return out
}

// Clients are the set's model clients, by model name.
func (b *Set) Clients() map[string]*llm.Client { return b.byName }

// Report is the clients' traffic, and the models' descriptions labelled
// with what their endpoints said (sim.Backends).
func (b *Set) Report(ctx context.Context, models []analysis.ModelInfo) sim.Report {
	labelled := b.label(ctx, models)
	run := make([]analysis.RunModel, len(labelled))
	sampling := map[string]sim.Sampling{}
	for i, m := range labelled {
		c := b.byName[m.Name]
		run[i] = RunModel(ctx, m, c)
		if c != nil {
			sampling[m.Name] = sim.Sampling{Samples: c.Params().Samples, MaxTokens: c.Params().MaxTokens}
		}
	}
	return sim.Report{Traffic: b.Traffic(), Models: labelled, Counts: b.Counts(), Run: run, Sampling: sampling}
}

// RunModel is a model's entry of the run block: its settings as its
// client resolved them and what its server said about itself. A model
// without a client (the synthetic backend, or one whose agents ran on
// other hosts) has its description only.
func RunModel(ctx context.Context, info analysis.ModelInfo, c *llm.Client) analysis.RunModel {
	m := analysis.RunModel{Name: info.Name, Backend: info.Backend, Synthetic: info.Synthetic, Model: info.Model, Mode: info.Mode,
		ServedModel: info.ServedModel, SystemFingerprint: info.SystemFingerprint}
	if c == nil {
		return m
	}
	s := c.Served(ctx)
	Settings(&m, c.Params(), c.Stats().Fallbacks > 0)
	m.Synthetic = m.Synthetic || s.Synthetic
	m.ServedModel, m.LastServedModel = s.Model, s.LastModel
	m.SystemFingerprint, m.LastSystemFingerprint, m.FingerprintChanged = s.Fingerprint, s.LastFingerprint, s.FingerprintChanged
	return m
}

// Settings records in m the settings p that applied to the run. In
// distribution mode a question is asked for one token's log
// probabilities, and samples and max_tokens apply only to the questions
// sampled instead (the fallbacks, llm.ClientStats.Fallbacks): they are
// recorded when sampled says some were, and left out otherwise. A run
// whose agents ran on other hosts records its models with the same rule,
// from the hosts' fallbacks.
func Settings(m *analysis.RunModel, p llm.Params, sampled bool) {
	m.BaseURL, m.Model, m.Mode, m.Endpoint = p.BaseURL, p.Model, p.Mode, p.Endpoint
	m.Temperature, m.TopP, m.Seed = p.Temperature, p.TopP, p.Seed
	m.Samples, m.MaxTokens = p.Samples, p.MaxTokens
	if p.Mode == llm.ModeDistribution && !sampled {
		m.Samples, m.MaxTokens = 0, 0
	}
	m.ReasoningEffort, m.Concurrency, m.TimeoutSeconds, m.MaxRetries = p.ReasoningEffort, p.Concurrency, p.Timeout.Seconds(), p.MaxRetries
	m.Hosts = 1 // a run over NATS counts its agent hosts instead
}

// label records in the models' descriptions what their endpoints said
// about themselves: a model served by the model server is synthetic
// respondents, whatever its name.
func (b *Set) label(ctx context.Context, models []analysis.ModelInfo) []analysis.ModelInfo {
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

// Keep copies the replies each lists (the cluster's shared bucket) that
// the cache's file lacks into it, so that a later run on this machine
// finds them without the cluster: the bucket's persistent store behind
// it. A failure only costs those later runs calls, so it is logged.
// Nothing is copied when no model of the plan opened the cache, or when
// its mode writes no store.
func (b *Set) Keep(ctx context.Context, each func(ctx context.Context, fn func(key string, val []byte) error) error) {
	if b.cache == nil {
		return
	}
	log := b.log
	if log == nil {
		log = slog.Default()
	}
	// The file store syncs a batch of concurrent writes at once, and a
	// lone writer waits for a batch that never fills: one writer per
	// reply would make a bucket of 24,000 replies take four minutes.
	const writers = 64
	type entry struct {
		key string
		val []byte
	}
	var (
		kept    atomic.Int64
		failed  atomic.Pointer[error]
		wg      sync.WaitGroup
		entries = make(chan entry, writers)
	)
	for range writers {
		wg.Go(func() {
			for e := range entries {
				ok, err := b.cache.Keep(ctx, e.key, e.val)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
				if ok {
					kept.Add(1)
				}
			}
		})
	}
	err := each(ctx, func(key string, val []byte) error {
		if p := failed.Load(); p != nil {
			return *p
		}
		entries <- entry{key, val}
		return nil
	})
	close(entries)
	wg.Wait()
	if p := failed.Load(); err == nil && p != nil {
		err = *p
	}
	if err != nil {
		log.Warn("copy the shared model cache to this machine's", "kept", kept.Load(), "err", err)
		return
	}
	log.Debug("shared model cache copied to this machine's", "kept", kept.Load())
}

// Close closes the set's clients and its cache.
func (b *Set) Close() {
	for _, c := range b.clients {
		c.Close()
	}
	if b.cache != nil {
		// The file's writes are behind its Puts: Close commits the
		// last and returns the first that failed (logged then too).
		if err := b.cache.Close(); err != nil {
			log := b.log
			if log == nil {
				log = slog.Default()
			}
			log.Warn("model cache", "err", err)
		}
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

// Questions is the number of questions a client asked in distribution
// mode: those whose reply gave a distribution (CoverageN, low coverage
// included), and those sampled because the reply had no alternatives or
// the request failed.
func Questions(s llm.ClientStats) int64 {
	return s.CoverageN + s.NoAlternatives + s.FallbackErrors
}
