package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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
	// DefaultMaxTokens is the token budget of a sampled reply when the
	// scenario sets none. An answer on a scale is a number or a short
	// label ("4", "Somewhat like me.", "5 - Like me"): under ten tokens in
	// every tokenizer, so 32 leaves room for a short phrase around it.
	// Without a budget some servers (Ollama) generate up to the context
	// limit and every request times out; a model that reasons first
	// needs a larger budget or its reasoning switched off, and its
	// replies are reported as cut off (reason "truncated") until then.
	// Distribution-mode requests always ask for one token.
	DefaultMaxTokens = 32
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
	MaxTokens   int     // per sampled completion; 0: DefaultMaxTokens
	// Samples is how many completions one sample-mode request asks for
	// at most (OpenAI's n): agents of a persona are served in blocks of
	// Samples, cut to the agents that will use them (Demand).
	Samples     int
	Concurrency int           // requests in flight to the endpoint
	Timeout     time.Duration // per attempt
	// Seed, when set, makes sampling reproducible on servers that honour
	// it. Each request gets its own seed derived from it, the prompt and
	// the request's first sample (seedFor), so that no two prompts or
	// blocks share their draws.
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
	// Demand, when set, is the number of samples of a prompt the run
	// will use for a persona: the agents holding it. Sample requests are
	// cut to it (see segmentOf); 0 or nil means unknown (whole blocks).
	Demand func(agent.Persona) int
	// Logger, when set, is told about failed attempts as they happen (at
	// most one line per endpoint every ten seconds), about limits the
	// endpoint states, and once per model about replies that cannot serve
	// the mode (no log-probability alternatives, replies cut off by the
	// token limit).
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
// endpoint; Fallbacks counts the distribution-mode questions sampled
// instead, of which NoAlternatives because the reply had no first-token
// alternatives and FallbackErrors because the request failed (the others
// for low coverage).
type ClientStats struct {
	Calls, CacheHits, Retries, Failures, Invalid int64
	PromptTokens, CompletionTokens               int64
	CoverageSum                                  float64
	CoverageN                                    int64
	Fallbacks                                    int64
	NoAlternatives, FallbackErrors               int64
	// StrictRetries counts the requests repeated with the strict
	// instruction after an unreadable reply.
	StrictRetries int64
}

