package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// Query modes of a Client.
const (
	// ModeDistribution asks once per distinct prompt for the first token's
	// log-probabilities and returns the distribution over the answer
	// options; agents draw their answers from it.
	ModeDistribution = "distribution"
	// ModeSample asks for one completion per answer, as the study did.
	ModeSample = "sample"
)

// Endpoints of the OpenAI API a Client can use.
const (
	// EndpointChat is /chat/completions with system and user messages.
	EndpointChat = "chat"
	// EndpointCompletions is /completions with one concatenated prompt,
	// for base models and servers without a chat template.
	EndpointCompletions = "completions"
)

// Defaults of ClientConfig.
const (
	DefaultConcurrency      = 64
	DefaultTimeout          = 60 * time.Second
	DefaultMinCoverage      = 0.5
	DefaultMaxRetries       = 8
	DefaultBackoff          = 500 * time.Millisecond
	DefaultMaxBackoff       = 30 * time.Second
	DefaultBreakerThreshold = 10
	DefaultBreakerCooldown  = 5 * time.Second
	// distLogprobs is the number of top log-probabilities asked for in
	// distribution mode: vLLM's default ceiling, and enough to hold every
	// spelling of up to ten options.
	distLogprobs = 20
)

// ClientConfig configures a Client. Zero values take the defaults above.
type ClientConfig struct {
	Name      string // label in errors; defaults to Model
	BaseURL   string // e.g. http://127.0.0.1:8000/v1; default the OpenAI API
	Model     string
	APIKeyEnv string // environment variable holding the API key; empty: no key

	Mode string // ModeDistribution or ModeSample (the default)
	// Temperature is sent explicitly, zero included; nil leaves it to the
	// server. Distribution mode applies it to the returned log-probabilities.
	Temperature *float64
	TopP        float64 // 0: the server's default
	MaxTokens   int     // per sample-mode completion; 0: the server's default
	// Samples is how many completions one sample-mode request asks for
	// (OpenAI's n): agents of a persona are served in blocks of Samples.
	Samples     int
	Concurrency int           // requests in flight to the endpoint
	Timeout     time.Duration // per attempt
	// Seed, when set, makes sampling reproducible on servers that honour
	// it. Each request gets its own seed derived from it, so that blocks of
	// samples differ from each other.
	Seed     *uint64
	Endpoint string // EndpointChat (the default) or EndpointCompletions
	// StructuredOutputs sends vLLM's structured_outputs with the scale's
	// options as the only allowed answers.
	StructuredOutputs bool
	// MinCoverage is the probability mass the answer options must cover
	// in distribution mode; below it the question is sampled instead.
	// Negative disables the fallback.
	MinCoverage float64
	// MaxRetries is the number of retries after a failed attempt
	// (429, 5xx, timeout, connection error); negative means none.
	MaxRetries int
	// Backoff is the first retry's backoff ceiling, doubled each retry up
	// to MaxBackoff, which also caps a server's Retry-After.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// After BreakerThreshold consecutive failed attempts the endpoint gets
	// no new requests for BreakerCooldown, then one probe. Negative
	// BreakerThreshold disables the breaker.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// Cache, when set, answers repeated questions without a call.
	Cache *Cache
	// Observer, when set, is told about every attempt, token count, cache
	// lookup and distribution coverage (the metrics endpoint).
	Observer Observer
	// ReasoningEffort, when set, is sent as reasoning_effort.
	ReasoningEffort string
	// ExtraBody holds JSON fields sent with every request (vendor
	// switches such as chat_template_kwargs); a field the client sets
	// itself takes precedence.
	ExtraBody map[string]any
	// Logger, when set, is told about failed attempts as they happen (at
	// most one line per endpoint every ten seconds) and about limits the
	// endpoint states.
	Logger *slog.Logger
}

// Observer follows a client's traffic. Its methods are called on the
// request path, so they must be cheap and safe for concurrent use.
// Outcomes are "ok", "429", "5xx", "4xx", "timeout", "canceled" or "error".
type Observer interface {
	ObserveRequest(model, outcome string, seconds float64)
	ObserveQueueWait(model string, seconds float64)
	InFlight(model string, delta int)
	Tokens(model string, prompt, completion int)
	CacheLookup(model string, hit bool)
	Coverage(model string, mass float64)
}

