package backend

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/results"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// bodyLog is an http.Handler that keeps the prompt of every completion
// request it passes on: a chat request's system and user messages, or a
// completions request's prompt (as user, system empty).
type bodyLog struct {
	h    http.Handler
	mu   sync.Mutex
	seen map[[2]string]int
}

func (b *bodyLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, err := readAll(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req struct {
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
			Prompt string `json:"prompt"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var k [2]string
		for _, m := range req.Messages {
			switch m.Role {
			case "system":
				k[0] = m.Content
			case "user":
				k[1] = m.Content
			}
		}
		if req.Prompt != "" {
			k[1] = req.Prompt
		}
		b.mu.Lock()
		b.seen[k]++
		b.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	b.h.ServeHTTP(w, r)
}

// TestPromptsTable: a run's prompts.csv lists each distinct prompt its
// agents asked once per model, persona, instrument and item, and its
// texts are exactly those the endpoints received: chat messages in
// distribution mode, the completions prompt in sample mode. The
// synthetic model, which reads no prompt, lists what a chat endpoint
// would have been sent. Agents add up to the answers.
func TestPromptsTable(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	chat := &bodyLog{h: modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}), seen: map[[2]string]int{}}
	comp := &bodyLog{h: modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}), seen: map[[2]string]int{}}
	hs1, hs2 := httptest.NewServer(chat), httptest.NewServer(comp)
	t.Cleanup(hs1.Close)
	t.Cleanup(hs2.Close)
	src := fmt.Sprintf(`name = "prompts"
seed = 3

[population]
size = 30
strategies = ["h-np"]

[[models]]
name = "chat"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = "distribution"
concurrency = 4
timeout = "10s"

[[models]]
name = "completions"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
endpoint = "completions"
mode = "sample"
samples = 4
concurrency = 4
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
`, hs1.URL+"/v1", hs2.URL+"/v1")
	sc, err := scenarios.Parse([]byte(src), "prompts.toml")
	if err != nil {
		t.Fatal(err)
	}
	sets := New(t.TempDir(), nil, nil)
	defer sets.Close()
	dir := filepath.Join(t.TempDir(), "out")
	res, err := (&sim.Engine{Backends: sets.Backends, Open: sim.OpenLocal}).Run(t.Context(), sc, dir)
	if err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(filepath.Join(dir, "prompts.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rows[0]), 13; got != want {
		t.Fatalf("header %v: got %d columns, want %d", rows[0], got, want)
	}
	pool := res.Study.Pool
	personas := map[string]int{} // agents per dominant value code
	for a := range pool.Size() {
		personas[pool.Persona[a].Code()]++
	}
	const items = 40
	type key struct{ model, persona, instrument, item string }
	seen := map[key]bool{}
	texts := map[string]map[[2]string]bool{}
	agents := map[string]int{}
	chatText := map[[3]string][2]string{}
	for _, r := range rows[1:] {
		model, endpoint, persona, instrument, item, system, user := r[0], r[3], r[4], r[6], r[7], r[9], r[10]
		k := key{model, persona, instrument, item}
		if seen[k] {
			t.Errorf("%v: listed twice", k)
		}
		seen[k] = true
		if texts[model] == nil {
			texts[model] = map[[2]string]bool{}
		}
		texts[model][[2]string{system, user}] = true
		n, err := strconv.Atoi(r[11])
		if err != nil {
			t.Fatal(err)
		}
		agents[model] += n
		if n != personas[persona] {
			t.Errorf("%v: served %d agents, want the %d of persona %s", k, n, personas[persona], persona)
		}
		wantEndpoint, wantSamples := "chat", ""
		if model == "completions" {
			wantEndpoint, wantSamples = "completions", strconv.Itoa(personas[persona]) // one completion per rank
		}
		if endpoint != wantEndpoint || r[12] != wantSamples {
			t.Errorf("%v: got endpoint %q, samples %q; want %q, %q", k, endpoint, r[12], wantEndpoint, wantSamples)
		}
		switch model {
		case "chat":
			chatText[[3]string{persona, instrument, item}] = [2]string{system, user}
		case "in-process":
			defer func() {
				if got, want := [2]string{system, user}, chatText[[3]string{persona, instrument, item}]; got != want {
					t.Errorf("%v: synthetic model's texts %q, want the chat model's %q", k, got, want)
				}
			}()
		}
	}
	for _, m := range []string{"chat", "completions", "in-process"} {
		if got, want := len(texts[m]), len(personas)*items; got != want {
			t.Errorf("model %s: %d distinct prompts, want %d (personas × items)", m, got, want)
		}
		if got, want := agents[m], pool.Size()*items; got != want {
			t.Errorf("model %s: prompts served %d answers, want %d", m, got, want)
		}
	}
	for m, log := range map[string]*bodyLog{"chat": chat, "completions": comp} {
		if len(log.seen) == 0 {
			t.Fatalf("model %s: its endpoint received no prompt", m)
		}
		for k := range log.seen {
			if !texts[m][k] {
				t.Errorf("model %s: the endpoint received %q, which prompts.csv does not list", m, k)
			}
		}
		for k := range texts[m] {
			if log.seen[k] == 0 {
				t.Errorf("model %s: prompts.csv lists %q, which the endpoint never received", m, k)
			}
		}
	}

	// A rebuild ('society report') keeps the table as the run wrote it.
	o, err := sim.Rebuild(t.Context(), dir, sets.Backends())
	if err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(t.TempDir(), "again")
	if err := results.Write(t.Context(), again, o); err != nil {
		t.Fatal(err)
	}
	a, errA := os.ReadFile(filepath.Join(dir, "prompts.csv"))
	b, errB := os.ReadFile(filepath.Join(again, "prompts.csv"))
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Errorf("rebuilt prompts.csv differs from the run's (%v, %v)", errA, errB)
	}
}

// prefetchEvents keeps what a run tells its observers about the fetch
// ahead (one call at a time).
type prefetchEvents struct {
	sim.NoObserver
	got []sim.Prefetching
}

func (e *prefetchEvents) Prefetch(p sim.Prefetching) { e.got = append(e.got, p) }

// TestPrefetchProgress: in distribution mode a run's observers are told
// how the fetch ahead of the answers goes, from 0 done to its end, in
// requests: one per distinct prompt, as many as the endpoint receives.
func TestPrefetchProgress(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	meter := NewPromptMeter(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}))
	hs := httptest.NewServer(meter)
	t.Cleanup(hs.Close)
	src := fmt.Sprintf(`name = "prefetch"
seed = 3

[population]
size = 40
strategies = ["h-np"]

[[models]]
name = "chat"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = "distribution"
concurrency = 4
timeout = "10s"

[[questionnaires]]
name = "pvq40"

[analysis]
bootstrap_iterations = 5
null_iterations = 19
`, hs.URL+"/v1")
	sc, err := scenarios.Parse([]byte(src), "prefetch.toml")
	if err != nil {
		t.Fatal(err)
	}
	sets := New(t.TempDir(), nil, nil)
	defer sets.Close()
	ev := &prefetchEvents{}
	res, err := (&sim.Engine{Backends: sets.Backends, Open: sim.OpenLocal, Observer: ev}).Run(t.Context(), sc, "")
	if err != nil {
		t.Fatal(err)
	}
	personas := map[string]bool{}
	for a := range res.Study.Pool.Size() {
		personas[res.Study.Pool.Persona[a].Code()] = true
	}
	want := int64(len(personas) * 40)
	if len(ev.got) < 3 {
		t.Fatalf("got %d prefetch events, want the start, progress and the end: %+v", len(ev.got), ev.got)
	}
	// The fetch plans its requests as the agents start asking, so an
	// agent may have fetched a distribution first: at most one request
	// per distinct prompt is planned, and the endpoint receives one each.
	first := ev.got[0]
	if first.Done != 0 || first.Expected <= 0 || first.Expected > want || first.Ended {
		t.Errorf("first event: got %+v, want 0 done of up to %d requests (personas × items)", first, want)
	}
	for i := 1; i < len(ev.got); i++ {
		if a, b := ev.got[i-1], ev.got[i]; b.Done < a.Done || b.Expected != first.Expected || a.Ended {
			t.Errorf("event %d: got %+v after %+v, want the requests done never to go back, of %d, and nothing after the end", i, b, a, first.Expected)
		}
	}
	if last := ev.got[len(ev.got)-1]; !last.Ended || last.Done != first.Expected {
		t.Errorf("last event: got %+v, want the end with all %d requests done", last, first.Expected)
	}
	if n := meter.Count().Requests; n != want {
		t.Errorf("the endpoint received %d requests, want the %d fetched ahead", n, want)
	}
}

// startIDs keeps the run ids its observer is started with.
type startIDs struct {
	sim.NoObserver
	ids []string
}

func (s *startIDs) Start(l sim.Layout) { s.ids = append(s.ids, l.ID) }

// TestEngineRunIDs: two runs of the same scenario and seed are told apart
// by their run ids, which their observers (the metrics' run label) and
// results.json's run block carry; an engine given an id runs under it.
func TestEngineRunIDs(t *testing.T) {
	sc, err := scenarios.Parse([]byte(`name = "ids"
seed = 1
[population]
size = 20
[[questionnaires]]
name = "pvq40"
items = 12
[analysis]
bootstrap_iterations = 5
null_iterations = 19
`), "ids.toml")
	if err != nil {
		t.Fatal(err)
	}
	sets := New(t.TempDir(), nil, nil)
	defer sets.Close()
	seen := &startIDs{}
	var blocks []string
	for _, id := range []string{"", "", "given-id"} {
		e := &sim.Engine{Backends: sets.Backends, Open: sim.OpenLocal, Observer: seen, ID: id,
			Provenance: func(id string, start time.Time) *analysis.Run { return &analysis.Run{ID: id} }}
		res, err := e.Run(t.Context(), sc, "")
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, res.Outcome.Results.Run.ID)
	}
	if len(seen.ids) != 3 || seen.ids[0] == seen.ids[1] || !strings.HasPrefix(seen.ids[0], "ids-1-") || seen.ids[2] != "given-id" {
		t.Errorf("got run ids %q, want two new ids-1-… ids and then given-id", seen.ids)
	}
	if !slices.Equal(blocks, seen.ids) {
		t.Errorf("results' run blocks have ids %q, want the runs' %q", blocks, seen.ids)
	}
}
