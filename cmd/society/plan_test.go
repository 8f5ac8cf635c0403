package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
)

// planScenario has every kind of request of the paper scenario, small: a
// model-specific calibration run, test priming, both query modes, the two
// prompt styles and game rounds.
func planScenario(url string) string {
	return fmt.Sprintf(`name = "plan-kinds"
seed = 3

[population]
size = 20
strategies = ["h-np", "model-specific"]
calibration = 10

[[models]]
name = "dist-test"
backend = "openai"
base_url = %[1]q
model = "synthetic-respondents"
mode = "distribution"
priming = "test"
concurrency = 8
timeout = "10s"
seed = 7
price_per_mtok_in = 0.5
price_per_mtok_out = 2

[[models]]
name = "sample-name"
backend = "openai"
base_url = %[1]q
model = "synthetic-respondents"
mode = "sample"
samples = 5
priming = "priming+test"
style = "name"
concurrency = 8
timeout = "10s"
seed = 7

[[questionnaires]]
name = "pvq40"

[games.paired_charity]
rounds = 2

[analysis]
bootstrap_iterations = 5
null_iterations = 19
references = ["pvq40_smacof_mrat"]
`, url+"/v1")
}

// TestPlanMatchesModelServer: the requests `society plan` predicts are
// those the model server then counts during the run, exactly, and the
// prompt tokens (words, as the server counts them) are within 10%.
func TestPlanMatchesModelServer(t *testing.T) {
	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	srv := modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1})
	meter := backend.NewPromptMeter(srv)
	hs := httptest.NewServer(meter)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	file := writeScenario(t, dir, "plan", planScenario(hs.URL))

	stdout, stderr, code := runCLI(t, "plan", file, "--json")
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}
	var p backend.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, stdout)
	}
	if got := srv.Stats().Requests; got != 0 {
		t.Fatalf("plan sent %d completion requests to the endpoint, want 0 (only its model list)", got)
	}
	var requests, tokens int64
	for _, m := range p.Models {
		if !m.ModelServer {
			t.Errorf("model %s: got model_server false, want true (its model list says so)", m.Model)
		}
		requests += m.Requests
		tokens += m.PromptTokens
	}
	if p.Cost == nil || p.Models[0].Cost == nil || p.Models[1].Cost != nil {
		t.Errorf("got costs %v, %v, %v; want a cost for the priced model and the total only", p.Cost, p.Models[0].Cost, p.Models[1].Cost)
	}

	// The run shows the same plan at its top (not quiet: the block goes
	// with the progress display).
	_, runErr, code := runCLI(t, "run", file, "--out", filepath.Join(dir, "out"), "--cache", filepath.Join(dir, "cache"), "--progress-every", "1h")
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, runErr)
	}
	block, _, _ := strings.Cut(runErr, "(A first run's requests")
	if !strings.HasPrefix(block, fmt.Sprintf("Plan of %s (seed %d): %d answers expected", p.Scenario, p.Seed, p.Answers)) {
		t.Errorf("run's stderr does not start with the plan:\n%s", runErr)
	}
	for _, m := range p.Models {
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(m.Model) + `\s+\S+\s+` + strconv.FormatInt(m.Requests, 10) + `\s`).MatchString(block) {
			t.Errorf("run's plan block lacks model %s with %d requests:\n%s", m.Model, m.Requests, block)
		}
	}
	res := readResults(t, filepath.Join(dir, "out"))
	if p.Answers != res.Answers.Expected {
		t.Errorf("got %d answers planned, want %d (the run's)", p.Answers, res.Answers.Expected)
	}
	served := srv.Stats().Requests
	counted := meter.Count()
	t.Logf("plan: %d requests, %d prompt tokens; server: %d requests, %d prompt words", requests, tokens, served, counted.Words)
	// The results count every request the run made, its calibration's
	// too.
	if res.LLM.Calls != served {
		t.Errorf("results.json: got %d calls, want %d (the server's count, calibration included)", res.LLM.Calls, served)
	}
	if requests != served || served != counted.Requests {
		t.Errorf("got %d requests planned, want %d (the server's count)", requests, served)
	}
	if w := counted.Words; math.Abs(float64(tokens-w)) > 0.1*float64(w) {
		t.Errorf("got %d prompt tokens planned, want within 10%% of the %d the server counted", tokens, w)
	}

	// A rerun from the same cache: its block says the cache answers every
	// request and none goes to the model, and none does.
	_, rerunErr, code := runCLI(t, "run", file, "--out", filepath.Join(dir, "out2"), "--cache", filepath.Join(dir, "cache"), "--progress-every", "1h")
	if code != 0 {
		t.Fatalf("rerun: exit %d: %s", code, rerunErr)
	}
	if want := fmt.Sprintf("answers %d of a first run's %d requests; 0 go to the model", requests, requests); !strings.Contains(rerunErr, want) {
		t.Errorf("rerun's plan block lacks %q:\n%s", want, rerunErr)
	}
	if got := srv.Stats().Requests; got != served {
		t.Errorf("the rerun sent %d requests, want none", got-served)
	}
}

// TestPlanUnreachable: an endpoint where nothing listens stops the plan
// at once, naming its URL and the cause, with exit status 1.
func TestPlanUnreachable(t *testing.T) {
	hs := httptest.NewServer(nil)
	url := hs.URL
	hs.Close()
	file := writeScenario(t, t.TempDir(), "plan", planScenario(url))
	_, stderr, code := runCLI(t, "plan", file)
	if code != 1 || !strings.Contains(stderr, url+"/v1/models") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("got exit %d, stderr %q; want 1 naming %s/v1/models and the refused connection", code, stderr, url)
	}
}

// TestPlanNoCacheMatchesModelServer: a run with --no-cache asks a prompt
// again in each phase that needs it (the calibration's, then the main
// run's), and the block at its top counts those requests, exactly as the
// server counts them.
func TestPlanNoCacheMatchesModelServer(t *testing.T) {
	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	srv := modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	file := writeScenario(t, dir, "plan", fmt.Sprintf(`name = "plan-no-cache"
seed = 3
[population]
size = 20
strategies = ["model-specific"]
calibration = 10
[[models]]
name = "dist"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = "distribution"
concurrency = 8
timeout = "10s"
seed = 7
[[questionnaires]]
name = "pvq40"
items = 20
[analysis]
bootstrap_iterations = 5
null_iterations = 19
`, hs.URL+"/v1"))
	stdout, stderr, code := runCLI(t, "plan", file, "--json")
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}
	var p backend.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatal(err)
	}
	_, runErr, code := runCLI(t, "run", file, "--out", filepath.Join(dir, "out"), "--no-cache", "--progress-every", "1h")
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, runErr)
	}
	served := srv.Stats().Requests
	if served <= p.Models[0].Requests {
		t.Fatalf("the --no-cache run made %d requests, a first run with a cache %d: the test needs a prompt asked again", served, p.Models[0].Requests)
	}
	if !regexp.MustCompile(`(?m)^\s*dist\s+distribution\s+` + strconv.FormatInt(served, 10) + `\s`).MatchString(runErr) {
		t.Errorf("the --no-cache run's block does not count the %d requests the server counted:\n%s", served, runErr)
	}
}
