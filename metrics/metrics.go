// Package metrics owns the program's Prometheus metrics, the /metrics
// endpoint and the Grafana dashboard that charts them. Every metric is named
// society_<thing>_<unit> and carries only bounded labels (model, strategy,
// value, instrument, game, outcome, reference, state, kind, and a model's
// backend, mode and synthetic flag): never one series per agent.
//
// Live is a run's sim.Observer: it turns the run's events into the live
// figures (progress, agents at work, values similarity so far); a
// Follower keeps them fresh while the run lasts, whether this process
// drives the run (Follow) or only reads its answers (FollowAnswers).
// Endpoint is the /metrics server every role starts the same way.
//
// It is an adapter: it may import the domain packages (sim among them) and
// client_golang, never bus or llm. New takes a prometheus.Registerer (an
// Endpoint makes a registry of its own); it keeps no global state.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo identifies the running program in society_build_info.
type BuildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

// Outcomes of a model request as the dashboard groups them. An outcome
// outside this set is counted as OutcomeError, so that a caller's typo can
// never create unbounded series.
const (
	OutcomeOK       = "ok"
	OutcomeRetry    = "retry" // an attempt that failed and was retried
	Outcome429      = "429"
	Outcome5xx      = "5xx"
	Outcome4xx      = "4xx"
	OutcomeTimeout  = "timeout"
	OutcomeCanceled = "canceled"
	OutcomeError    = "error"
)

var requestOutcomes = map[string]bool{
	OutcomeOK: true, OutcomeRetry: true, Outcome429: true, Outcome5xx: true, Outcome4xx: true,
	OutcomeTimeout: true, OutcomeCanceled: true, OutcomeError: true,
}

// Agent states of society_agents.
const (
	// StateIdle agents are alive and have no unanswered task.
	StateIdle = "idle"
	// StateAnswering agents have items of a published task still to answer.
	StateAnswering = "answering"
	// StateFinished agents belong to a run that is over.
	StateFinished = "finished"
)

// latencyBuckets span a fast local server (milliseconds) to a saturated
// remote one (minutes); classic buckets for Prometheus servers without
// native histograms.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// Native histogram settings: a bucket factor of 1.1 gives about 5% relative
// error on quantiles; the bucket limit keeps a long run's series bounded by
// widening buckets instead of growing without end.
const (
	nativeFactor      = 1.1
	nativeMaxBuckets  = 160
	nativeMinResetDur = time.Hour
)

// Metrics holds every collector of the program. Its methods are safe for
// concurrent use; a nil *Metrics does nothing, so callers need no checks.
type Metrics struct {
	agents      *prometheus.GaugeVec
	population  *prometheus.GaugeVec
	tasks       *prometheus.CounterVec
	answers     *prometheus.CounterVec
	expected    *prometheus.GaugeVec
	progress    *prometheus.GaugeVec
	info        *prometheus.GaugeVec
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	queueWait   *prometheus.HistogramVec
	inFlight    *prometheus.GaugeVec
	tokens      *prometheus.CounterVec
	cache       *prometheus.CounterVec
	modelInfo   *prometheus.GaugeVec
	coverage    *prometheus.HistogramVec
	pending     *prometheus.GaugeVec
	redelivered prometheus.Counter
	bad         prometheus.Counter
	valuesSim   *prometheus.GaugeVec
	behaviorSim *prometheus.GaugeVec
	cooperation *prometheus.GaugeVec
	round       *prometheus.GaugeVec

	mu    sync.Mutex
	runs  map[string]*Run // by id: the runs whose series are exported
	ended []string        // ids of ended runs still exported, oldest first
}

// batchKey identifies an answer batch the way the analysis de-duplicates
// it: a second delivery of the same key is a redelivery, not new answers.
type batchKey struct {
	model, instrument  string
	round, item, shard int
}

