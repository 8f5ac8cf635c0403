package backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// checkTimeout bounds the reachability check of the endpoints.
const checkTimeout = 10 * time.Second

// tokenizer says how a Plan counts tokens.
const tokenizer = "prompt tokens = characters/4 per request (no tokenizer is bundled); words for society model-server, as it counts; completion tokens as the synthetic respondents' replies (an estimate that varies between plans only for a model without a seed in a scenario with games)"

// Plan is what a scenario's run will cost: its requests, tokens, time and
// money per model, as `society plan` prints it. (sim.Plan is what the run
// does; this is its price.) Its JSON form is the fields' tags.
type Plan struct {
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	// Answers are the answers the main run expects, Calibration those of
	// its model-specific calibration run.
	Answers     int64       `json:"answers"`
	Calibration int64       `json:"calibration_answers,omitempty"`
	Models      []ModelPlan `json:"models"`
	// Seconds is the run's time at the models' concurrency and latency:
	// the slowest model's, as the models are asked side by side.
	Seconds float64 `json:"seconds"`
	// Cost is the sum of the models' costs, nil when no model has a price.
	Cost      *float64 `json:"cost,omitempty"`
	Tokenizer string   `json:"tokenizer"`
	// CacheDir is the reply cache the plan read to find the requests it
	// answers (EstimateCached); empty: a first run's figures.
	CacheDir string `json:"cache_dir,omitempty"`
	// StoredRun, when set, is the registered run over NATS whose answers
	// are all stored (Stored): a rerun requests nothing.
	StoredRun string `json:"stored_run,omitempty"`
	// NATS marks the plan at the top of a run over NATS (OverNATS): its
	// requests are a first run's, counted with no cache read, as the
	// caches that answer them are the agent hosts' and the cluster's reply
	// bucket, which the plan does not read.
	NATS bool `json:"over_nats,omitempty"`
	// unread: the run reads no reply cache (--no-cache, --cache-mode
	// write or off), so every request of the run goes to the model (a
	// later run that reads the cache finds what a write-mode run wrote).
	unread bool
}

// OverNATS makes p the plan at the top of a run over NATS, whose requests
// the agent hosts make: a first run's (the hosts' caches and the
// cluster's reply bucket may answer some or all of them), or, when
// stored names the registered run and its answers are all stored, none
// (Stored).
func (p *Plan) OverNATS(stored string) {
	p.NATS = true
	p.Stored(stored)
}

// Stored makes p the plan of a rerun of run, a run over NATS whose
// answers are all stored, as a reply cache that holds every reply makes
// it: each model's requests are all answered already (CachedRequests),
// and none goes to the model, so no tokens, time or cost remain. With
// run "" it does nothing.
func (p *Plan) Stored(run string) {
	if run == "" {
		return
	}
	p.StoredRun, p.Seconds = run, 0
	if p.Cost != nil {
		p.Cost = new(float64)
	}
	for i := range p.Models {
		m := &p.Models[i]
		m.CachedRequests += m.Requests
		m.Requests, m.PromptTokens, m.CompletionTokens, m.PromptChars, m.Seconds = 0, 0, 0, 0, 0
		if m.Cost != nil {
			m.Cost = new(float64)
		}
	}
}

