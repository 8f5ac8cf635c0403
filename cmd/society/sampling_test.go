package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// oneChoiceServer answers like Ollama: one choice whatever n asks for. A
// first reply is unreadable; a reply to the strict instruction is "4". It
// counts the samples asked for, the choices sent and the strict retries,
// and collects the seeds of first requests.
type oneChoiceServer struct {
	*httptest.Server
	mu                      sync.Mutex
	requests, asked, strict int
	promptsOfSeed           map[string]map[string]bool // seed → prompts sent with it
}

func newOneChoiceServer(t *testing.T) *oneChoiceServer {
	s := &oneChoiceServer{promptsOfSeed: map[string]map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			Messages []struct{ Role, Content string }
			N        int
			Seed     json.Number
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var text strings.Builder
		for _, m := range body.Messages {
			text.WriteString(m.Content)
		}
		strict := strings.Contains(text.String(), "could not be read")
		s.mu.Lock()
		s.requests++
		if strict {
			s.strict++
		} else {
			s.asked += max(body.N, 1)
			seed := body.Seed.String()
			if s.promptsOfSeed[seed] == nil {
				s.promptsOfSeed[seed] = map[string]bool{}
			}
			s.promptsOfSeed[seed][text.String()] = true
		}
		s.mu.Unlock()
		content := "The person described is hard to place."
		if strict {
			content = "4"
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}`, content)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestSampleRunPaysForUsedSamples: 50 agents answer 12 items in sample
// mode from a server that ignores n, every first reply unreadable. Only
// the 600 samples agents use are fetched and strict-retried (before sample
// requests were sized to the demand, the same run with 40 items fetched
// and strict-retried 4,800 samples for 2,000 answers), and no seed is
// shared by two prompts.
func TestSampleRunPaysForUsedSamples(t *testing.T) {
	for _, samples := range []int{10} {
		t.Run(fmt.Sprintf("samples %d", samples), func(t *testing.T) {
			srv := newOneChoiceServer(t)
			dir := t.TempDir()
			sc := writeScenario(t, dir, "used", fmt.Sprintf(`name = "used"
seed = 7
[population]
size = 50
[[models]]
name = "served"
backend = "openai"
base_url = %q
model = "m"
mode = "sample"
samples = %d
seed = 7
max_tokens = 8
concurrency = 8
timeout = "10s"
[[questionnaires]]
name = "pvq40"
items = 12
[analysis]
bootstrap_iterations = 20
references = ["pvq40_smacof_mrat"]
`, srv.URL+"/v1", samples))
			out := filepath.Join(dir, "out")
			if _, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", filepath.Join(dir, "cache")); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			r := readResults(t, out)
			const answers = 50 * 12
			if r.Answers.Expected != answers || r.Answers.Valid+r.Answers.Invalid != answers {
				t.Fatalf("answers %+v, want %d reconciled", r.Answers, answers)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			t.Logf("samples %d: %d requests, %d samples asked for, %d strict retries, for %d answers",
				samples, srv.requests, srv.asked, srv.strict, answers)
			if srv.strict != answers {
				t.Errorf("got %d strict retries, want %d (one per used sample)", srv.strict, answers)
			}
			// A server that ignores n is asked again for the rest of a
			// block: every sample of a block is asked for once by its
			// first request, so asked counts each sample several times.
			// The choices sent are the requests that are not strict.
			if sent := srv.requests - srv.strict; sent != answers {
				t.Errorf("got %d samples fetched, want %d (only those agents use)", sent, answers)
			}
			allPrompts := map[string]bool{}
			for _, prompts := range srv.promptsOfSeed {
				for p := range prompts {
					allPrompts[p] = true
				}
			}
			t.Logf("%d distinct seeds for %d distinct prompts", len(srv.promptsOfSeed), len(allPrompts))
			for seed, prompts := range srv.promptsOfSeed {
				if len(prompts) > 1 {
					t.Errorf("seed %s sent with %d different prompts, want 1", seed, len(prompts))
				}
			}
		})
	}
}

// TestValidateWarnsWithoutMaxTokens: validate names the model and the line
// of an OpenAI-compatible model that sets no max_tokens, and passes.
func TestValidateWarnsWithoutMaxTokens(t *testing.T) {
	dir := t.TempDir()
	without := writeScenario(t, dir, "without", openaiScenario("without", "http://127.0.0.1:9", "sample", 20, ""))
	out, stderr, code := runCLI(t, "validate", without)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("exit %d: %s%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "warning: "+without+":5: models[0].max_tokens: not set") || !strings.Contains(stderr, `"served"`) {
		t.Errorf("stderr %q: want a warning naming the file, line, field and model", stderr)
	}
	with := writeScenario(t, dir, "with", openaiScenario("with", "http://127.0.0.1:9", "sample", 20, "max_tokens = 16"))
	if _, stderr, code := runCLI(t, "validate", with); code != 0 || strings.Contains(stderr, "warning") {
		t.Errorf("with max_tokens: exit %d, stderr %q; want 0 and no warning", code, stderr)
	}
}

// compatCaseBody is the exact body of a case of the compatibility set kept
// under llm/testdata.
func compatCaseBody(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "llm", "testdata", "compat", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name string          `json:"name"`
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.Name == name {
			return string(c.Body)
		}
	}
	t.Fatalf("no case %q", name)
	return ""
}

// TestCompatRuns runs 20 agents over two PVQ-40 items against a server
// that answers with a case's exact body (log-probability requests) and,
// for distribution-mode cases, a plain "4" to sampling requests. Every
// answer is accounted for and each valid one is what the reply says.
func TestCompatRuns(t *testing.T) {
	plain := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}}`
	tests := []struct {
		name, mode string
		valid      int
		values     string // the answers valid ones may take
		warn       string // a warning the run prints once, if any
	}{
		{"think_inline", "sample", 240, "4", ""},
		{"think_truncated", "sample", 0, "", "raise max_tokens"},
		{"reasoning_empty", "sample", 0, "", "raise max_tokens"},
		{"tokenizer_space_marker", "distribution", 240, "345", ""},
		{"top_logprobs_empty", "distribution", 240, "4", "no alternatives (top_logprobs)"},
		// error_in_200_logprobs is a client test (llm): at the scenario's
		// retry schedule its retries take minutes.
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := compatCaseBody(t, tt.name)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				raw, _ := io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "application/json")
				if tt.mode == "distribution" && !strings.Contains(string(raw), `"logprobs":true`) {
					io.WriteString(w, plain)
					return
				}
				io.WriteString(w, body)
			}))
			defer hs.Close()
			dir := t.TempDir()
			sc := writeScenario(t, dir, "compat", fmt.Sprintf(`name = "compat"
seed = 3
[population]
size = 20
[[models]]
name = "served"
base_url = %q
model = "m"
mode = %q
max_tokens = 16
concurrency = 4
timeout = "10s"
[[questionnaires]]
name = "pvq40"
items = 12
[analysis]
bootstrap_iterations = 20
references = ["pvq40_smacof_mrat"]
`, hs.URL+"/v1", tt.mode))
			out := filepath.Join(dir, "out")
			_, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", filepath.Join(dir, "cache"))
			if tt.valid == 0 {
				// No agent could be scored: the run may say so and fail,
				// but every answer is still recorded.
				if _, err := os.Stat(filepath.Join(out, "results.json")); err != nil {
					t.Skipf("exit %d without results: %s", code, stderr)
				}
			} else if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			r := readResults(t, out)
			// 20 agents × the first 12 items, the fewest that score every value.
			if r.Answers.Expected != 240 || r.Answers.Valid+r.Answers.Invalid != 240 || r.Answers.Valid != int64(tt.valid) {
				t.Fatalf("answers %+v, want 240 expected, %d valid, reconciled", r.Answers, tt.valid)
			}
			answers, err := os.ReadFile(filepath.Join(out, "answers.csv"))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(answers)), "\n")
			head := strings.Split(lines[0], ",")
			col := func(name string) int {
				for i, h := range head {
					if h == name {
						return i
					}
				}
				t.Fatalf("answers.csv has no column %s", name)
				return -1
			}
			ans, valid := col("answer"), col("valid")
			for _, l := range lines[1:] {
				f := strings.Split(l, ",")
				if f[valid] == "true" || f[valid] == "1" {
					if !strings.Contains(tt.values, f[ans]) || f[ans] == "" {
						t.Errorf("valid answer %q, want one of %q", f[ans], tt.values)
					}
				}
			}
			if tt.valid == 0 {
				inv, err := os.ReadFile(filepath.Join(out, "invalid.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				if n := strings.Count(string(inv), "truncated"); n < 240 {
					t.Errorf("invalid.jsonl names truncation %d times, want every answer (240)", n)
				}
			}
			if n := strings.Count(stderr, tt.warn); tt.warn != "" && n != 1 {
				t.Errorf("stderr says %q %d times, want once:\n%s", tt.warn, n, stderr)
			}
		})
	}
}
