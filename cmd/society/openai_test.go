package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
)

// syntheticModelServer is the synthetic respondents behind the OpenAI HTTP
// API, as `society model-server` serves them.
func syntheticModelServer(t *testing.T, o modelserver.Options) *modelserver.Server {
	t.Helper()
	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	return modelserver.New(llm.NewSynthetic(1, means), o)
}

// testModelServer serves the synthetic respondents on loopback.
func testModelServer(t *testing.T, o modelserver.Options) (*httptest.Server, *modelserver.Server) {
	t.Helper()
	s := syntheticModelServer(t, o)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs, s
}

func writeScenario(t *testing.T, dir, name, body string) string {
	t.Helper()
	f := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func openaiScenario(name, url, mode string, size int, extra string) string {
	return fmt.Sprintf(`name = %q
seed = 5
[population]
size = %d
[[models]]
name = "served"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = %q
samples = 50
concurrency = 32
timeout = "10s"
%s
[analysis]
bootstrap_iterations = 20
null_iterations = 19
references = ["pvq40_smacof_mrat"]
`, name, size, url+"/v1", mode, extra)
}

func similarity(t *testing.T, r analysis.Results) float64 {
	t.Helper()
	for _, row := range r.ValueStructure {
		if row.Reference == "pvq40_smacof_mrat" {
			return float64(row.ValuesSimilarity)
		}
	}
	t.Fatal("no pvq40_smacof_mrat row")
	return 0
}

// TestOpenAIBackendMatchesInProcess: the same population asked over real
// HTTP (the model server) in both query modes gives the same value
// structure as the in-process synthetic backend, within sampling error.
func TestOpenAIBackendMatchesInProcess(t *testing.T) {
	hs, _ := testModelServer(t, modelserver.Options{Seed: 3})
	dir := t.TempDir()
	const size = 1000
	base := writeScenario(t, dir, "inproc", fmt.Sprintf("name = \"inproc\"\nseed = 5\n[population]\nsize = %d\n[analysis]\nbootstrap_iterations = 20\nreferences = [\"pvq40_smacof_mrat\"]\n", size))
	if _, stderr, code := runCLI(t, "run", base, "--out", filepath.Join(dir, "inproc")); code != 0 {
		t.Fatal(stderr)
	}
	want := similarity(t, readResults(t, filepath.Join(dir, "inproc")))
	for _, mode := range []string{"distribution", "sample"} {
		t.Run(mode, func(t *testing.T) {
			sc := writeScenario(t, dir, mode, openaiScenario(mode, hs.URL, mode, size, ""))
			out := filepath.Join(dir, mode)
			if _, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", filepath.Join(dir, "cache-"+mode)); code != 0 {
				t.Fatal(stderr)
			}
			r := readResults(t, out)
			if r.Answers.Valid+r.Answers.Invalid != r.Answers.Expected || r.Answers.Expected != size*40 {
				t.Fatalf("got answers %+v, want %d reconciled", r.Answers, size*40)
			}
			if !r.Models[0].Synthetic || r.Models[0].Backend != "openai" {
				t.Errorf("got model info %+v, want the openai backend labelled synthetic (the model server says so)", r.Models[0])
			}
			got := similarity(t, r)
			if math.Abs(got-want) > 0.05 {
				t.Errorf("got values similarity %.3f over HTTP, want %.3f ± 0.05 as in process", got, want)
			}
			if r.LLM.Calls == 0 {
				t.Error("no model calls counted")
			}
			t.Logf("%s mode: %d calls, similarity %.3f (in process %.3f)", mode, r.LLM.Calls, got, want)
		})
	}
}

