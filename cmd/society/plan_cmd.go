package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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

const planSynopsis = `plan SCENARIO [--latency D] [--json]

SCENARIO is a TOML file or a built-in name. Prints, per model and query
mode, the requests the run will make, their prompt and completion tokens,
the answers expected, the time at the model's concurrency and latency, and
the cost when the model gives price_per_mtok_in and price_per_mtok_out.

Each endpoint is first asked for its model list (no tokens); one that
cannot be reached stops the plan within seconds with its URL and the cause.
The requests are counted by rehearsing the run against the synthetic
respondents in this process, without the cache: the same prompts, the same
batching, the same calibration and game rounds. Prompt tokens are
estimated as characters/4 (no tokenizer is bundled); for an endpoint that
is 'society model-server' they are words, as that server counts them.`

// planCheckTimeout bounds the reachability check of the endpoints.
const planCheckTimeout = 10 * time.Second

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plan", planSynopsis, stderr)
	latency := fs.Duration("latency", 0, "time one request takes at the endpoint (default: the measured model-list round trip, a lower bound)")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: plan takes one scenario, got %d", errUsage, len(pos))
	}
	if *latency < 0 {
		return fmt.Errorf("%w: --latency: must not be negative, got %v", errUsage, *latency)
	}
	sc, err := scenarios.Open(pos[0])
	if err != nil {
		return err
	}
	if err := scenarios.Unrelated(sc); err != nil {
		return err
	}
	p, err := planRun(ctx, sc, *latency)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	}
	p.print(stdout, false)
	return nil
}

// runPlan is what a scenario's run will cost.
type runPlan struct {
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	// Answers are the answers the main run expects, Calibration those of
	// its model-specific calibration run.
	Answers     int64       `json:"answers"`
	Calibration int64       `json:"calibration_answers,omitempty"`
	Models      []modelPlan `json:"models"`
	Seconds     float64     `json:"seconds"`
	Cost        *float64    `json:"cost,omitempty"`
	Tokenizer   string      `json:"tokenizer"`
}

// modelPlan is one model's share of a run.
type modelPlan struct {
	Model   string `json:"model"`
	Backend string `json:"backend"`
	Mode    string `json:"mode"`
	URL     string `json:"url,omitempty"`
	// ModelServer: the endpoint is 'society model-server' (its model list
	// says so), whose usage counts words.
	ModelServer      bool     `json:"model_server,omitempty"`
	Requests         int64    `json:"requests"`
	PromptTokens     int64    `json:"prompt_tokens"`
	CompletionTokens int64    `json:"completion_tokens"`
	PromptChars      int64    `json:"prompt_chars"`
	Concurrency      int      `json:"concurrency,omitempty"`
	LatencySeconds   float64  `json:"latency_seconds,omitempty"`
	LatencyFrom      string   `json:"latency_from,omitempty"` // "measured" or "flag"
	Seconds          float64  `json:"seconds"`
	Cost             *float64 `json:"cost,omitempty"`
}