// New registers the program's metrics with reg. It panics if they are
// already registered there, which is a programmer error.
func New(reg prometheus.Registerer, build BuildInfo) *Metrics {
	f := factory{reg}
	m := &Metrics{
		agents: f.gaugeVec("society_agents",
			"Simulated people by state: idle (alive, nothing to answer), answering (items of a published task outstanding), finished (the run is over).",
			"run", "state"),
		population: f.gaugeVec("society_population_agents",
			"Agents each population strategy uses, by dominant value (none: the unprimed model).",
			"run", "strategy", "value"),
		tasks: f.counterVec("society_tasks_published_total",
			"Task messages published to agent shards (one per shard, model, instrument and round).",
			"run", "model", "instrument"),
		answers: f.counterVec("society_answers_total",
			"Answers received by the analysis, counted once per answer batch however often it is delivered; outcome is valid or invalid.",
			"run", "model", "instrument", "outcome"),
		expected: f.gaugeVec("society_answers_expected",
			"Answers the run expects in all (agents × items, every model, instrument and round).",
			"run"),
		progress: f.gaugeVec("society_run_progress_ratio",
			"Share of the expected answers received so far (valid + invalid) / expected.",
			"run"),
		info: f.gaugeVec("society_run_info",
			"The runs this process follows or serves, by run id (the run label of the other run-scoped series), scenario name and seed; always 1.",
			"run", "scenario", "seed"),
		requests: f.counterVec("society_model_requests_total",
			"Requests to model endpoints by outcome: ok, retry, 429, 5xx, 4xx, timeout, canceled, error.",
			"model", "outcome"),
		duration: f.histogramVec("society_model_request_duration_seconds",
			"Time from sending a request to a model endpoint to its response, per attempt.",
			latencyBuckets, true, "model"),
		queueWait: f.histogramVec("society_model_queue_wait_seconds",
			"Time a request waited for a free concurrency slot before it was sent.",
			latencyBuckets, true, "model"),
		inFlight: f.gaugeVec("society_model_requests_in_flight",
			"Requests sent to a model endpoint and not yet answered.",
			"model"),
		tokens: f.counterVec("society_model_tokens_total",
			"Tokens reported by model endpoints; kind is prompt (in) or completion (out).",
			"model", "kind"),
		cache: f.counterVec("society_cache_lookups_total",
			"Model calls looked up in the answer cache by outcome: hit, a call not made because the cache held its reply (a call saved, however many answers the reply serves); miss, a call made because it did not.",
			"model", "outcome"),
		modelInfo: f.gaugeVec("society_model_info",
			"The run's models: backend, query mode and whether the answers come from synthetic respondents (the synthetic backend, or an endpoint served by society model-server); always 1.",
			"model", "backend", "mode", "synthetic"),
		coverage: f.histogramVec("society_distribution_coverage_ratio",
			"Probability mass that the answer options cover in a distribution-mode reply (1 = every token was an answer option).",
			[]float64{.1, .2, .3, .4, .5, .6, .7, .8, .9, .95, .99, 1}, false, "model"),
		pending: f.gaugeVec("society_nats_pending_messages",
			"Answer messages in the run's JetStream stream not yet delivered to the analysis.",
			"run"),
		redelivered: f.counter("society_nats_redeliveries_total",
			"Answer batches delivered again after their first delivery (redeliveries, replays); the analysis ignores them."),
		bad: f.counter("society_bad_messages_total",
			"Messages that could not be decoded and were skipped."),
		valuesSim: f.gaugeVec("society_values_similarity",
			"Values similarity to a human reference (1 − normalised Procrustes disparity of the MDS maps). During a run it is computed from a sample of the agents who answered every item so far; at the end from the whole population, as in results.json.",
			"run", "model", "strategy", "reference"),
		behaviorSim: f.gaugeVec("society_behavior_similarity",
			"Behaviour similarity: Pearson r between the model's and the reference's value × behaviour correlation matrices.",
			"run", "model", "strategy", "instrument", "reference"),
		cooperation: f.gaugeVec("society_game_cooperation_ratio",
			"Share of players who contributed in the latest Paired Charity Game round, by dominant value.",
			"run", "game", "value"),
		round: f.gaugeVec("society_game_round",
			"Latest round played of each game.",
			"run", "game"),
		runs: map[string]*Run{},
	}
	info := f.gaugeVec("society_build_info", "The running program's version; always 1.", "version", "revision", "go_version")
	info.WithLabelValues(orUnknown(build.Version), orUnknown(build.Revision), orUnknown(build.GoVersion)).Set(1)
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// factory creates and registers collectors with one registerer.
type factory struct{ reg prometheus.Registerer }

func (f factory) register(c prometheus.Collector) {
	if f.reg != nil {
		f.reg.MustRegister(c)
	}
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.register(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.register(g)
	return g
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.register(c)
	return c
}

// histogramVec makes a histogram with classic buckets and, when native is
// set, native (sparse) buckets as well: Prometheus servers with native
// histograms enabled scrape the latter, older ones the former.
func (f factory) histogramVec(name, help string, buckets []float64, native bool, labels ...string) *prometheus.HistogramVec {
	o := prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}
	if native {
		o.NativeHistogramBucketFactor = nativeFactor
		o.NativeHistogramMaxBucketNumber = nativeMaxBuckets
		o.NativeHistogramMinResetDuration = nativeMinResetDur
	}
	h := prometheus.NewHistogramVec(o, labels)
	f.register(h)
	return h
}

// BadMessage counts a message that could not be decoded.
func (m *Metrics) BadMessage(error) {
	if m == nil {
		return
	}
	m.bad.Inc()
}

// The methods below are the model client's observer: the OpenAI-compatible
// client reports each request, its queueing, its tokens and its cache
// lookups through them.

// ObserveRequest records a finished request attempt with its outcome
// (OutcomeOK, OutcomeRetry, Outcome429, Outcome5xx, …) and duration.
func (m *Metrics) ObserveRequest(model, outcome string, seconds float64) {
	if m == nil {
		return
	}
	if !requestOutcomes[outcome] {
		outcome = OutcomeError
	}
	m.requests.WithLabelValues(model, outcome).Inc()
	m.duration.WithLabelValues(model).Observe(seconds)
}

// ObserveQueueWait records how long a request waited for a concurrency slot.
func (m *Metrics) ObserveQueueWait(model string, seconds float64) {
	if m == nil {
		return
	}
	m.queueWait.WithLabelValues(model).Observe(seconds)
}

// InFlight adds delta (+1 when a request is sent, −1 when it returns) to
// the requests in flight.
func (m *Metrics) InFlight(model string, delta int) {
	if m == nil {
		return
	}
	m.inFlight.WithLabelValues(model).Add(float64(delta))
}

// Tokens counts the prompt and completion tokens of a response.
func (m *Metrics) Tokens(model string, prompt, completion int) {
	if m == nil {
		return
	}
	m.tokens.WithLabelValues(model, "prompt").Add(float64(prompt))
	m.tokens.WithLabelValues(model, "completion").Add(float64(completion))
}

// ModelInfo labels a model of the run. A model found synthetic only from
// its server's replies is labelled again: its earlier series is removed, so
// that the model has one.
func (m *Metrics) ModelInfo(model, backend, mode string, synthetic bool) {
	if m == nil {
		return
	}
	m.modelInfo.DeletePartialMatch(prometheus.Labels{"model": model})
	m.modelInfo.WithLabelValues(model, backend, mode, strconv.FormatBool(synthetic)).Set(1)
}

// CacheLookup counts a model call looked up in the answer cache: hit when
// the call was saved, miss when it was made.
func (m *Metrics) CacheLookup(model string, hit bool) {
	if m == nil {
		return
	}
	outcome := "miss"
	if hit {
		outcome = "hit"
	}
	m.cache.WithLabelValues(model, outcome).Inc()
}

// Coverage records the probability mass the answer options covered in a
// distribution-mode reply.
func (m *Metrics) Coverage(model string, mass float64) {
	if m == nil {
		return
	}
	m.coverage.WithLabelValues(model).Observe(mass)
}