// TestOpenAIFaultsAndCache: with errors and garbage the run completes and
// reconciles; a rerun makes no calls.
func TestOpenAIFaultsAndCache(t *testing.T) {
	hs, srv := testModelServer(t, modelserver.Options{Seed: 4, ErrorRate: 0.2, GarbageRate: 0.05})
	dir := t.TempDir()
	sc := writeScenario(t, dir, "faults", openaiScenario("faults", hs.URL, "sample", 200, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n")
	cache := filepath.Join(dir, "cache")
	out := filepath.Join(dir, "a")
	if _, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", cache); code != 0 {
		t.Fatal(stderr)
	}
	r := readResults(t, out)
	if r.Answers.Valid+r.Answers.Invalid != r.Answers.Expected || r.Answers.Expected != 200*12 {
		t.Fatalf("got answers %+v, want valid + invalid = expected = %d", r.Answers, 200*12)
	}
	if r.LLM.Retries == 0 {
		t.Errorf("got 0 retries with a 20%% error rate")
	}
	if st := srv.Stats(); st.Errors == 0 || st.Garbage == 0 {
		t.Fatalf("server injected no faults: %+v", st)
	}
	// Every invalid answer is in invalid.jsonl with its raw text and reason.
	f, err := os.Open(filepath.Join(out, "invalid.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc2 := bufio.NewScanner(f)
	for sc2.Scan() {
		var iv analysis.InvalidAnswer
		if err := json.Unmarshal(sc2.Bytes(), &iv); err != nil {
			t.Fatal(err)
		}
		if iv.Reason == "" {
			t.Errorf("invalid answer without a reason: %+v", iv)
		}
		n++
	}
	if int64(n) != r.Answers.Invalid {
		t.Errorf("got %d lines in invalid.jsonl, want %d", n, r.Answers.Invalid)
	}
	t.Logf("faults: %+v, llm %+v, server %+v", r.Answers, r.LLM, srv.Stats())

	// A rerun of the finished scenario makes zero model calls.
	before := srv.Stats().Requests
	out2 := filepath.Join(dir, "b")
	if _, stderr, code := runCLI(t, "run", sc, "--out", out2, "--cache", cache); code != 0 {
		t.Fatal(stderr)
	}
	r2 := readResults(t, out2)
	if got := srv.Stats().Requests - before; got != 0 || r2.LLM.Calls != 0 {
		t.Errorf("rerun: got %d requests (%d calls counted), want 0", got, r2.LLM.Calls)
	}
	// Cache hits count calls saved, not answers: the rerun saves every
	// call the first run made (its strict retries included), however many
	// answers each served.
	if r2.LLM.CacheHits != r.LLM.Calls || r2.LLM.CacheHits+r2.LLM.AnswersReused < r2.Answers.Expected {
		t.Errorf("rerun: got %d cache hits and %d answers reused for %d answers, want %d cache hits (the first run's calls)",
			r2.LLM.CacheHits, r2.LLM.AnswersReused, r2.Answers.Expected, r.LLM.Calls)
	}
	// The run block says where the answers came from: the model server,
	// synthetic, with the settings the client resolved.
	for i, res := range []analysis.Results{r, r2} {
		run := res.Run
		if run == nil || len(run.Models) != 1 || !run.Synthetic || run.Start == "" || run.End < run.Start {
			t.Fatalf("run block: got %+v, want one synthetic model, a start and an end", run)
		}
		m := run.Models[0]
		if !m.Synthetic || m.Backend != "openai" || m.BaseURL != hs.URL+"/v1" || m.Mode != "sample" || m.MaxTokens == 0 ||
			m.SystemFingerprint == "" || m.LLM == nil || m.LLM.Calls != res.LLM.Calls {
			t.Errorf("run block model of run %d (0 runs, 1 reruns from the cache): got %+v, want the model server's, synthetic, with its settings and traffic", i, m)
		}
	}
	t.Logf("first run: %d calls, %d answers reused; rerun: %d cache hits, %d answers reused; %d answers",
		r.LLM.Calls, r.LLM.AnswersReused, r2.LLM.CacheHits, r2.LLM.AnswersReused, r2.Answers.Expected)
	if r2.Answers != r.Answers {
		t.Errorf("rerun: got answers %+v, want %+v", r2.Answers, r.Answers)
	}
	a, _ := os.ReadFile(filepath.Join(out, "answers.csv"))
	b, _ := os.ReadFile(filepath.Join(out2, "answers.csv"))
	if string(a) != string(b) {
		t.Error("rerun from the cache gave different answers")
	}
}

// TestOpenAIMissingKey: a model whose api_key_env is unset is bad input.
func TestOpenAIMissingKey(t *testing.T) {
	dir := t.TempDir()
	sc := writeScenario(t, dir, "key", openaiScenario("key", "http://127.0.0.1:9", "distribution", 10, `api_key_env = "SOCIETY_TEST_UNSET_KEY"`))
	_, stderr, code := runCLI(t, "run", sc, "--out", filepath.Join(dir, "o"))
	if code != 2 || !strings.Contains(stderr, "SOCIETY_TEST_UNSET_KEY") || !strings.Contains(stderr, "api_key_env") {
		t.Fatalf("got exit %d, %q; want 2 naming the variable and the field", code, stderr)
	}
}

// TestOpenAIResumeAfterKill: a run stopped half-way and started again makes
// only the calls the first one did not finish.
func TestOpenAIResumeAfterKill(t *testing.T) {
	srv := syntheticModelServer(t, modelserver.Options{Seed: 6, Latency: 20 * time.Millisecond, Slots: 4})
	// Told after every request the server has answered, the test stops the
	// run once 150 were served.
	served150 := make(chan struct{})
	var once sync.Once
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r)
		if srv.Stats().Served >= 150 {
			once.Do(func() { close(served150) })
		}
	}))
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	sc := writeScenario(t, dir, "resume", openaiScenario("resume", hs.URL, "distribution", 300, "")+"\n")
	cache := filepath.Join(dir, "cache")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var o, e bytes.Buffer
		done <- run(ctx, []string{"run", sc, "--out", filepath.Join(dir, "killed"), "--cache", cache}, &o, &e)
	}()
	select {
	case <-served150:
	case err := <-done:
		t.Fatalf("the run ended (%v) before the server served 150 requests", err)
	case <-t.Context().Done():
		t.Fatalf("the server served %d requests before the test ended, want 150", srv.Stats().Served)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the interrupted run reported success")
	}
	if _, err := os.Stat(filepath.Join(dir, "killed")); !os.IsNotExist(err) {
		t.Fatal("the interrupted run wrote results")
	}
	store, err := llm.OpenFileStore(cache, llm.FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := store.Len()
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	// One entry is not a prompt: the record of what the server said
	// about itself, kept beside the answers (llm.Client.Served).
	stored--
	if stored <= 0 || stored >= 440 {
		t.Fatalf("got %d cached prompts after the interruption, want some but not all of 440", stored)
	}

	out := filepath.Join(dir, "resumed")
	if _, stderr, code := runCLI(t, "run", sc, "--out", out, "--cache", cache); code != 0 {
		t.Fatal(stderr)
	}
	r := readResults(t, out)
	if got, want := r.LLM.Calls, int64(440-stored); got != want {
		t.Errorf("resumed run: got %d calls, want %d (440 prompts, %d already cached)", got, want, stored)
	}
	t.Logf("interrupted after %d cached prompts; the resumed run made %d calls", stored, r.LLM.Calls)
}