// nopObserver is the Observer of a client without one.
type nopObserver struct{}

func (nopObserver) ObserveRequest(string, string, float64) {}
func (nopObserver) ObserveQueueWait(string, float64)       {}
func (nopObserver) InFlight(string, int)                   {}
func (nopObserver) Tokens(string, int, int)                {}
func (nopObserver) CacheLookup(string, bool)               {}
func (nopObserver) Coverage(string, float64)               {}

// ClientStats are a client's running totals. Calls counts requests to the
// endpoint (not their retries), CacheHits answers served without a call,
// Failures requests that ended in an error, Invalid answers recorded as
// invalid. Coverage is summed over the distributions fetched from the
// endpoint; Fallbacks counts those sampled instead for low coverage.
type ClientStats struct {
	Calls, CacheHits, Retries, Failures, Invalid int64
	PromptTokens, CompletionTokens               int64
	CoverageSum                                  float64
	CoverageN                                    int64
	Fallbacks                                    int64
}

// counters are the client's statistics, updated atomically.
type counters struct {
	calls, cacheHits, retries, failures, invalid atomic.Int64
	promptTokens, completionTokens               atomic.Int64
	coverageBits                                 atomic.Uint64 // float64 sum
	coverageN, fallbacks                         atomic.Int64
}

func (c *counters) addCoverage(x float64) {
	for {
		old := c.coverageBits.Load()
		if c.coverageBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+x)) {
			break
		}
	}
	c.coverageN.Add(1)
}

// Client is an agent.Model on any OpenAI-compatible endpoint (vLLM, SGLang,
// llama.cpp server, Ollama, hosted APIs). It is safe for concurrent use;
// it starts no goroutines that outlive a call.
type Client struct {
	cfg    ClientConfig
	name   string
	key    string // never logged, never in an error
	oa     *openai.Client
	tr     *http.Transport
	stats  *counters
	doer   *doer
	params string // the output-changing parameters, for cache keys

	blocks group[[]agent.Answer]
	dists  group[[]byte]

	// memo keeps decoded distributions in memory: in distribution mode
	// every agent of a persona asks the same question, and going to the
	// store (a file or a KV bucket) and decoding JSON each time would cost
	// more than the agents' own work. Distinct prompts are few (personas ×
	// items × visible histories), so the map stays small.
	memoMu sync.RWMutex
	memo   map[memoKey]memoEntry

	fetchedMu sync.Mutex
	fetched   map[string]*fetchedBlock
}

// memoEntry is a distribution held in memory; stored marks one read from
// the persistent store rather than fetched by this run.
type memoEntry struct {
	dist   []float64
	stored bool
}

// memoKey identifies a question's prompt without rendering it.
type memoKey struct {
	persona agent.Persona
	inst    *questionnaires.Instrument
	item    int
	context string
}

// memoLimit bounds the in-memory distributions; past it, answers still
// come from the store, only more slowly.
const memoLimit = 1 << 20

var _ agent.Model = (*Client)(nil)

