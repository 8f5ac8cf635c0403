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
	Concurrency int // requests in flight to the endpoint
	// Timeout bounds each attempt, reading the reply included; attempts
	// started within the same 10 ms share a deadline, so an attempt may
	// run up to min(Timeout/1000, 10 ms) longer (see deadlines).
	Timeout time.Duration
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
// endpoint (not their retries). CacheHits counts the calls not made because
// the cache held their replies: a rerun served wholly from the cache saves
// as many calls as the run that filled it made (strict retries and the
// requests of a server that ignores n included). AnswersReused counts the
// answers served by a reply, fetched or stored, beyond the first it served:
// the other agents of a persona drawing from one distribution, the other
// samples of a request with n > 1. Failures counts requests that ended in
// an error, Invalid answers recorded as invalid. Coverage is summed over the
// distributions the answers came from, fetched from the endpoint or read
// from the cache (each distinct prompt once; past memoLimit distinct
// prompts, a reply read from the store again counts again, as its calls
// saved do); Fallbacks counts the distribution-mode questions sampled
// instead, of which NoAlternatives because the reply had no first-token
// alternatives and FallbackErrors because the request failed (the others
// for low coverage). A rerun from the cache has the coverage and
// fallbacks of the run that filled it.
type ClientStats struct {
	Calls, CacheHits, Retries, Failures, Invalid int64
	AnswersReused                                int64
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
	answersReused                                atomic.Int64
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
	wire   *wire  // request templates and encodings (wire.go)
	tr     *http.Transport
	stats  *counters
	doer   *doer
	params string // the output-changing parameters, for cache keys
	served served // what the endpoint said about itself (served.go)

	samples group[sampleKey, agent.Answer]
	dists   group[string, []byte]

	// memo keeps decoded distributions in memory: in distribution mode
	// every agent of a persona asks the same question, and going to the
	// store (a file or a KV bucket) and decoding JSON each time would cost
	// more than the agents' own work. Distinct prompts are few (personas ×
	// items × visible histories), so the map stays small.
	memoMu sync.RWMutex
	memo   map[memoKey]*memoEntry
	// distPlan holds the distributions a Prefetch plan is waiting for,
	// with the plan's count of requests answered (distFetched). Guarded
	// by memoMu.
	distPlan map[memoKey]*prefetchCount

	// segMu guards segments (replies fetched and not yet read) and
	// fetching (segments being fetched or queued by Prefetch).
	segMu    sync.Mutex
	segments map[segKey]segment
	fetching map[segKey]*segFetch
	// plans are the Prefetch plans whose workers are fetching, which an
	// Ask for a segment that is neither fetched nor in flight looks
	// ahead in. Guarded by segMu.
	plans []*prefetchPlan
	// refetched holds the segments this client fetched while some of
	// their samples were stored: their stored requests were made again
	// (see countStored). Guarded by segMu.
	refetched map[segKey]struct{}
	// segWaiting counts the Asks waiting for a segment in flight, so that
	// a test can tell when they have joined it.
	segWaiting atomic.Int64

	log    *slog.Logger
	warned sync.Map // warning kind → struct{}: each is logged once
	// fetched holds the cache keys of the distributions this client
	// requested itself: another agent finding one in the store is
	// served this run's call, not a call saved by the cache.
	fetched sync.Map

	static  *extraFields // body fields every request carries (extra)
	choices sync.Map     // [2]int{min, max} → structured_outputs value

	prompts  sync.Map // promptKey → agent.Prompt (render)
	nPrompts atomic.Int64

	readings  sync.Map // parseKey → reading (parseAnswer)
	nReadings atomic.Int64
}