// ModelPlan is one model's share of a run.
type ModelPlan struct {
	Model   string `json:"model"`
	Backend string `json:"backend"`
	Mode    string `json:"mode"`
	URL     string `json:"url,omitempty"`
	// ModelServer: the endpoint is 'society model-server' (its model list
	// says so), whose usage counts words.
	ModelServer bool `json:"model_server,omitempty"`
	// Requests are the completion requests the run sends to the model: a
	// first run's, less those the reply cache answers (CachedRequests,
	// when the plan read it: Plan.CacheDir). PromptTokens are their
	// prompts' tokens (see Tokenizer), PromptChars their prompts'
	// characters (Unicode code points).
	Requests         int64 `json:"requests"`
	CachedRequests   int64 `json:"cached_requests,omitempty"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	PromptChars      int64 `json:"prompt_chars"`
	Concurrency      int   `json:"concurrency,omitempty"`
	// LatencySeconds is one request's time; LatencyFrom says whence:
	// "measured" (the model list's round trip, a lower bound) or "flag".
	LatencySeconds float64 `json:"latency_seconds,omitempty"`
	LatencyFrom    string  `json:"latency_from,omitempty"`
	// Seconds is ceil(Requests/Concurrency) × LatencySeconds.
	Seconds float64 `json:"seconds"`
	// Cost is PromptTokens/1e6 × price_per_mtok_in + CompletionTokens/1e6
	// × price_per_mtok_out, nil when the model has no price.
	Cost *float64 `json:"cost,omitempty"`
	// Unlisted, when the endpoint's model list does not name the model
	// (ModelID) and the endpoint does not retrieve it by name
	// (llm.Client.Check), is what the list names, comma-separated: the
	// run's first request may be refused.
	ModelID  string `json:"model_id,omitempty"`
	Unlisted string `json:"unlisted,omitempty"`
}

// Estimate checks every OpenAI-compatible endpoint of sc, then rehearses
// the run (sim.Engine.Rehearse) against in-process synthetic respondents
// behind metered model servers, one per model, to count its requests and
// tokens: the same prompts, batching, calibration and game rounds as the
// run, with a fresh reply cache, as a first run has. latency, when
// positive, replaces the measured one.
//
// An endpoint that cannot be reached fails the estimate within seconds,
// naming its URL and the cause; a model whose client cannot be configured
// is sim.ErrBadInput.
func Estimate(ctx context.Context, sc *scenarios.Scenario, latency time.Duration) (*Plan, error) {
	return EstimateCached(ctx, sc, latency, nil)
}

// ReplyCache is the reply cache a run will use: Dir ("" = the user's
// cache directory) in Mode.
type ReplyCache struct {
	Dir  string
	Mode llm.CacheMode
}

// EstimateCached is Estimate for a run that reads the reply cache c (nil:
// none, a first run). When c's mode reads its stores and its directory
// exists, the run is rehearsed a second time with the cache read-only
// (llm.CacheRead: nothing is written to it): the requests it still sends
// are each model's Requests, their tokens, time and cost the figures
// shown, and the rest of the first run's requests its CachedRequests.
// With games, cached answers steer later rounds as in the run, so the
// split is the run's if the model answers as the synthetic respondents do.
func EstimateCached(ctx context.Context, sc *scenarios.Scenario, latency time.Duration, c *ReplyCache) (*Plan, error) {
	out := &Plan{Scenario: sc.Name, Seed: sc.Seed, Tokenizer: tokenizer}
	probes, err := checkEndpoints(ctx, sc)
	if err != nil {
		return nil, err
	}
	cacheDir, err := os.MkdirTemp("", "society-plan-")
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	defer os.RemoveAll(cacheDir)
	// A fresh reply cache, as a first run has: the calibration's replies
	// serve the main run's equal prompts, as they will. A run that writes
	// no reply it could read again (--no-cache; a read-only cache) asks
	// such a prompt again each time, and is rehearsed so.
	first, err := rehearse(ctx, sc, New(cacheDir, nil, nil).WithCache(c.firstMode(), nil))
	if err != nil {
		return nil, err
	}
	sent := first
	out.unread = c != nil && c.Mode != llm.CacheReadWrite && c.Mode != llm.CacheRead
	if dir, ok := c.read(); ok {
		out.CacheDir = dir
		if sent, err = rehearse(ctx, sc, New(dir, nil, nil).WithCache(llm.CacheRead, nil)); err != nil {
			return nil, err
		}
	}
	out.Answers, out.Calibration = first.answers, first.calibration
	var total float64
	priced := false
	for _, m := range sc.Models {
		mp := ModelPlan{Model: m.Name, Backend: string(m.Backend), Mode: string(m.Mode)}
		if m.Backend != scenarios.OpenAI {
			mp.Mode = "in process, no requests"
			out.Models = append(out.Models, mp)
			continue
		}
		pr, me, u := probes[m.Name], sent.meters[m.Name], sent.usage[m.Name]
		mp.URL, mp.ModelServer, mp.Concurrency = m.BaseURL, pr.modelServer, m.Concurrency
		mp.ModelID, mp.Unlisted = m.Model, pr.unlisted
		mp.Requests, mp.PromptChars = me.Requests, me.Chars
		mp.CachedRequests = max(first.meters[m.Name].Requests-me.Requests, 0)
		mp.PromptTokens, mp.CompletionTokens = me.Tokens, u.CompletionTokens
		if pr.modelServer {
			mp.PromptTokens = u.PromptTokens
		}
		lat, from := pr.roundTrip, "measured"
		if latency > 0 {
			lat, from = latency, "flag"
		}
		mp.LatencySeconds, mp.LatencyFrom = lat.Seconds(), from
		conc := max(mp.Concurrency, 1)
		mp.Seconds = float64((mp.Requests+int64(conc)-1)/int64(conc)) * lat.Seconds()
		if mp.Seconds > out.Seconds {
			out.Seconds = mp.Seconds // models are asked side by side
		}
		if m.PricePerMTokIn > 0 || m.PricePerMTokOut > 0 {
			c := float64(mp.PromptTokens)/1e6*m.PricePerMTokIn + float64(mp.CompletionTokens)/1e6*m.PricePerMTokOut
			mp.Cost = &c
			total += c
			priced = true
		}
		out.Models = append(out.Models, mp)
	}
	if priced {
		out.Cost = &total
	}
	return out, nil
}

// firstMode is the cache mode of a first run with c, over an empty
// cache: the run's own, or off for one that only reads (it finds
// nothing); read-write without c.
func (c *ReplyCache) firstMode() llm.CacheMode {
	switch {
	case c == nil:
		return llm.CacheReadWrite
	case c.Mode == llm.CacheRead:
		return llm.CacheOff
	default:
		return c.Mode
	}
}

// read reports the directory of the stores a run with c reads: none when
// c is nil, its mode does not read, or the directory does not exist (a
// first run; the plan creates nothing).
func (c *ReplyCache) read() (string, bool) {
	if c == nil || (c.Mode != llm.CacheReadWrite && c.Mode != llm.CacheRead) {
		return "", false
	}
	dir := c.Dir
	if dir == "" {
		d, err := llm.DefaultCacheDir()
		if err != nil {
			return "", false
		}
		dir = d
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", false
	}
	return dir, true
}

// rehearsal is what one rehearsal of a run counted: each model's
// requests at its endpoint and its client's usage, by model name.
type rehearsal struct {
	answers, calibration int64
	meters               map[string]PromptCount
	usage                map[string]llm.ClientStats
}

// rehearse rehearses sc against metered in-process model servers with
// the models of sets, and closes them.
func rehearse(ctx context.Context, sc *scenarios.Scenario, sets *Sets) (*rehearsal, error) {
	defer sets.Close()
	meters, sc2, closeAll, err := rehearsalScenario(sc)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	e := &sim.Engine{Backends: sets.Backends, Open: sim.OpenLocal}
	r, err := e.Rehearse(ctx, sc2)
	if err != nil {
		return nil, fmt.Errorf("plan %s: rehearse: %w", sc.Name, err)
	}
	out := &rehearsal{answers: r.Answers.Expected, calibration: r.Calibration.Expected,
		meters: map[string]PromptCount{}, usage: map[string]llm.ClientStats{}}
	for name, me := range meters {
		out.meters[name] = me.Count()
	}
	// The clients' usage (words, as the synthetic respondents count them).
	for _, b := range sets.All() {
		for name, c := range b.Clients() {
			s, u := c.Stats(), out.usage[name]
			u.PromptTokens += s.PromptTokens
			u.CompletionTokens += s.CompletionTokens
			out.usage[name] = u
		}
	}
	return out, nil
}

// WriteText writes the plan as a table; short is the block at the top of
// a run, without the note on tokens. When the plan read the reply cache,
// the requests it answers have a column of their own and a line. When no
// request goes to the model, no time is shown. The block of a run over
// NATS (NATS) says that its requests are a first run's, which the hosts'
// caches may answer.
func (p *Plan) WriteText(w io.Writer, short bool) {
	cal := ""
	if p.Calibration > 0 {
		cal = fmt.Sprintf(" (and %d in the model-specific calibration run)", p.Calibration)
	}
	fmt.Fprintf(w, "Plan of %s (seed %d): %d answers expected%s.\n", p.Scenario, p.Seed, p.Answers, cal)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// With the cache read, "requests" are those sent, beside those cached.
	cached, head, none := func(ModelPlan) string { return "" }, "requests", ""
	if p.CacheDir != "" || p.StoredRun != "" {
		cached = func(m ModelPlan) string { return fmt.Sprintf("%d\t", m.CachedRequests) }
		head, none = "requests to the model\tanswered by the cache", "0\t"
	}
	if p.StoredRun != "" {
		head = "requests to the model\talready answered"
	}
	fmt.Fprintf(tw, "model\tmode\t%s\tprompt tokens\tcompletion tokens\ttime\tcost\t\n", head)
	var sent, saved int64
	for _, m := range p.Models {
		if m.Backend != string(scenarios.OpenAI) {
			fmt.Fprintf(tw, "%s\t%s\t0\t%s0\t0\t-\t-\t\n", m.Model, m.Mode, none)
			continue
		}
		sent, saved = sent+m.Requests, saved+m.CachedRequests
		cost := "-"
		if m.Cost != nil {
			cost = fmt.Sprintf("%.2f", *m.Cost)
		}
		t := fmt.Sprintf("%s at %d x %s (%s)", fmtSeconds(m.Seconds), max(m.Concurrency, 1),
			time.Duration(m.LatencySeconds*1e9).Round(time.Microsecond), m.LatencyFrom)
		switch {
		case m.Requests == 0:
			t = "-" // none goes to the model
		case m.LatencyFrom == "measured":
			t = "at least " + t // a request takes longer than a model list
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s%d\t%d\t%s\t%s\t\n", m.Model, m.Mode, m.Requests, cached(m), m.PromptTokens, m.CompletionTokens, t, cost)
	}
	tw.Flush()
	switch {
	case p.StoredRun != "":
		fmt.Fprintf(w, "Run %s is done: its answers are all stored, so its results are complete and none of a first run's %d requests goes to the model.\n",
			p.StoredRun, saved+sent)
	case p.CacheDir != "":
		fmt.Fprintf(w, "Reply cache %s: answers %d of a first run's %d requests; %d go to the model (the tokens, time and cost shown).\n",
			p.CacheDir, saved, saved+sent, sent)
	}
	for _, m := range p.Models {
		if m.Unlisted != "" {
			fmt.Fprintf(w, "Warning: model %s: its endpoint neither lists nor retrieves %q (its list: %s); the run's first request will tell.\n",
				m.Model, m.ModelID, m.Unlisted)
		}
	}
	if p.Cost != nil {
		fmt.Fprintf(w, "Cost: %.2f (at the models' price_per_mtok_in/out).\n", *p.Cost)
	}
	switch {
	case sent == 0: // nothing goes to the model: no time to tell
	case slices.ContainsFunc(p.Models, func(m ModelPlan) bool { return m.LatencyFrom == "measured" }):
		fmt.Fprintf(w, "Time: at least %s at the models' concurrency and latency, side by side: the latency measured is the\n"+
			"model list's round trip, a lower bound of a request's (give the plan --latency D for a better figure).\n", fmtSeconds(p.Seconds))
	default:
		fmt.Fprintf(w, "Time: %s at the models' concurrency and latency, side by side.\n", fmtSeconds(p.Seconds))
	}
	switch {
	case !short:
		fmt.Fprintf(w, "Tokens: %s.\n", p.Tokenizer)
		switch {
		case p.unread:
			fmt.Fprintln(w, "This run reads no reply cache: every request goes to the model.")
		case p.CacheDir == "" && p.StoredRun == "":
			fmt.Fprintln(w, "Requests of a first run (an empty reply cache): a rerun of the same scenario and seed makes none.")
		}
		fmt.Fprintln(w, severalHosts)
	case p.NATS && p.StoredRun == "":
		fmt.Fprintln(w, "(A first run's requests, counted with no cache read: over NATS the agent hosts' reply caches and the\n"+
			"cluster's shared reply bucket answer the prompts they hold, so fewer requests, or none, may go to the model.)")
	case p.unread:
		fmt.Fprintln(w, "(This run reads no reply cache: every request goes to the model.)")
	case p.CacheDir == "" && p.StoredRun == "":
		fmt.Fprintln(w, "(A first run's requests: replies in the cache are not asked again.)")
	}
}

// severalHosts says how the plan reads for a run over NATS: the requests
// are the same (each new prompt is claimed and asked by one agent host),
// while concurrency is each host's.
const severalHosts = "Over NATS the requests are the same however many agent hosts serve the run (each new prompt is asked by one host);\n" +
	"concurrency applies per host: N hosts keep up to N x concurrency requests in flight, and the time shown is one host's."

// WriteJSON writes the plan as indented JSON, one object and a newline.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// fmtSeconds rounds s seconds to the millisecond, as a time.Duration
// prints (1m2.5s).
func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// endpointProbe is what the reachability check of one endpoint found.
type endpointProbe struct {
	roundTrip   time.Duration
	modelServer bool
	unlisted    string // the model list, when it lacks the model
}

// checkEndpoints asks every OpenAI-compatible endpoint of sc for its
// model list at once: one that cannot be reached stops the plan, naming
// its URL and the cause.
func checkEndpoints(ctx context.Context, sc *scenarios.Scenario) (map[string]endpointProbe, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	out := map[string]endpointProbe{}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, m := range sc.Models {
		if m.Backend != scenarios.OpenAI {
			continue
		}
		if m.APIKeyEnv != "" {
			if _, ok := os.LookupEnv(m.APIKeyEnv); !ok {
				// As the run says it (Set.Model): bad input, with the field.
				errs = append(errs, sc.Problem(fieldOfModel(sc, m.Name, "api_key_env"), fmt.Sprintf("environment variable %s is not set", m.APIKeyEnv)))
				continue
			}
		}
		wg.Go(func() {
			c, err := llm.NewClient(llm.ClientConfig{Name: m.Name, BaseURL: m.BaseURL, Model: m.Model, APIKeyEnv: m.APIKeyEnv, Timeout: checkTimeout})
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%w: model %q: %v", sim.ErrBadInput, m.Name, err))
				mu.Unlock()
				return
			}
			defer c.Close()
			t0 := time.Now()
			served, listed, err := c.Check(ctx)
			rt := time.Since(t0)
			ms := false
			for _, id := range listed {
				ms = ms || id == llm.SyntheticName
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[m.Name] = endpointProbe{roundTrip: rt, modelServer: ms || c.Served(ctx).Synthetic}
			if !served {
				out[m.Name] = endpointProbe{roundTrip: rt, modelServer: out[m.Name].modelServer, unlisted: strings.Join(listed, ", ")}
			}
		})
	}
	wg.Wait()
	// Each error names its model and URL, whichever command checks.
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// rehearsalScenario is sc with each OpenAI-compatible model pointed at
// its own in-process model server, metered.
func rehearsalScenario(sc *scenarios.Scenario) (map[string]*PromptMeter, *scenarios.Scenario, func(), error) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		return nil, nil, nil, err
	}
	c := *sc
	c.Models = append([]scenarios.Model(nil), sc.Models...)
	meters := map[string]*PromptMeter{}
	var servers []*httptest.Server
	closeAll := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	for i, m := range c.Models {
		if m.Backend != scenarios.OpenAI {
			continue
		}
		// Seeded as 'society model-server' is by default, so that a plan
		// against it replays the same answers and game histories.
		me := NewPromptMeter(&seedUnseeded{h: modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1, Slots: max(m.Concurrency, 1)})})
		srv := httptest.NewServer(me)
		servers = append(servers, srv)
		meters[m.Name] = me
		c.Models[i].BaseURL, c.Models[i].APIKeyEnv = srv.URL+"/v1", ""
	}
	return meters, &c, closeAll, nil
}

// PromptMeter is an http.Handler that counts the completion requests
// (POST …/completions, chat or not) an endpoint receives and their
// prompts, then passes each request on, its body intact, to the endpoint.
type PromptMeter struct {
	h        http.Handler
	requests atomic.Int64
	chars    atomic.Int64
	estimate atomic.Int64
	words    atomic.Int64
}

// PromptCount is what a PromptMeter counted.
type PromptCount struct {
	Requests int64 // completion requests
	Chars    int64 // Unicode code points of their prompts
	Tokens   int64 // Σ ceil(chars/4) over the requests
	Words    int64 // whitespace-separated words, as the model server's usage counts them
}

// NewPromptMeter meters the requests h serves.
func NewPromptMeter(h http.Handler) *PromptMeter { return &PromptMeter{h: h} }

// Count is what the meter has counted so far.
func (p *PromptMeter) Count() PromptCount {
	return PromptCount{Requests: p.requests.Load(), Chars: p.chars.Load(), Tokens: p.estimate.Load(), Words: p.words.Load()}
}

func (p *PromptMeter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "completions") {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		r.Body.Close()
		if err == nil {
			text := promptText(body)
			n := int64(utf8.RuneCountInString(text))
			p.requests.Add(1)
			p.chars.Add(n)
			p.estimate.Add((n + 3) / 4)
			p.words.Add(int64(len(strings.Fields(text))))
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.h.ServeHTTP(w, r)
}

// promptText is the text of a chat request's message contents or of a
// completions request's prompt, the pieces separated by blank lines.
func promptText(body []byte) string {
	var req struct {
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		Prompt json.RawMessage `json:"prompt"`
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	parts := texts(nil, req.Prompt)
	for _, m := range req.Messages {
		parts = texts(parts, m.Content)
	}
	return strings.Join(parts, "\n\n")
}

// texts appends a string, a list of strings, or a list of content parts
// ({"type":"text","text":...}) to out.
func texts(out []string, raw json.RawMessage) []string {
	if len(raw) == 0 {
		return out
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return append(out, s)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return out
	}
	for _, e := range list {
		var part struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(e, &s) == nil {
			out = append(out, s)
		} else if json.Unmarshal(e, &part) == nil {
			out = append(out, part.Text)
		}
	}
	return out
}

// seedUnseeded is the rehearsal's endpoint in front of the model server:
// it gives a completion request that carries no seed one drawn from its
// body and the number of equal bodies received before it. The model
// server seeds an unseeded request from its arrival number, and the
// order in which concurrent requests arrive changes from one rehearsal
// to the next: the replies, and the completion tokens they count, did
// too. Equal bodies are equal requests, so whichever of them arrives
// first, the replies of the run are the same set. (With game rounds an
// agent's answer steers its later prompts, and which of equal requests
// an agent's was still depends on the order: the plan of a model without
// a seed is the same from one plan to the next only without games.)
type seedUnseeded struct {
	h    http.Handler
	mu   sync.Mutex
	seen map[[sha256.Size]byte]uint64
}

func (s *seedUnseeded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "completions") {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		r.Body.Close()
		if err == nil {
			body = s.seed(body)
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	s.h.ServeHTTP(w, r)
}

// seed returns body with a seed when it has none, else body.
func (s *seedUnseeded) seed(body []byte) []byte {
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) != nil {
		return body
	}
	if v, ok := req["seed"]; ok && string(v) != "null" {
		return body
	}
	sum := sha256.Sum256(body)
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[[sha256.Size]byte]uint64{}
	}
	k := s.seen[sum]
	s.seen[sum] = k + 1
	s.mu.Unlock()
	seed := (binary.LittleEndian.Uint64(sum[:8]) + k*0x9e3779b97f4a7c15) & math.MaxInt64
	req["seed"] = json.RawMessage(strconv.FormatUint(seed, 10))
	out, err := json.Marshal(req)
	if err != nil {
		return body
	}
	return out
}