// NewClient checks cfg, fills in its defaults and reads the API key from
// the environment.
func NewClient(cfg ClientConfig) (*Client, error) {
	var errs []error
	if cfg.Model == "" {
		errs = append(errs, errors.New("model: empty"))
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeSample
	case ModeSample, ModeDistribution:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want %s or %s", cfg.Mode, ModeSample, ModeDistribution))
	}
	switch cfg.Endpoint {
	case "":
		cfg.Endpoint = EndpointChat
	case EndpointChat, EndpointCompletions:
	default:
		errs = append(errs, fmt.Errorf("endpoint %q: want %s or %s", cfg.Endpoint, EndpointChat, EndpointCompletions))
	}
	if cfg.Temperature != nil && (*cfg.Temperature < 0 || math.IsNaN(*cfg.Temperature)) {
		errs = append(errs, fmt.Errorf("temperature %v: negative", *cfg.Temperature))
	}
	if cfg.Samples < 0 || cfg.Concurrency < 0 || cfg.Timeout < 0 || cfg.MaxTokens < 0 {
		errs = append(errs, errors.New("samples, concurrency, timeout and max tokens must not be negative"))
	}
	key := ""
	if cfg.APIKeyEnv != "" {
		key = os.Getenv(cfg.APIKeyEnv)
		if key == "" {
			errs = append(errs, fmt.Errorf("api key: environment variable %s is not set", cfg.APIKeyEnv))
		}
	}
	name := cfg.Name
	if name == "" {
		name = cfg.Model
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("llm client %s: %w", name, err)
	}
	cfg.Samples = max(cfg.Samples, 1)
	cfg.Concurrency = cmpOr(cfg.Concurrency, DefaultConcurrency)
	cfg.Timeout = cmpOr(cfg.Timeout, DefaultTimeout)
	cfg.MinCoverage = cmpOr(cfg.MinCoverage, DefaultMinCoverage)
	cfg.MaxRetries = max(cmpOr(cfg.MaxRetries, DefaultMaxRetries), 0)
	cfg.Backoff = cmpOr(cfg.Backoff, DefaultBackoff)
	cfg.MaxBackoff = cmpOr(cfg.MaxBackoff, DefaultMaxBackoff)
	cfg.BreakerThreshold = cmpOr(cfg.BreakerThreshold, DefaultBreakerThreshold)
	cfg.BreakerCooldown = cmpOr(cfg.BreakerCooldown, DefaultBreakerCooldown)

	// Go's default transport keeps two idle connections per host: with
	// hundreds of requests in flight every other request would open a new
	// connection. Size the pool to the concurrency instead.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          cfg.Concurrency,
		MaxIdleConnsPerHost:   cfg.Concurrency,
		MaxConnsPerHost:       cfg.Concurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	st := &counters{}
	d := &doer{
		hc:      &http.Client{Transport: tr},
		limit:   newLimiter(cfg.Concurrency),
		timeout: cfg.Timeout,
		policy:  retryPolicy{maxRetries: cfg.MaxRetries, base: cfg.Backoff, max: cfg.MaxBackoff},
		breaker: newBreaker(cfg.BreakerThreshold, cfg.BreakerCooldown),
		stats:   st,
		now:     time.Now,
		obs:     cfg.Observer,
		model:   cmpOr(cfg.Name, cfg.Model),
		log:     cfg.Logger,
	}
	if d.obs == nil {
		d.obs = nopObserver{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	oc := openai.DefaultConfig(key)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	oc.HTTPClient = d
	c := &Client{cfg: cfg, name: name, key: key, oa: openai.NewClientWithConfig(oc), tr: tr, stats: st, doer: d}
	c.params = c.paramString()
	return c, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// paramString lists everything besides the prompt that changes what the
// model answers, for the cache key. The base URL is left out on purpose:
// the same model served elsewhere gives the same answers, and moving a
// server must not cost a rerun.
func (c *Client) paramString() string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	temp, seed := "default", "none"
	if c.cfg.Temperature != nil {
		temp = f(*c.cfg.Temperature)
	}
	if c.cfg.Seed != nil {
		// Per-request seeds derive from the block a sample is in, so
		// with a seed the block size changes which sample is which.
		seed = strconv.FormatUint(*c.cfg.Seed, 10) + "/" + strconv.Itoa(c.cfg.Samples)
	}
	parts := []string{
		"society-llm-v1", c.cfg.Model, c.cfg.Endpoint, "temperature=" + temp, "top_p=" + f(c.cfg.TopP),
		"max_tokens=" + strconv.Itoa(c.cfg.MaxTokens), "seed=" + seed,
		"structured=" + strconv.FormatBool(c.cfg.StructuredOutputs),
	}
	// Added only when set, so that the keys of earlier caches still hit.
	if c.cfg.ReasoningEffort != "" {
		parts = append(parts, "reasoning_effort="+c.cfg.ReasoningEffort)
	}
	if len(c.cfg.ExtraBody) > 0 {
		b, _ := json.Marshal(c.cfg.ExtraBody) // maps marshal with sorted keys
		parts = append(parts, "extra_body="+string(b))
	}
	return strings.Join(parts, "\x00")
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Stats returns the running totals.
func (c *Client) Stats() ClientStats {
	s := c.stats
	return ClientStats{
		Calls: s.calls.Load(), CacheHits: s.cacheHits.Load(), Retries: s.retries.Load(),
		Failures: s.failures.Load(), Invalid: s.invalid.Load(),
		PromptTokens: s.promptTokens.Load(), CompletionTokens: s.completionTokens.Load(),
		CoverageSum: math.Float64frombits(s.coverageBits.Load()), CoverageN: s.coverageN.Load(),
		Fallbacks: s.fallbacks.Load(),
	}
}

// Ask answers a question: a distribution in distribution mode (or one
// answer when the options' coverage was too low), one answer in sample
// mode. An answer that could not be parsed, even after a retry with a
// stricter instruction, comes back invalid with its raw text and reason.
// Errors wrap ErrUnavailable when the endpoint could not serve the
// request, and the context's error when ctx ended.
func (c *Client) Ask(ctx context.Context, q *agent.Question) (agent.Reply, error) {
	if q == nil || q.Instrument == nil || q.Item < 0 || q.Item >= len(q.Instrument.Items) || q.Sample < 0 {
		return agent.Reply{}, fmt.Errorf("llm %s: malformed question", c.name)
	}
	var mk memoKey
	if c.cfg.Mode == ModeDistribution {
		mk = memoKey{q.Persona, q.Instrument, q.Item, q.Context}
		c.memoMu.RLock()
		e, ok := c.memo[mk]
		c.memoMu.RUnlock()
		if ok {
			// A prompt answered by a request of this run is not a cache
			// hit (one request per prompt is the point of distribution
			// mode); one read from the store counts for every agent.
			if e.stored {
				c.stats.cacheHits.Add(1)
			}
			return agent.Reply{Dist: e.dist}, nil
		}
	}
	p := agent.Render(q)
	var (
		r   agent.Reply
		err error
	)
	if c.cfg.Mode == ModeDistribution {
		var hit bool
		r, hit, err = c.askDist(ctx, q, p)
		if err == nil && r.Dist != nil {
			c.memoMu.Lock()
			if c.memo == nil {
				c.memo = make(map[memoKey]memoEntry)
			}
			if len(c.memo) < memoLimit {
				c.memo[mk] = memoEntry{dist: r.Dist, stored: hit}
			}
			c.memoMu.Unlock()
		}
	} else {
		r.Answer, err = c.askSample(ctx, q, p)
	}
	if err != nil {
		return agent.Reply{}, c.redact(fmt.Errorf("llm %s: %s item %d: %w", c.name, q.Instrument.Name, q.Instrument.Items[q.Item].ID, err))
	}
	return r, nil
}

// redact keeps the API key out of an error, should a server echo it back.
func (c *Client) redact(err error) error {
	if c.key == "" || !strings.Contains(err.Error(), c.key) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), c.key, "[redacted]"), err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// distEntry is a cached distribution-mode reply.
type distEntry struct {
	Dist     []float64 `json:"dist,omitempty"`
	Coverage float64   `json:"coverage"`
	Fallback bool      `json:"fallback,omitempty"`
}

// answerEntry is a cached sample: the answer with its raw text.
type answerEntry struct {
	Value  int    `json:"value"`
	Valid  bool   `json:"valid"`
	Raw    string `json:"raw"`
	Reason string `json:"reason,omitempty"`
}

func (c *Client) cacheKey(p agent.Prompt, index string) string {
	return keyHash(c.params, p.System, p.User, index)
}

func (c *Client) askDist(ctx context.Context, q *agent.Question, p agent.Prompt) (agent.Reply, bool, error) {
	points := q.Instrument.Scale.Points()
	key := c.cacheKey(p, "dist")
	fetch := func(ctx context.Context) ([]byte, error) {
		// Runs once per prompt however many agents wait for it: the one
		// miss that costs a call.
		c.doer.obs.CacheLookup(c.doer.model, false)
		e, err := c.fetchDist(ctx, q, p)
		if err != nil {
			return nil, err
		}
		return json.Marshal(e)
	}
	var (
		raw []byte
		hit bool
		err error
	)
	if c.cfg.Cache != nil {
		raw, hit, err = c.cfg.Cache.Do(ctx, key, func(b []byte) bool {
			var e distEntry
			return json.Unmarshal(b, &e) == nil && (e.Fallback || len(e.Dist) == points)
		}, fetch)
		if hit {
			c.stats.cacheHits.Add(1)
			c.doer.obs.CacheLookup(c.doer.model, true)
		}
	} else {
		// Without a cache, concurrent agents asking the same prompt
		// still share one request.
		raw, err = c.dists.do(ctx, key, func() ([]byte, error) { return fetch(ctx) })
	}
	if err != nil {
		return agent.Reply{}, false, err
	}
	var e distEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return agent.Reply{}, false, fmt.Errorf("cached distribution: %w", err)
	}
	if e.Fallback {
		a, err := c.askSample(ctx, q, p)
		return agent.Reply{Answer: a}, false, err
	}
	return agent.Reply{Dist: e.Dist}, hit, nil
}

// fetchDist asks for one token with its top log-probabilities and turns
// them into a distribution over the scale's options.
func (c *Client) fetchDist(ctx context.Context, q *agent.Question, p agent.Prompt) (distEntry, error) {
	sc := q.Instrument.Scale
	var top map[string]float64
	if c.cfg.Endpoint == EndpointCompletions {
		req := c.completionRequest(completionPrompt(p), 1)
		req.MaxTokens = 1
		req.LogProbs = distLogprobs
		resp, err := c.complete(ctx, req, q, seedFor(c.cfg.Seed, 0, false))
		if err != nil {
			return distEntry{}, err
		}
		if len(resp.Choices) > 0 && len(resp.Choices[0].LogProbs.TopLogprobs) > 0 {
			top = map[string]float64{}
			for tok, lp := range resp.Choices[0].LogProbs.TopLogprobs[0] {
				top[tok] = float64(lp)
			}
		}
	} else {
		req := c.chatRequest(chatMessages(p), 1)
		//lint:ignore SA1019 max_tokens is what vLLM, llama.cpp and Ollama read; max_completion_tokens is OpenAI-only.
		req.MaxTokens = 1
		req.LogProbs = true
		req.TopLogProbs = distLogprobs
		resp, err := c.chat(ctx, req, q, seedFor(c.cfg.Seed, 0, false))
		if err != nil {
			return distEntry{}, err
		}
		if len(resp.Choices) > 0 && resp.Choices[0].LogProbs != nil && len(resp.Choices[0].LogProbs.Content) > 0 {
			first := resp.Choices[0].LogProbs.Content[0]
			top = map[string]float64{}
			for _, t := range first.TopLogProbs {
				top[t.Token] = t.LogProb
			}
			if _, ok := top[first.Token]; !ok && first.Token != "" {
				top[first.Token] = first.LogProb
			}
		}
	}
	temp := 1.0
	if c.cfg.Temperature != nil {
		temp = *c.cfg.Temperature
	}
	dist, coverage := optionDist(top, sc.Min, sc.Max, temp)
	c.stats.addCoverage(coverage)
	c.doer.obs.Coverage(c.doer.model, coverage)
	if coverage < c.cfg.MinCoverage || dist == nil {
		c.stats.fallbacks.Add(1)
		return distEntry{Coverage: coverage, Fallback: true}, nil
	}
	return distEntry{Dist: dist, Coverage: coverage}, nil
}

// optionDist collects the log-probabilities of the option tokens ("1",
// " 1", ... in any spelling the tokenizer has) and returns the options'
// distribution at temperature temp, with the probability mass the options
// covered. Servers report log-probabilities before temperature, so
// temperature is applied here: the result is the distribution of the first
// token sampled at temp, given that it is an option. Zero temperature puts
// all mass on the most likely options.
func optionDist(top map[string]float64, lo, hi int, temp float64) ([]float64, float64) {
	n := hi - lo + 1
	if n <= 0 {
		return nil, 0
	}
	lps := make([]float64, n)
	for i := range lps {
		lps[i] = math.Inf(-1)
	}
	coverage := 0.0
	for tok, lp := range top {
		x, err := strconv.Atoi(strings.TrimSpace(tok))
		if err != nil || x < lo || x > hi || math.IsNaN(lp) || lp > 0.001 {
			continue
		}
		i := x - lo
		// Two spellings of one option are two tokens: add their masses.
		lps[i] = logAddExp(lps[i], lp)
		coverage += math.Exp(lp)
	}
	if coverage <= 0 {
		return nil, 0
	}
	best := math.Inf(-1)
	for _, lp := range lps {
		best = max(best, lp)
	}
	dist := make([]float64, n)
	sum := 0.0
	for i, lp := range lps {
		switch {
		case math.IsInf(lp, -1):
		case temp == 0:
			if lp == best {
				dist[i] = 1
			}
		default:
			dist[i] = math.Exp((lp - best) / temp)
		}
		sum += dist[i]
	}
	for i := range dist {
		dist[i] /= sum
	}
	return dist, min(coverage, 1)
}

func logAddExp(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	m := max(a, b)
	return m + math.Log(math.Exp(a-m)+math.Exp(b-m))
}

func (c *Client) askSample(ctx context.Context, q *agent.Question, p agent.Prompt) (agent.Answer, error) {
	s := c.cfg.Samples
	block := q.Sample / s
	if c.cfg.Cache != nil {
		raw, ok, err := c.cfg.Cache.Get(ctx, c.cacheKey(p, strconv.Itoa(q.Sample)))
		if err != nil {
			return agent.Answer{}, err
		}
		if a, decoded := decodeAnswer(raw); ok && decoded {
			c.stats.cacheHits.Add(1)
			c.doer.obs.CacheLookup(c.doer.model, true)
			return a, nil
		}
	}
	key := c.cacheKey(p, "block/"+strconv.Itoa(block))
	if a, ok := c.takeFetched(key, q.Sample-block*s); ok {
		return a, nil
	}
	answers, err := c.blocks.do(ctx, key, func() ([]agent.Answer, error) {
		a, err := c.fetchBlock(ctx, q, p, block)
		if err == nil {
			c.keepFetched(key, a)
		}
		return a, err
	})
	if err != nil {
		return agent.Answer{}, err
	}
	c.takeFetched(key, q.Sample-block*s)
	return answers[q.Sample-block*s], nil
}

// fetchedBlock is a block of samples fetched in this run, kept until each
// of its samples has been handed out once, so that an agent arriving after
// the block's request returned does not pay for it again (with or without
// a persistent cache).
type fetchedBlock struct {
	answers []agent.Answer
	taken   []bool
	left    int
}

func (c *Client) keepFetched(key string, answers []agent.Answer) {
	c.fetchedMu.Lock()
	defer c.fetchedMu.Unlock()
	if c.fetched == nil {
		c.fetched = map[string]*fetchedBlock{}
	}
	if _, ok := c.fetched[key]; !ok {
		c.fetched[key] = &fetchedBlock{answers: answers, taken: make([]bool, len(answers)), left: len(answers)}
	}
}

// takeFetched hands out sample i of a fetched block, forgetting the block
// once every sample has been handed out.
func (c *Client) takeFetched(key string, i int) (agent.Answer, bool) {
	c.fetchedMu.Lock()
	defer c.fetchedMu.Unlock()
	b, ok := c.fetched[key]
	if !ok || i >= len(b.answers) {
		return agent.Answer{}, false
	}
	if !b.taken[i] {
		b.taken[i] = true
		b.left--
		if b.left == 0 {
			delete(c.fetched, key)
		}
	}
	return b.answers[i], true
}

func decodeAnswer(raw []byte) (agent.Answer, bool) {
	if raw == nil {
		return agent.Answer{}, false
	}
	var e answerEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return agent.Answer{}, false
	}
	return agent.Answer{Value: e.Value, Valid: e.Valid, Raw: e.Raw, Reason: e.Reason}, true
}