// planRun checks every endpoint of sc, then rehearses the run to count
// its requests and tokens. latency, when positive, replaces the measured
// one.
func planRun(ctx context.Context, sc *scenarios.Scenario, latency time.Duration) (*runPlan, error) {
	out := &runPlan{Scenario: sc.Name, Seed: sc.Seed,
		Tokenizer: "prompt tokens = characters/4 per request (no tokenizer is bundled); words for society model-server, as it counts; completion tokens as the synthetic respondents' replies"}
	probes, err := checkEndpoints(ctx, sc)
	if err != nil {
		return nil, err
	}
	meters, rehearsal, closeAll, err := rehearsalScenario(sc)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	cacheDir, err := os.MkdirTemp("", "society-plan-")
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	defer os.RemoveAll(cacheDir)
	sets := newModelSets(cacheDir, nil, nil)
	defer sets.Close()
	e := &sim.Engine{
		// A fresh reply cache, as a first run has: the calibration's
		// replies serve the main run's equal prompts, as they will.
		Backends: sets.Backends,
		Open:     sim.OpenLocal,
	}
	r, err := e.Rehearse(ctx, rehearsal)
	if err != nil {
		return nil, fmt.Errorf("plan %s: rehearse: %w", sc.Name, err)
	}
	out.Answers, out.Calibration = r.Answers.Expected, r.Calibration.Expected
	// The clients' usage (words, as the synthetic respondents count them).
	usage := map[string]llm.ClientStats{}
	for _, b := range sets.All() {
		for name, c := range b.Clients() {
			s, u := c.Stats(), usage[name]
			u.PromptTokens += s.PromptTokens
			u.CompletionTokens += s.CompletionTokens
			usage[name] = u
		}
	}
	var total float64
	priced := false
	for _, m := range sc.Models {
		mp := modelPlan{Model: m.Name, Backend: string(m.Backend), Mode: string(m.Mode)}
		if m.Backend != scenarios.OpenAI {
			mp.Mode = "in process, no requests"
			out.Models = append(out.Models, mp)
			continue
		}
		pr, me, u := probes[m.Name], meters[m.Name], usage[m.Name]
		mp.URL, mp.ModelServer, mp.Concurrency = m.BaseURL, pr.modelServer, m.Concurrency
		mp.Requests, mp.PromptChars = me.requests.Load(), me.chars.Load()
		mp.PromptTokens, mp.CompletionTokens = me.estimate.Load(), u.CompletionTokens
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

// print writes the plan as a table; short is the block at the top of a
// run.
func (p *runPlan) print(w io.Writer, short bool) {
	cal := ""
	if p.Calibration > 0 {
		cal = fmt.Sprintf(" (and %d in the model-specific calibration run)", p.Calibration)
	}
	fmt.Fprintf(w, "Plan of %s (seed %d): %d answers expected%s.\n", p.Scenario, p.Seed, p.Answers, cal)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tmode\trequests\tprompt tokens\tcompletion tokens\ttime\tcost\t")
	for _, m := range p.Models {
		if m.Backend != string(scenarios.OpenAI) {
			fmt.Fprintf(tw, "%s\t%s\t0\t0\t0\t-\t-\t\n", m.Model, m.Mode)
			continue
		}
		cost := "-"
		if m.Cost != nil {
			cost = fmt.Sprintf("%.2f", *m.Cost)
		}
		t := fmt.Sprintf("%s at %d x %s (%s)", fmtSeconds(m.Seconds), max(m.Concurrency, 1),
			time.Duration(m.LatencySeconds*1e9).Round(time.Microsecond), m.LatencyFrom)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t\n", m.Model, m.Mode, m.Requests, m.PromptTokens, m.CompletionTokens, t, cost)
	}
	tw.Flush()
	if p.Cost != nil {
		fmt.Fprintf(w, "Cost: %.2f (at the models' price_per_mtok_in/out).\n", *p.Cost)
	}
	fmt.Fprintf(w, "Time: %s at the models' concurrency and latency, side by side.\n", fmtSeconds(p.Seconds))
	if !short {
		fmt.Fprintf(w, "Tokens: %s.\n", p.Tokenizer)
		fmt.Fprintln(w, "Requests of a first run (an empty reply cache): a rerun of the same scenario and seed makes none.")
	}
}

func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// endpointProbe is what the reachability check of one endpoint found.
type endpointProbe struct {
	roundTrip   time.Duration
	modelServer bool
}

// checkEndpoints asks every OpenAI-compatible endpoint of sc for its
// model list at once: one that cannot be reached stops the plan, naming
// its URL and the cause.
func checkEndpoints(ctx context.Context, sc *scenarios.Scenario) (map[string]endpointProbe, error) {
	ctx, cancel := context.WithTimeout(ctx, planCheckTimeout)
	defer cancel()
	out := map[string]endpointProbe{}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, m := range sc.Models {
		if m.Backend != scenarios.OpenAI {
			continue
		}
		wg.Go(func() {
			c, err := llm.NewClient(llm.ClientConfig{Name: m.Name, BaseURL: m.BaseURL, Model: m.Model, APIKeyEnv: m.APIKeyEnv, Timeout: planCheckTimeout})
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%w: model %q: %v", errBadInput, m.Name, err))
				mu.Unlock()
				return
			}
			defer c.Close()
			t0 := time.Now()
			_, listed, err := c.Check(ctx)
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
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("plan %s: %w", sc.Name, err)
	}
	return out, nil
}

// rehearsalScenario is sc with each OpenAI-compatible model pointed at
// its own in-process model server, metered.
func rehearsalScenario(sc *scenarios.Scenario) (map[string]*promptMeter, *scenarios.Scenario, func(), error) {
	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		return nil, nil, nil, err
	}
	c := *sc
	c.Models = append([]scenarios.Model(nil), sc.Models...)
	meters := map[string]*promptMeter{}
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
		me := &promptMeter{h: modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1, Slots: max(m.Concurrency, 1)})}
		srv := httptest.NewServer(me)
		servers = append(servers, srv)
		meters[m.Name] = me
		c.Models[i].BaseURL, c.Models[i].APIKeyEnv = srv.URL+"/v1", ""
	}
	return meters, &c, closeAll, nil
}

// promptMeter counts the completion requests an endpoint receives and
// the characters of their prompts.
type promptMeter struct {
	h        http.Handler
	requests atomic.Int64
	chars    atomic.Int64
	estimate atomic.Int64 // Σ ceil(chars/4) over the requests
	words    atomic.Int64 // as the model server's usage counts them
}

func (p *promptMeter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
