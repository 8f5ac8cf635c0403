package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/society-sim/society/llm/modelserver"
)

// withoutLogprobs serves h as a server that ignores logprob requests (as
// some do): it drops logprobs and top_logprobs from every request body.
func withoutLogprobs(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var body map[string]any
		if json.Unmarshal(raw, &body) == nil {
			delete(body, "logprobs")
			delete(body, "top_logprobs")
			raw, _ = json.Marshal(body)
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.ContentLength = int64(len(raw))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs
}

func readReport(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A run says what really happened, in results.json, report.md and the
// summary: the true query mode, the traffic, the covered mass, the invalid
// share with its reasons, and that the model server's answers are
// synthetic whatever the model is called.
func TestRunReportsWhatHappened(t *testing.T) {
	dir := t.TempDir()
	pvq12 := "[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n"

	// Most answers invalid: no agent has every value scored, so the run
	// also ends with exit 1, after writing and summarising what happened.
	t.Run("sample mode, mostly invalid", func(t *testing.T) {
		hs, _ := testModelServer(t, modelserver.Options{Seed: 4, GarbageRate: 0.85})
		sc := writeScenario(t, dir, "garbage", small(openaiScenario("garbage", hs.URL, "sample", 20, ""))+pvq12)
		out := filepath.Join(dir, "garbage")
		stdout, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", filepath.Join(dir, "cache-garbage"))
		if code != 1 || !strings.Contains(stderr, "no agent could be scored") {
			t.Fatalf("exit %d, want 1 with the reason: %s", code, stderr)
		}
		r := readResults(t, out)
		if len(r.ModelRuns) != 1 {
			t.Fatalf("model runs: got %d, want 1", len(r.ModelRuns))
		}
		mr := r.ModelRuns[0]
		if mr.QueryMode != "sample" || !mr.Synthetic || mr.Backend != "openai" {
			t.Errorf("got mode %q, synthetic %v, backend %q; want sample, true, openai", mr.QueryMode, mr.Synthetic, mr.Backend)
		}
		if !r.Models[0].Synthetic || r.Models[0].SystemFingerprint != "society-synthetic" || r.Note == "" {
			t.Errorf("got model %+v, note %q; want it labelled synthetic", r.Models[0], r.Note)
		}
		if mr.LLM == nil || mr.LLM.StrictRetries == 0 || mr.LLM.PromptTokens == 0 || mr.LLM.CompletionTokens == 0 || mr.LLM.Calls == 0 {
			t.Fatalf("got traffic %+v, want calls, strict retries and tokens", mr.LLM)
		}
		if mr.Answers != r.Answers || !mr.MostlyInvalid || len(mr.InvalidReasons) == 0 {
			t.Errorf("got answers %+v (run %+v), mostly invalid %v, reasons %v", mr.Answers, r.Answers, mr.MostlyInvalid, mr.InvalidReasons)
		}
		report := readReport(t, out)
		for _, s := range []string{"WARNING: model served", "## Model runs", "serving synthetic respondents (society model-server)", "sample mode"} {
			if !strings.Contains(report, s) {
				t.Errorf("report.md: want %q in it", s)
			}
		}
		if strings.Contains(report, "distribution mode") {
			t.Error("report.md of a sample-mode run says distribution mode")
		}
		if !strings.Contains(stdout, "WARNING: model served") || !strings.Contains(stdout, "strict retries") || !strings.Contains(stdout, "SYNTHETIC") {
			t.Errorf("summary lacks the warning, the traffic or the synthetic label:\n%s", stdout)
		}
		if !strings.Contains(stderr, "WARNING: model served") {
			t.Errorf("stderr lacks the warning:\n%s", stderr)
		}
	})

	t.Run("distribution mode, all fallen back", func(t *testing.T) {
		_, srv := testModelServer(t, modelserver.Options{Seed: 4})
		hs := withoutLogprobs(t, srv)
		sc := writeScenario(t, dir, "nologprobs", small(openaiScenario("nologprobs", hs.URL, "distribution", 20, ""))+pvq12)
		out := filepath.Join(dir, "nologprobs")
		stdout, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", filepath.Join(dir, "cache-nologprobs"))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		r := readResults(t, out)
		mr := r.ModelRuns[0]
		// A reply without alternatives gives no distribution at all: its
		// question is sampled, and no covered mass can be told.
		if mr.LLM == nil || mr.LLM.Fallbacks == 0 || mr.LLM.Distributions != 0 || !math.IsNaN(float64(mr.LLM.CoveredMass)) {
			t.Fatalf("got traffic %+v, want every question fallen back, no distribution and no covered mass", mr.LLM)
		}
		want := "distribution (all " + itoa(mr.LLM.Fallbacks) + " questions fell back to sampling)"
		if mr.QueryMode != want {
			t.Errorf("query mode: got %q, want %q", mr.QueryMode, want)
		}
		line := "distribution mode (all " + itoa(mr.LLM.Fallbacks) + " questions fell back to sampling)"
		if !strings.Contains(readReport(t, out), line) || !strings.Contains(stdout, line) {
			t.Errorf("report or summary lacks %q:\n%s", line, stdout)
		}
		// A rebuild makes no call: it keeps what the run learnt.
		if _, stderr, code := runCLI(t, "report", out); code != 0 {
			t.Fatalf("report: exit %d: %s", code, stderr)
		}
		again := readResults(t, out)
		if !again.Models[0].Synthetic || again.ModelRuns[0].QueryMode != want || again.ModelRuns[0].LLM == nil ||
			again.ModelRuns[0].LLM.Calls != mr.LLM.Calls || !sameNum(float64(again.ModelRuns[0].LLM.CoveredMass), float64(mr.LLM.CoveredMass)) {
			t.Errorf("rebuilt: got model %+v, run %+v; want %+v", again.Models[0], again.ModelRuns[0], mr)
		}
	})

	t.Run("no valid answer", func(t *testing.T) {
		hs, _ := testModelServer(t, modelserver.Options{Seed: 4, GarbageRate: 1})
		sc := writeScenario(t, dir, "allgarbage", small(openaiScenario("allgarbage", hs.URL, "sample", 20, ""))+pvq12)
		out := filepath.Join(dir, "allgarbage")
		_, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", filepath.Join(dir, "cache-allgarbage"))
		if code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, stderr)
		}
		if !strings.Contains(stderr, "no agent could be scored") || !strings.Contains(stderr, "0 valid answers of 240 expected") {
			t.Errorf("stderr does not say why:\n%s", stderr)
		}
		if _, err := os.Stat(filepath.Join(out, "invalid.jsonl")); err != nil {
			t.Errorf("the answers are not kept: %v", err)
		}
	})
}

// A scenario whose items leave values unscored is refused before the run
// (exit 2, file, line and field), instead of exit 0 with NA tables.
func TestRunUnscoredExits2(t *testing.T) {
	dir := t.TempDir()
	sc := writeScenario(t, dir, "fouritems", "name = \"fouritems\"\nseed = 1\n[population]\nsize = 50\n[[questionnaires]]\nname = \"pvq40\"\nitems = 4\n")
	_, stderr, code := runCLI(t, "run", sc, "--out", filepath.Join(dir, "out"))
	if code != 2 || !strings.Contains(stderr, "fouritems.toml:7: questionnaires[0].items") || !strings.Contains(stderr, "pvq40 needs at least its first 12 items") {
		t.Errorf("exit %d, want 2 saying where and why:\n%s", code, stderr)
	}
}

// small asks for two samples per block instead of fifty: the tests count,
// they do not measure.
func small(sc string) string { return strings.Replace(sc, "samples = 50", "samples = 2", 1) }

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// sameNum reports whether a and b are equal or both NaN (no figure).
func sameNum(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