// fetchBlock returns the samples block*S ... block*S+S-1 of a prompt,
// asking the endpoint for the ones the cache does not hold, in as few
// requests as the server allows (some servers ignore n and return one
// choice per request).
func (c *Client) fetchBlock(ctx context.Context, q *agent.Question, p agent.Prompt, block int) ([]agent.Answer, error) {
	s := c.cfg.Samples
	first := block * s
	answers := make([]agent.Answer, s)
	have := make([]bool, s)
	missing := s
	if c.cfg.Cache != nil {
		// Another flight may have filled the block since our lookup, and
		// a crash may have left it half stored: take what is there.
		for i := range s {
			raw, ok, err := c.cfg.Cache.store.Get(ctx, c.cacheKey(p, strconv.Itoa(first+i)))
			if err != nil {
				return nil, fmt.Errorf("cache get: %w", err)
			}
			if a, decoded := decodeAnswer(raw); ok && decoded {
				answers[i], have[i] = a, true
				missing--
			}
		}
		if missing == 0 {
			return answers, nil
		}
		// One miss per block fetched: the lookup that costs a call.
		c.doer.obs.CacheLookup(c.doer.model, false)
	}
	texts := make([]string, 0, s)
	for len(texts) < s {
		got, err := c.sampleTexts(ctx, q, p, s-len(texts), first+len(texts))
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			return nil, errors.New("server returned no choices")
		}
		texts = append(texts, got[:min(len(got), s-len(texts))]...)
	}

	// Parse every sample; retry the unreadable ones with the strict
	// instruction, concurrently, and wait for all of them.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range s {
		if have[i] {
			continue
		}
		v, reason, ok := ParseAnswer(texts[i], q.Instrument.Scale)
		if ok {
			answers[i] = agent.Answer{Value: v, Valid: true, Raw: texts[i]}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := c.strictRetry(ctx, q, p, texts[i], reason, first+i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			answers[i] = a
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.cfg.Cache != nil {
		for i := range s {
			if have[i] {
				continue
			}
			a := answers[i]
			raw, err := json.Marshal(answerEntry{Value: a.Value, Valid: a.Valid, Raw: a.Raw, Reason: a.Reason})
			if err != nil {
				return nil, err
			}
			if err := c.cfg.Cache.Put(ctx, c.cacheKey(p, strconv.Itoa(first+i)), raw); err != nil {
				return nil, err
			}
		}
	}
	for i := range s {
		if !have[i] && !answers[i].Valid {
			c.stats.invalid.Add(1)
		}
	}
	return answers, nil
}

// strictRetry asks once more, with the unreadable reply and the strict
// instruction in the conversation. An answer still unreadable is recorded
// invalid, with both replies: it is never guessed.
func (c *Client) strictRetry(ctx context.Context, q *agent.Question, p agent.Prompt, text, reason string, sample int) (agent.Answer, error) {
	strict := agent.StrictInstruction(q.Instrument)
	var again string
	// An empty reply is not sent back as an assistant turn: servers
	// refuse empty messages, and there is nothing in it to correct.
	empty := strings.TrimSpace(text) == ""
	if c.cfg.Endpoint == EndpointCompletions {
		prompt := completionPrompt(p) + " " + strings.TrimSpace(text) + "\n\n" + strict + "\n\nAnswer:"
		if empty {
			prompt = strings.TrimSuffix(completionPrompt(p), "Answer:") + strict + "\n\nAnswer:"
		}
		req := c.completionRequest(prompt, 1)
		resp, err := c.complete(ctx, req, q, seedFor(c.cfg.Seed, sample, true))
		if err != nil {
			return agent.Answer{}, err
		}
		if len(resp.Choices) > 0 {
			again = resp.Choices[0].Text
		}
	} else {
		msgs := append(chatMessages(p),
			openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: text},
			openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: strict})
		if empty {
			msgs = chatMessages(agent.Prompt{System: p.System, User: p.User + "\n\n" + strict})
		}
		resp, err := c.chat(ctx, c.chatRequest(msgs, 1), q, seedFor(c.cfg.Seed, sample, true))
		if err != nil {
			return agent.Answer{}, err
		}
		if len(resp.Choices) > 0 {
			again = resp.Choices[0].Message.Content
		}
	}
	v, reason2, ok := ParseAnswer(again, q.Instrument.Scale)
	if ok {
		return agent.Answer{Value: v, Valid: true, Raw: again}, nil
	}
	return agent.Answer{
		Raw:    text,
		Reason: fmt.Sprintf("%s; after the strict instruction: %s (reply %q)", reason, reason2, again),
	}, nil
}