// counters are the client's statistics, updated atomically.
type counters struct {
	calls, cacheHits, retries, failures, invalid atomic.Int64
	promptTokens, completionTokens               atomic.Int64
	coverageBits                                 atomic.Uint64 // float64 sum
	coverageN, fallbacks                         atomic.Int64
	noAlternatives, fallbackErrors               atomic.Int64
	strictRetries                                atomic.Int64
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
	served served // what the endpoint said about itself (served.go)

	samples group[agent.Answer]
	segs    group[struct{}]
	dists   group[[]byte]

	// memo keeps decoded distributions in memory: in distribution mode
	// every agent of a persona asks the same question, and going to the
	// store (a file or a KV bucket) and decoding JSON each time would cost
	// more than the agents' own work. Distinct prompts are few (personas ×
	// items × visible histories), so the map stays small.
	memoMu sync.RWMutex
	memo   map[memoKey]memoEntry

	segMu    sync.Mutex
	segments map[string]*segment

	log    *slog.Logger
	warned sync.Map // warning kind → struct{}: each is logged once
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
	cfg.MaxTokens = cmpOr(cfg.MaxTokens, DefaultMaxTokens)
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
	c := &Client{cfg: cfg, name: name, key: key, oa: openai.NewClientWithConfig(oc), tr: tr, stats: st, doer: d, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
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
		// Per-request seeds derive from the prompt and the first sample
		// of a request (seedFor, "prompt"), so with a seed the block size
		// changes which sample is which.
		seed = "prompt/" + strconv.FormatUint(*c.cfg.Seed, 10) + "/" + strconv.Itoa(c.cfg.Samples)
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
		Fallbacks: s.fallbacks.Load(), NoAlternatives: s.noAlternatives.Load(), FallbackErrors: s.fallbackErrors.Load(),
		StrictRetries: s.strictRetries.Load(),
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
	if c.cfg.Mode == ModeDistribution && !oneTokenOptions(q.Instrument.Scale) {
		// An option of two or more characters ("10", "-1") spans several
		// tokens, and the first token's alternatives cannot tell "1" from
		// the start of "10": the question is sampled instead, as in
		// sample mode (it is not a fallback of a distribution request:
		// none is made).
		c.warnOnce("multi-token-scale", "the scale's options do not fit in one token; its questions are sampled instead of read from log-probabilities",
			"instrument", q.Instrument.Name, "scale", fmt.Sprintf("%d-%d", q.Instrument.Scale.Min, q.Instrument.Scale.Max))
		r.Answer, err = c.askSample(ctx, q, p)
	} else if c.cfg.Mode == ModeDistribution {
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

// warnOnce logs a warning of a kind once per client (one model).
func (c *Client) warnOnce(kind, msg string, args ...any) {
	if _, loaded := c.warned.LoadOrStore(kind, struct{}{}); loaded {
		return
	}
	c.log.Warn("model "+c.name+": "+msg, args...)
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
	Reason   string    `json:"reason,omitempty"` // why sampled instead
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
		if ctx.Err() != nil || !errors.Is(err, ErrUnavailable) {
			return agent.Reply{}, false, err
		}
		// The log-probability request kept failing although the
		// endpoint may still sample (a server overloaded by logprobs
		// only). The question is sampled instead; nothing was stored
		// for the prompt, so a later run asks for its distribution
		// again.
		c.stats.fallbacks.Add(1)
		c.stats.fallbackErrors.Add(1)
		c.warnOnce("dist-error", "distribution request failed; sampling this question instead (not cached)", "err", err)
		a, err := c.askSample(ctx, q, p)
		return agent.Reply{Answer: a}, false, err
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

// Reasons a distribution-mode question is sampled instead, kept in the
// cached entry.
const (
	fallbackLowCoverage    = "low coverage"
	fallbackNoAlternatives = "no alternatives"
)

// fetchDist asks for one token with its top log-probabilities and turns
// them into a distribution over the scale's options. A reply without
// alternatives for the first token (no logprobs, or an empty top_logprobs)
// cannot give a distribution, nor can one whose options cover less than
// MinCoverage: both are sampled instead.
func (c *Client) fetchDist(ctx context.Context, q *agent.Question, p agent.Prompt) (distEntry, error) {
	sc := q.Instrument.Scale
	var (
		alts []alt
		ok   bool
	)
	seed := seedFor(c.cfg.Seed, p, 0, false)
	if c.cfg.Endpoint == EndpointCompletions {
		req := c.completionRequest(completionPrompt(p), 1, 1)
		req.LogProbs = c.topLogprobs()
		resp, err := c.complete(ctx, req, q, seed)
		if err != nil {
			return distEntry{}, err
		}
		alts, ok = completionAlternatives(resp)
	} else {
		req := c.chatRequest(chatMessages(p), 1, 1)
		req.LogProbs = true
		req.TopLogProbs = c.topLogprobs()
		resp, err := c.chat(ctx, req, q, seed)
		if err != nil {
			return distEntry{}, err
		}
		alts, ok = chatAlternatives(resp)
	}
	if !ok {
		c.stats.fallbacks.Add(1)
		c.stats.noAlternatives.Add(1)
		c.warnOnce("no-alternatives", "the server returned no alternatives (top_logprobs) for the answer token; "+
			"questions are sampled instead (mode = \"sample\" avoids the extra request)")
		return distEntry{Fallback: true, Reason: fallbackNoAlternatives}, nil
	}
	temp := 1.0
	if c.cfg.Temperature != nil {
		temp = *c.cfg.Temperature
	}
	dist, coverage := optionDist(alts, sc.Min, sc.Max, temp)
	c.stats.addCoverage(coverage)
	c.doer.obs.Coverage(c.doer.model, coverage)
	if coverage < c.cfg.MinCoverage || dist == nil {
		c.stats.fallbacks.Add(1)
		c.warnOnce("low-coverage", "the answer options cover too little of the answer token's probability; questions below the threshold are sampled instead",
			"coverage", coverage, "min_coverage", c.cfg.MinCoverage)
		return distEntry{Coverage: coverage, Fallback: true, Reason: fallbackLowCoverage}, nil
	}
	return distEntry{Dist: dist, Coverage: coverage}, nil
}

// topLogprobs is the number of alternatives asked for per token.
func (c *Client) topLogprobs() int { return distLogprobs }

// optionDist collects the log-probabilities of the alternatives that spell
// an option ("4", " 4", "Ġ4", "▁4", "4\n": see optionOf) and returns the
// options' distribution at temperature temp, with the probability mass
// the options covered. Alternatives that spell the same option are
// different tokens, so their probabilities add. Servers report
// log-probabilities before temperature, so temperature is applied here:
// the result is the distribution of the first token sampled at temp, given
// that it is an option. Zero temperature puts all mass on the most likely
// options.
func optionDist(alts []alt, lo, hi int, temp float64) ([]float64, float64) {
	n := hi - lo + 1
	if n <= 0 {
		return nil, 0
	}
	lps := make([]float64, n)
	for i := range lps {
		lps[i] = math.Inf(-1)
	}
	coverage := 0.0
	for _, a := range alts {
		x, ok := optionOf(a)
		if !ok || x < lo || x > hi || math.IsNaN(a.lp) || a.lp > 0.001 {
			continue
		}
		i := x - lo
		lps[i] = logAddExp(lps[i], a.lp)
		coverage += math.Exp(a.lp)
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

// askSample returns sample q.Sample of the prompt: from the cache, or read
// from a reply fetched for the sample's segment (see segmentOf), retried
// with the strict instruction when unreadable, and then stored. Only the
// samples agents ask for are parsed, retried and stored.
func (c *Client) askSample(ctx context.Context, q *agent.Question, p agent.Prompt) (agent.Answer, error) {
	key := c.cacheKey(p, strconv.Itoa(q.Sample))
	return c.samples.do(ctx, key, func() (agent.Answer, error) {
		if c.cfg.Cache != nil {
			raw, ok, err := c.cfg.Cache.Get(ctx, key)
			if err != nil {
				return agent.Answer{}, err
			}
			if a, decoded := decodeAnswer(raw); ok && decoded {
				c.stats.cacheHits.Add(1)
				c.doer.obs.CacheLookup(c.doer.model, true)
				return a, nil
			}
		}
		ch, err := c.sampleReply(ctx, q, p)
		if err != nil {
			return agent.Answer{}, err
		}
		a, err := c.readSample(ctx, q, p, ch)
		if err != nil {
			return agent.Answer{}, err
		}
		if c.cfg.Cache != nil {
			raw, err := json.Marshal(answerEntry{Value: a.Value, Valid: a.Valid, Raw: a.Raw, Reason: a.Reason})
			if err != nil {
				return agent.Answer{}, err
			}
			if err := c.cfg.Cache.Put(ctx, key, raw); err != nil {
				return agent.Answer{}, err
			}
		}
		if !a.Valid {
			c.stats.invalid.Add(1)
		}
		return a, nil
	})
}

// segmentOf returns the samples [start, end) fetched together with sample
// i. Samples come in blocks of Samples (one request with n = Samples when
// the server honours n); a block is cut where the run's demand for the
// persona ends (Demand), so that a block is fetched only as far as agents
// will use it, and the samples past the demand (asked for only when the
// demand was wrong) form a segment of their own. The segments depend on
// the demand and the index only, never on which agent asked first, so the
// same run sends the same requests with the same seeds.
func (c *Client) segmentOf(persona agent.Persona, i int) (start, end int) {
	s := c.cfg.Samples
	blockStart := i / s * s
	blockEnd := blockStart + s
	cut := blockEnd
	if c.cfg.Demand != nil {
		if d := c.cfg.Demand(persona); d > 0 {
			cut = min(max(d, blockStart), blockEnd)
		}
	}
	if i < cut {
		return blockStart, cut
	}
	return cut, blockEnd
}

// segment holds the replies of a segment fetched in this run until each
// has been read once.
type segment struct {
	replies map[int]choice
}

// sampleReply returns the reply for sample q.Sample, fetching its segment
// when no request of this run has.
func (c *Client) sampleReply(ctx context.Context, q *agent.Question, p agent.Prompt) (choice, error) {
	i := q.Sample
	start, end := c.segmentOf(q.Persona, i)
	key := c.cacheKey(p, "segment/"+strconv.Itoa(start)+"-"+strconv.Itoa(end))
	// A segment fetched earlier whose samples were all read is fetched
	// again for a sample asked a second time (only without a cache): a
	// bounded number of rounds, not a loop on a server that drops choices.
	for range 3 {
		if ch, ok := c.takeReply(key, i); ok {
			return ch, nil
		}
		_, err := c.segs.do(ctx, key, func() (struct{}, error) {
			if c.hasReply(key, i) {
				return struct{}{}, nil
			}
			replies, err := c.fetchSegment(ctx, q, p, start, end, i)
			if err != nil {
				return struct{}{}, err
			}
			c.keepReplies(key, replies)
			return struct{}{}, nil
		})
		if err != nil {
			return choice{}, err
		}
	}
	return choice{}, fmt.Errorf("sample %d: no reply after fetching its samples", i)
}

func (c *Client) hasReply(key string, i int) bool {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	sg := c.segments[key]
	if sg == nil {
		return false
	}
	_, ok := sg.replies[i]
	return ok
}

func (c *Client) keepReplies(key string, replies map[int]choice) {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	if c.segments == nil {
		c.segments = map[string]*segment{}
	}
	sg := c.segments[key]
	if sg == nil {
		sg = &segment{replies: map[int]choice{}}
		c.segments[key] = sg
	}
	for i, ch := range replies {
		sg.replies[i] = ch
	}
}

// takeReply hands out the reply of sample i once, forgetting the segment
// once every reply has been handed out.
func (c *Client) takeReply(key string, i int) (choice, bool) {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	sg := c.segments[key]
	if sg == nil {
		return choice{}, false
	}
	ch, ok := sg.replies[i]
	if ok {
		delete(sg.replies, i)
		if len(sg.replies) == 0 {
			delete(c.segments, key)
		}
	}
	return ch, ok
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

// fetchSegment fetches the samples [start, end) and returns the replies
// of those the cache does not hold (always including sample want). The
// requests are the same whatever the cache holds: a server honouring n
// draws choice j of a request from the request's seed and j, so a request
// for only the missing samples, seeded from the first of them, would give
// them other replies than the run that fetched the segment whole; which
// samples are cached depends on which agent host or restarted process got
// there first, and the same seed must give the same answers. The segment
// is therefore asked for whole, from its first sample; a server that
// ignores n returns fewer choices than asked, and the rest are asked for
// again, each request seeded from its first sample. Choices beyond the
// ones asked for are ignored.
func (c *Client) fetchSegment(ctx context.Context, q *agent.Question, p agent.Prompt, start, end, want int) (map[int]choice, error) {
	need := make(map[int]bool, end-start)
	for i := start; i < end; i++ {
		if i != want && c.cfg.Cache != nil {
			// A crash may have left the segment half stored, and an
			// earlier run with fewer agents, or another agent host,
			// stored some of its samples: those keep their stored
			// answers, and their replies are not kept.
			raw, ok, err := c.cfg.Cache.store.Get(ctx, c.cacheKey(p, strconv.Itoa(i)))
			if err != nil {
				return nil, fmt.Errorf("cache get: %w", err)
			}
			if _, decoded := decodeAnswer(raw); ok && decoded {
				continue
			}
		}
		need[i] = true
	}
	if c.cfg.Cache != nil {
		// One miss per segment fetched: the lookup that costs a call.
		c.doer.obs.CacheLookup(c.doer.model, false)
	}
	out := make(map[int]choice, len(need))
	for got := start; got < end; {
		chs, err := c.sampleChoices(ctx, q, p, end-got, got)
		if err != nil {
			return nil, err
		}
		if len(chs) == 0 {
			return nil, errors.New("server returned no choices")
		}
		for _, ch := range chs[:min(len(chs), end-got)] {
			if need[got] {
				out[got] = ch
			}
			got++
		}
	}
	return out, nil
}

// readSample reads the answer of a reply; an unreadable one is asked
// again with the strict instruction.
func (c *Client) readSample(ctx context.Context, q *agent.Question, p agent.Prompt, ch choice) (agent.Answer, error) {
	sc := q.Instrument.Scale
	text, cut := truncationReason(ch, sc)
	if cut == "" {
		v, reason, ok := ParseAnswer(text, sc)
		if ok {
			return agent.Answer{Value: v, Valid: true, Raw: ch.content}, nil
		}
		return c.strictRetry(ctx, q, p, ch, text, reason, false)
	}
	c.warnOnce("truncated", "replies are cut off by the token limit (a reasoning model spends it on reasoning): "+
		"raise max_tokens or switch reasoning off", "max_tokens", c.cfg.MaxTokens)
	return c.strictRetry(ctx, q, p, ch, text, cut, true)
}

// strictRetry asks once more with the strict instruction after the first
// reply's answer text, when it had any: an assistant turn is never empty,
// and a reply that was nothing but reasoning is not shown again. A reply
// cut off by the token limit is retried with truncatedBudget times the
// budget, not the budget that already failed. An answer still unreadable
// is recorded invalid, with both replies: it is never guessed.
func (c *Client) strictRetry(ctx context.Context, q *agent.Question, p agent.Prompt, first choice, text, reason string, truncated bool) (agent.Answer, error) {
	c.stats.strictRetries.Add(1)
	strict := agent.StrictInstruction(q.Instrument)
	budget := c.cfg.MaxTokens
	if truncated {
		budget *= truncatedBudget
	}
	prev := strings.TrimSpace(text)
	seed := seedFor(c.cfg.Seed, p, q.Sample, true)
	var again choice
	if c.cfg.Endpoint == EndpointCompletions {
		prompt := completionPrompt(p)
		if prev != "" {
			prompt += " " + prev + "\n\n" + strict + "\n\nAnswer:"
		} else {
			prompt = strings.TrimSuffix(prompt, "Answer:") + strict + "\n\nAnswer:"
		}
		resp, err := c.complete(ctx, c.completionRequest(prompt, 1, budget), q, seed)
		if err != nil {
			return agent.Answer{}, err
		}
		if chs := completionChoices(resp); len(chs) > 0 {
			again = chs[0]
		}
	} else {
		msgs := chatMessages(p)
		if prev != "" {
			msgs = append(msgs,
				openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: prev},
				openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: strict})
		} else {
			// Two user turns in a row break chat templates that want
			// the roles to alternate: the instruction joins the question.
			last := &msgs[len(msgs)-1]
			last.Content += "\n\n" + strict
		}
		resp, err := c.chat(ctx, c.chatRequest(msgs, 1, budget), q, seed)
		if err != nil {
			return agent.Answer{}, err
		}
		if chs := chatChoices(resp); len(chs) > 0 {
			again = chs[0]
		}
	}
	text2, reason2 := truncationReason(again, q.Instrument.Scale)
	if reason2 == "" {
		v, r, ok := ParseAnswer(text2, q.Instrument.Scale)
		if ok {
			return agent.Answer{Value: v, Valid: true, Raw: again.content}, nil
		}
		reason2 = r
	}
	return agent.Answer{
		Raw:    first.content,
		Reason: fmt.Sprintf("%s; after the strict instruction: %s (reply %q)", reason, reason2, again.content),
	}, nil
}

// truncatedBudget multiplies the token budget of the strict retry of a
// reply cut off by the token limit.
const truncatedBudget = 4

// sampleChoices asks for n completions whose first sample index is first.
func (c *Client) sampleChoices(ctx context.Context, q *agent.Question, p agent.Prompt, n, first int) ([]choice, error) {
	seed := seedFor(c.cfg.Seed, p, first, false)
	if c.cfg.Endpoint == EndpointCompletions {
		resp, err := c.complete(ctx, c.completionRequest(completionPrompt(p), n, c.cfg.MaxTokens), q, seed)
		if err != nil {
			return nil, err
		}
		return completionChoices(resp), nil
	}
	resp, err := c.chat(ctx, c.chatRequest(chatMessages(p), n, c.cfg.MaxTokens), q, seed)
	if err != nil {
		return nil, err
	}
	return chatChoices(resp), nil
}

// seedFor derives the seed of a request from the configured seed, the
// prompt (persona prefix, context and item) and the index of its first
// sample, so that no two prompts share their random draws: with a seed
// from the index alone, sample k of every item of a persona would be drawn
// with the same seed, and one simulated person's answers would be
// correlated across items by construction. Strict retries get seeds of
// their own. The result stays within int64, which servers parse.
func seedFor(seed *uint64, p agent.Prompt, sample int, strict bool) *uint64 {
	if seed == nil {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(p.System))
	h.Write([]byte{0})
	h.Write([]byte(p.User))
	x := 2 * uint64(sample)
	if strict {
		x++
	}
	s := splitmix(splitmix(*seed^splitmix(h.Sum64())) ^ x)
	s &= math.MaxInt64
	return &s
}

// splitmix is SplitMix64's output function: a bijection of uint64 whose
// outputs for nearby inputs look unrelated.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
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

func (c *Client) chatRequest(msgs []openai.ChatCompletionMessage, n, maxTokens int) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model:    c.cfg.Model,
		Messages: msgs,
		//lint:ignore SA1019 max_tokens is what vLLM, llama.cpp and Ollama read; max_completion_tokens is OpenAI-only.
		MaxTokens: maxTokens,
		TopP:      float32(c.cfg.TopP),
		N:         n,
	}
}

func (c *Client) completionRequest(prompt string, n, maxTokens int) openai.CompletionRequest {
	return openai.CompletionRequest{
		Model:     c.cfg.Model,
		Prompt:    prompt,
		MaxTokens: maxTokens,
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
	c.noteServed(ctx, resp.Model, resp.SystemFingerprint, resp.Header())
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
	c.noteServed(ctx, resp.Model, "", resp.Header())
	if resp.Usage != nil {
		c.stats.promptTokens.Add(int64(resp.Usage.PromptTokens))
		c.stats.completionTokens.Add(int64(resp.Usage.CompletionTokens))
		c.doer.obs.Tokens(c.doer.model, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	}
	return resp, nil
}

// oneTokenOptions reports whether every option of sc is written with one
// character, 0 to 9: the only scales whose answer is the reply's first
// token whatever the tokenizer.
func oneTokenOptions(sc questionnaires.Scale) bool {
	return sc.Min >= 0 && sc.Max <= 9
}