// memoEntry is a distribution-mode reply held in memory: its
// distribution, or fallback when its questions are sampled instead.
// stored marks one read from the persistent store rather than fetched by
// this run; used is set by the first answer it served (useDist).
type memoEntry struct {
	dist     []float64
	stored   bool
	fallback bool
	// coverage and noAlternatives describe the reply as fetchDist found
	// it: the options' covered mass, or no alternatives to read one from.
	coverage       float64
	noAlternatives bool
	// elsewhere: another process of the run fetched the distribution
	// (Cache.Elsewhere), so even its first answer here is reused.
	elsewhere bool
	used      atomic.Bool
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
	c := &Client{cfg: cfg, name: name, key: key, wire: newWire(cfg, key), tr: tr, stats: st, doer: d, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.params = c.paramString()
	static, err := staticExtra(cfg)
	if err != nil {
		return nil, fmt.Errorf("llm client %s: extra body: %w", name, err)
	}
	c.static = static
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
		Calls: s.calls.Load(), CacheHits: s.cacheHits.Load(), Retries: s.retries.Load(), AnswersReused: s.answersReused.Load(),
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
	var (
		mk       memoKey
		fallback bool // the prompt's distribution is sampled instead
	)
	if c.cfg.Mode == ModeDistribution {
		mk = memoKey{q.Persona, q.Instrument, q.Item, q.Context}
		if e, ok := c.remembered(mk); ok {
			c.useDist(e)
			if !e.fallback {
				return agent.Reply{Dist: e.dist}, nil
			}
			fallback = true
		}
	}
	p := c.render(q)
	var (
		r   agent.Reply
		err error
	)
	if fallback {
		r.Answer, err = c.askSample(ctx, q, p)
	} else if c.cfg.Mode == ModeDistribution && !oneTokenOptions(q.Instrument.Scale) {
		// An option of two or more characters ("10", "-1") spans several
		// tokens, and the first token's alternatives cannot tell "1" from
		// the start of "10": the question is sampled instead, as in
		// sample mode (it is not a fallback of a distribution request:
		// none is made).
		c.warnOnce("multi-token-scale", "the scale's options do not fit in one token; its questions are sampled instead of read from log-probabilities",
			"instrument", q.Instrument.Name, "scale", fmt.Sprintf("%d-%d", q.Instrument.Scale.Min, q.Instrument.Scale.Max))
		r.Answer, err = c.askSample(ctx, q, p)
	} else if c.cfg.Mode == ModeDistribution {
		r, err = c.askDist(ctx, q, p, mk)
	} else {
		r.Answer, err = c.askSample(ctx, q, p)
	}
	if err != nil {
		return agent.Reply{}, c.redact(fmt.Errorf("llm %s: %s item %d: %w", c.name, q.Instrument.Name, q.Instrument.Items[q.Item].ID, err))
	}
	return r, nil
}

// promptKey is a question without a context: its prompt depends on
// nothing else.
type promptKey struct {
	persona agent.Persona
	inst    *questionnaires.Instrument
	item    int
}

// promptLimit bounds the prompts kept (personas × styles × items of a
// run: a few thousand).
const promptLimit = 1 << 16

// render is agent.Render, remembered for questions without a context: in
// sample mode every agent of a persona asks the same prompts, and
// rendering one (value prefix, instruction with every label) costs a
// dozen allocations per call.
func (c *Client) render(q *agent.Question) agent.Prompt {
	if q.Context != "" {
		return agent.Render(q)
	}
	k := promptKey{q.Persona, q.Instrument, q.Item}
	if p, ok := c.prompts.Load(k); ok {
		return p.(agent.Prompt)
	}
	p := agent.Render(q)
	if c.nPrompts.Load() < promptLimit {
		if _, loaded := c.prompts.LoadOrStore(k, p); !loaded {
			c.nPrompts.Add(1)
		}
	}
	return p
}

// remember keeps a distribution in memory while there is room, and
// returns the entry kept for mk: one kept earlier (by a concurrent Ask or
// Prefetch) wins, so that every Ask of the prompt shares its count.
func (c *Client) remember(mk memoKey, e *memoEntry) *memoEntry {
	c.memoMu.Lock()
	defer c.memoMu.Unlock()
	if c.memo == nil {
		c.memo = make(map[memoKey]*memoEntry)
	}
	if old, ok := c.memo[mk]; ok {
		return old
	}
	if len(c.memo) < memoLimit {
		c.memo[mk] = e
	}
	return e
}

// useDist counts an answer served by a distribution-mode reply. The first
// answer of a reply read from the store is a call saved; a later answer of
// a distribution is an answer reused (a fallback's answers are samples,
// counted as such). Past memoLimit, replies read from the store are not
// kept, and each answer they serve counts as a call saved.
func (c *Client) useDist(e *memoEntry) {
	if e.used.CompareAndSwap(false, true) && !e.elsewhere {
		if e.stored {
			c.stats.cacheHits.Add(1)
			c.doer.obs.CacheLookup(c.doer.model, true)
			c.stats.countDist(e.coverage, e.noAlternatives, e.fallback)
		}
		return
	}
	if !e.fallback {
		c.stats.answersReused.Add(1)
	}
}

// countDist counts a distribution-mode reply as it describes the answers:
// its covered mass, or its lack of alternatives to read one from, and
// whether its question is sampled instead. fetchDist counts each reply it
// fetches, useDist each read from the store (as it was counted when
// fetched), so that a run's distributions, covered mass, fallbacks and
// query mode are the same whether the replies came from the model or
// from the cache: a rerun from the cache reported no distribution, a null
// covered mass and no fallback, as if every answer had been drawn from a
// distribution.
func (s *counters) countDist(coverage float64, noAlternatives, fallback bool) {
	if noAlternatives {
		s.noAlternatives.Add(1)
	} else {
		s.addCoverage(coverage)
	}
	if fallback {
		s.fallbacks.Add(1)
	}
}

// remembered returns the distribution kept for mk.
func (c *Client) remembered(mk memoKey) (*memoEntry, bool) {
	c.memoMu.RLock()
	defer c.memoMu.RUnlock()
	e, ok := c.memo[mk]
	return e, ok
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

func (c *Client) cacheKey(p agent.Prompt, index string) string {
	return keyHash(c.params, p.System, p.User, index)
}