// sampleTexts asks for n completions whose first sample index is first.
func (c *Client) sampleTexts(ctx context.Context, q *agent.Question, p agent.Prompt, n, first int) ([]string, error) {
	seed := seedFor(c.cfg.Seed, first, false)
	if c.cfg.Endpoint == EndpointCompletions {
		resp, err := c.complete(ctx, c.completionRequest(completionPrompt(p), n), q, seed)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(resp.Choices))
		for i, ch := range resp.Choices {
			out[i] = ch.Text
		}
		return out, nil
	}
	resp, err := c.chat(ctx, c.chatRequest(chatMessages(p), n), q, seed)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(resp.Choices))
	for i, ch := range resp.Choices {
		out[i] = ch.Message.Content
	}
	return out, nil
}

// seedFor derives the seed of a request from the configured seed and the
// index of its first sample, so that every block (and every strict retry)
// draws different samples. It stays within int64, which servers parse.
func seedFor(seed *uint64, sample int, strict bool) *uint64 {
	if seed == nil {
		return nil
	}
	s := *seed + 2*uint64(sample)
	if strict {
		s++
	}
	s &= math.MaxInt64
	return &s
}

func chatMessages(p agent.Prompt) []openai.ChatCompletionMessage {
	msgs := make([]openai.ChatCompletionMessage, 0, 4)
	if p.System != "" {
		msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleSystem, Content: p.System})
	}
	return append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: p.User})
}

