package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

func TestPromptText(t *testing.T) {
	for _, c := range []struct {
		name, body, want string
	}{
		{"chat strings", `{"messages":[{"role":"system","content":"be Ann"},{"role":"user","content":"How much?"}]}`, "be Ann\n\nHow much?"},
		{"chat parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b c"}]}]}`, "a\n\nb c"},
		{"completions prompt", `{"prompt":"Q: 1?\nA:"}`, "Q: 1?\nA:"},
		{"completions prompt list", `{"prompt":["one","two"]}`, "one\n\ntwo"},
		{"prompt before messages", `{"prompt":"p","messages":[{"content":"m"}]}`, "p\n\nm"},
		{"no text", `{"model":"x"}`, ""},
		{"content of another shape", `{"messages":[{"content":42}]}`, ""},
		{"not JSON", `{"messages":`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := promptText([]byte(c.body)); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestPromptMeter: only completion requests are counted, in code points,
// ceil(chars/4) tokens per request and words, and the endpoint behind the
// meter reads each body whole.
func TestPromptMeter(t *testing.T) {
	var bodies []string
	m := NewPromptMeter(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := readAll(r)
		if err != nil {
			t.Error(err)
		}
		bodies = append(bodies, string(b))
	}))
	reqs := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/chat/completions", `{"messages":[{"content":"héllo wörld"}]}`}, // 11 code points, 3 tokens, 2 words
		{http.MethodPost, "/v1/completions/", `{"prompt":"abcd efgh i"}`},                     // 11, 3, 3
		{http.MethodGet, "/v1/models", ``},
		{http.MethodPost, "/v1/embeddings", `{"input":"not a prompt"}`},
	}
	for _, q := range reqs {
		m.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(q.method, q.path, strings.NewReader(q.body)))
	}
	if got, want := m.Count(), (PromptCount{Requests: 2, Chars: 22, Tokens: 6, Words: 5}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for i, q := range reqs {
		if bodies[i] != q.body {
			t.Errorf("request %d: the endpoint read %q, want %q", i, bodies[i], q.body)
		}
	}
}

func readAll(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}

// hideServer makes the model server look like any OpenAI-compatible
// server: no backend header (its model list already names the model
// only), so a plan estimates its tokens instead of reading its word count.
type hideServer struct{ h http.Handler }

func (s hideServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.h.ServeHTTP(hiddenWriter{w}, r)
}

type hiddenWriter struct{ http.ResponseWriter }

func (w hiddenWriter) WriteHeader(code int) {
	w.Header().Del(llm.BackendHeader)
	w.ResponseWriter.WriteHeader(code)
}

func (w hiddenWriter) Write(b []byte) (int, error) {
	w.Header().Del(llm.BackendHeader)
	return w.ResponseWriter.Write(b)
}

// estimateScenario has a model on the model server (priced), one on an
// endpoint that does not say what it is, and one in process. Without game
// rounds its prompts do not depend on the answers, and with a request
// seed the server's replies are a function of the prompt, so its traffic
// is the same whatever order the requests are served in.
func estimateScenario(t *testing.T, serverURL, otherURL string) *scenarios.Scenario {
	t.Helper()
	src := fmt.Sprintf(`name = "estimate"
seed = 5

[population]
size = 12
strategies = ["h-np"]

[[models]]
name = "on-server"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = "distribution"
concurrency = 4
timeout = "10s"
seed = 7
price_per_mtok_in = 0.5
price_per_mtok_out = 2

[[models]]
name = "elsewhere"
backend = "openai"
base_url = %q
model = "llama"
mode = "sample"
samples = 3
concurrency = 3
timeout = "10s"
seed = 7

[[models]]
name = "in-process"
backend = "synthetic"

[[questionnaires]]
name = "pvq40"

[analysis]
bootstrap_iterations = 5
null_iterations = 19
`, serverURL+"/v1", otherURL+"/v1")
	sc, err := scenarios.Parse([]byte(src), "estimate.toml")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestEstimate: the plan's requests, characters and tokens per model are
// those a run of the scenario then sends its endpoints, counted there;
// time and cost follow from them, the concurrency, the latency and the
// prices.
func TestEstimate(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	onServer := NewPromptMeter(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}))
	elsewhere := NewPromptMeter(hideServer{modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1, Models: []string{"llama"}})})
	hs1, hs2 := httptest.NewServer(onServer), httptest.NewServer(elsewhere)
	t.Cleanup(hs1.Close)
	t.Cleanup(hs2.Close)
	sc := estimateScenario(t, hs1.URL, hs2.URL)
	ctx := t.Context()

	const latency = 250 * time.Millisecond
	p, err := Estimate(ctx, sc, latency)
	if err != nil {
		t.Fatal(err)
	}
	if n := onServer.Count().Requests + elsewhere.Count().Requests; n != 0 {
		t.Fatalf("the estimate sent %d completion requests to the endpoints, want 0 (only their model lists)", n)
	}

	// The run: rehearsed against the endpoints themselves (sim says a
	// rehearsal makes the run's requests), counted at each.
	sets := New(t.TempDir(), nil, nil)
	defer sets.Close()
	r, err := (&sim.Engine{Backends: sets.Backends, Open: sim.OpenLocal}).Rehearse(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	usage := map[string]llm.ClientStats{}
	for _, b := range sets.All() {
		for name, c := range b.Clients() {
			s, u := c.Stats(), usage[name]
			u.PromptTokens += s.PromptTokens
			u.CompletionTokens += s.CompletionTokens
			usage[name] = u
		}
	}

	if p.Scenario != "estimate" || p.Seed != 5 || p.Answers != r.Answers.Expected || p.Answers == 0 || p.Calibration != 0 {
		t.Errorf("got scenario %q seed %d, %d answers (%d calibration); want estimate, 5, %d (0)", p.Scenario, p.Seed, p.Answers, p.Calibration, r.Answers.Expected)
	}
	if len(p.Models) != 3 {
		t.Fatalf("got %d models, want 3", len(p.Models))
	}
	srv, other, local := p.Models[0], p.Models[1], p.Models[2]
	want := onServer.Count()
	if !srv.ModelServer || srv.Requests != want.Requests || srv.PromptChars != want.Chars ||
		srv.PromptTokens != usage["on-server"].PromptTokens || srv.CompletionTokens != usage["on-server"].CompletionTokens {
		t.Errorf("on the model server: got %+v; want model_server, %d requests, %d chars, %d prompt and %d completion tokens (the server's usage)",
			srv, want.Requests, want.Chars, usage["on-server"].PromptTokens, usage["on-server"].CompletionTokens)
	}
	want = elsewhere.Count()
	if other.ModelServer || other.Requests != want.Requests || other.PromptChars != want.Chars ||
		other.PromptTokens != want.Tokens || other.CompletionTokens != usage["elsewhere"].CompletionTokens {
		t.Errorf("elsewhere: got %+v; want not model_server, %d requests, %d chars, %d prompt tokens (chars/4), %d completion tokens",
			other, want.Requests, want.Chars, want.Tokens, usage["elsewhere"].CompletionTokens)
	}
	if srv.Requests == 0 || other.Requests == 0 {
		t.Errorf("got %d and %d requests, want some for each endpoint", srv.Requests, other.Requests)
	}
	if local != (ModelPlan{Model: "in-process", Backend: "synthetic", Mode: "in process, no requests"}) {
		t.Errorf("in process: got %+v, want no requests", local)
	}

	for _, m := range []ModelPlan{srv, other} {
		conc := int64(m.Concurrency)
		if wantS := float64((m.Requests+conc-1)/conc) * latency.Seconds(); m.LatencyFrom != "flag" || m.LatencySeconds != latency.Seconds() || math.Abs(m.Seconds-wantS) > 1e-9 {
			t.Errorf("%s: got %v s at %v s (%s), want %v s at %v s (flag)", m.Model, m.Seconds, m.LatencySeconds, m.LatencyFrom, wantS, latency.Seconds())
		}
	}
	if p.Seconds != max(srv.Seconds, other.Seconds) {
		t.Errorf("got %v s in all, want %v (the slower model's)", p.Seconds, max(srv.Seconds, other.Seconds))
	}
	wantCost := float64(srv.PromptTokens)*0.5/1e6 + float64(srv.CompletionTokens)*2/1e6
	if srv.Cost == nil || math.Abs(*srv.Cost-wantCost) > 1e-12 || other.Cost != nil || p.Cost == nil || *p.Cost != *srv.Cost {
		t.Errorf("got costs %v, %v, total %v; want %v, none, total %v", srv.Cost, other.Cost, p.Cost, wantCost, wantCost)
	}
}

// TestEstimateMeasuresLatency: without a latency given, a request's time
// is the model list's measured round trip.
func TestEstimateMeasuresLatency(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}))
	t.Cleanup(hs.Close)
	sc := estimateScenario(t, hs.URL, hs.URL)
	sc.Models = sc.Models[:1]
	p, err := Estimate(t.Context(), sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Models[0]; m.LatencyFrom != "measured" || m.LatencySeconds <= 0 {
		t.Errorf("got latency %v s (%s), want a positive one, measured", m.LatencySeconds, m.LatencyFrom)
	}
}

// TestEstimateUnreachable: an endpoint where nothing listens fails the
// estimate at once, naming the scenario, its URL and the cause; it is no
// input error (exit 1, not 2).
func TestEstimateUnreachable(t *testing.T) {
	hs := httptest.NewServer(nil)
	url := hs.URL
	hs.Close()
	sc := estimateScenario(t, url, url)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := Estimate(ctx, sc, 0)
	if err == nil {
		t.Fatal("got no error, want the refused connection")
	}
	msg := err.Error()
	if !strings.Contains(msg, url+"/v1/models") || !strings.Contains(msg, "connection refused") || errors.Is(err, sim.ErrBadInput) {
		t.Errorf("got %q; want an error naming %s/v1/models and the refused connection, not an input error", msg, url)
	}
}

func TestPlanWriteText(t *testing.T) {
	cost, total := 0.357451, 0.357451
	p := &Plan{Scenario: "s", Seed: 3, Answers: 100, Calibration: 20, Seconds: 61.25, Cost: &total, Tokenizer: "t",
		Models: []ModelPlan{
			{Model: "a", Backend: "openai", Mode: "distribution", Requests: 969, PromptTokens: 711026, CompletionTokens: 969,
				Concurrency: 8, LatencySeconds: 0.0123456, LatencyFrom: "measured", Seconds: 61.25, Cost: &cost},
			{Model: "bb", Backend: "openai", Mode: "sample", Requests: 7, PromptTokens: 70, CompletionTokens: 21,
				LatencySeconds: 2, LatencyFrom: "flag", Seconds: 14},
			{Model: "c", Backend: "synthetic", Mode: "in process, no requests"},
		}}
	table := `Plan of s (seed 3): 100 answers expected (and 20 in the model-specific calibration run).
  model                     mode  requests  prompt tokens  completion tokens                                         time  cost
      a             distribution       969         711026                969  at least 1m1.25s at 8 x 12.346ms (measured)  0.36
     bb                   sample         7             70                 21                         14s at 1 x 2s (flag)     -
      c  in process, no requests         0              0                  0                                            -     -
Cost: 0.36 (at the models' price_per_mtok_in/out).
Time: at least 1m1.25s at the models' concurrency and latency, side by side: the latency measured is the
model list's round trip, a lower bound of a request's (give the plan --latency D for a better figure).
`
	notes := `Tokens: t.
Requests of a first run (an empty reply cache): a rerun of the same scenario and seed makes none.
` + severalHosts + `
`
	for _, short := range []bool{false, true} {
		var b strings.Builder
		p.WriteText(&b, short)
		want := table
		if !short {
			want += notes
		} else {
			want += "(A first run's requests: replies in the cache are not asked again.)\n"
		}
		if b.String() != want {
			t.Errorf("short %v: got\n%s\nwant\n%s", short, b.String(), want)
		}
	}
}

// TestPlanOverNATS: the block at the top of a run over NATS says that its
// requests are a first run's, which the agent hosts' caches and the
// cluster's reply bucket may answer (it reads neither); for a run done
// already, whose answers are all stored, it says none goes to the model
// and shows no time, in its table or below it.
func TestPlanOverNATS(t *testing.T) {
	plan := func() *Plan {
		return &Plan{Scenario: "s", Seed: 3, Answers: 100, Seconds: 2, Tokenizer: "t",
			Models: []ModelPlan{{Model: "a", Backend: "openai", Mode: "sample", Requests: 12, PromptTokens: 700, CompletionTokens: 40,
				Concurrency: 4, LatencySeconds: 0.5, LatencyFrom: "measured", Seconds: 2}}}
	}
	first := plan()
	first.OverNATS("")
	var b strings.Builder
	first.WriteText(&b, true)
	want := `Plan of s (seed 3): 100 answers expected.
  model    mode  requests  prompt tokens  completion tokens                                 time  cost
      a  sample        12            700                 40  at least 2s at 4 x 500ms (measured)     -
Time: at least 2s at the models' concurrency and latency, side by side: the latency measured is the
model list's round trip, a lower bound of a request's (give the plan --latency D for a better figure).
(A first run's requests, counted with no cache read: over NATS the agent hosts' reply caches and the
cluster's shared reply bucket answer the prompts they hold, so fewer requests, or none, may go to the model.)
`
	if b.String() != want {
		t.Errorf("first run over NATS: got\n%s\nwant\n%s", b.String(), want)
	}
	done := plan()
	done.OverNATS("s-3")
	b.Reset()
	done.WriteText(&b, true)
	want = `Plan of s (seed 3): 100 answers expected.
  model    mode  requests to the model  already answered  prompt tokens  completion tokens  time  cost
      a  sample                      0                12              0                  0     -     -
Run s-3 is done: its answers are all stored, so its results are complete and none of a first run's 12 requests goes to the model.
`
	if b.String() != want {
		t.Errorf("run done: got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestPlanJSON: the JSON form reads back as the plan, and leaves out what
// a plan without calibration, prices or an endpoint does not have.
func TestPlanJSON(t *testing.T) {
	p := &Plan{Scenario: "s", Seed: 1, Answers: 4, Tokenizer: "t",
		Models: []ModelPlan{{Model: "c", Backend: "synthetic", Mode: "in process, no requests"}}}
	var b bytes.Buffer
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	want := `{
  "scenario": "s",
  "seed": 1,
  "answers": 4,
  "models": [
    {
      "model": "c",
      "backend": "synthetic",
      "mode": "in process, no requests",
      "requests": 0,
      "prompt_tokens": 0,
      "completion_tokens": 0,
      "prompt_chars": 0,
      "seconds": 0
    }
  ],
  "seconds": 0,
  "tokenizer": "t"
}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	var back Plan
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Answers != 4 || len(back.Models) != 1 || back.Models[0] != p.Models[0] {
		t.Errorf("read back %+v (%v), want %+v", back, err, *p)
	}
}
