package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// TestSampleRunPaysForUsedSamples: 50 agents answer 10 items in sample
// mode from a server that ignores n, every first reply unreadable. Only
// the 500 samples agents use are fetched and strict-retried (before sample
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
items = 10
[analysis]
bootstrap_iterations = 20
references = ["pvq40_smacof_mrat"]
`, srv.URL+"/v1", samples))
			out := filepath.Join(dir, "out")
			if _, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", filepath.Join(dir, "cache")); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			r := readResults(t, out)
			const answers = 50 * 10
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