// completionPrompt joins the prompt for /completions, the value prefix
// first so that prefix caches hit, ending where the answer goes.
func completionPrompt(p agent.Prompt) string {
	if p.System == "" {
		return p.User + "\n\nAnswer:"
	}
	return p.System + "\n\n" + p.User + "\n\nAnswer:"
}

func (c *Client) chatRequest(msgs []openai.ChatCompletionMessage, n int) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model:    c.cfg.Model,
		Messages: msgs,
		//lint:ignore SA1019 max_tokens is what vLLM, llama.cpp and Ollama read; max_completion_tokens is OpenAI-only.
		MaxTokens: c.cfg.MaxTokens,
		TopP:      float32(c.cfg.TopP),
		N:         n,
	}
}

func (c *Client) completionRequest(prompt string, n int) openai.CompletionRequest {
	return openai.CompletionRequest{
		Model:     c.cfg.Model,
		Prompt:    prompt,
		MaxTokens: c.cfg.MaxTokens,
		TopP:      float32(c.cfg.TopP),
		N:         n,
	}
}

// extra lists the body fields go-openai cannot send: the temperature even
// when zero (its struct omits a zero), a seed beyond int range, and vLLM's
// structured_outputs restricting the answer to the scale's options.
func (c *Client) extra(q *agent.Question, seed *uint64) map[string]any {
	m := make(map[string]any, len(c.cfg.ExtraBody)+4)
	for k, v := range c.cfg.ExtraBody {
		m[k] = v
	}
	if c.cfg.ReasoningEffort != "" {
		m["reasoning_effort"] = c.cfg.ReasoningEffort
	}
	if c.cfg.Temperature != nil {
		m["temperature"] = *c.cfg.Temperature
	}
	if seed != nil {
		m["seed"] = *seed
	}
	if c.cfg.StructuredOutputs {
		sc := q.Instrument.Scale
		choices := make([]string, 0, sc.Points())
		for x := sc.Min; x <= sc.Max; x++ {
			choices = append(choices, strconv.Itoa(x))
		}
		m["structured_outputs"] = map[string]any{"choice": choices}
	}
	return m
}

func (c *Client) chat(ctx context.Context, req openai.ChatCompletionRequest, q *agent.Question, seed *uint64) (openai.ChatCompletionResponse, error) {
	resp, err := c.oa.CreateChatCompletion(withExtra(ctx, c.extra(q, seed)), req)
	if err != nil {
		return resp, err
	}
	c.stats.promptTokens.Add(int64(resp.Usage.PromptTokens))
	c.stats.completionTokens.Add(int64(resp.Usage.CompletionTokens))
	c.doer.obs.Tokens(c.doer.model, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	return resp, nil
}

func (c *Client) complete(ctx context.Context, req openai.CompletionRequest, q *agent.Question, seed *uint64) (openai.CompletionResponse, error) {
	resp, err := c.oa.CreateCompletion(withExtra(ctx, c.extra(q, seed)), req)
	if err != nil {
		return resp, err
	}
	if resp.Usage != nil {
		c.stats.promptTokens.Add(int64(resp.Usage.PromptTokens))
		c.stats.completionTokens.Add(int64(resp.Usage.CompletionTokens))
		c.doer.obs.Tokens(c.doer.model, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	}
	return resp, nil
}
