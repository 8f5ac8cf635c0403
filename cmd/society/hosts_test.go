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
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm/modelserver"
)

// TestTwoHostsPayOnce: two agent hosts serving one run at once, whose
// agents ask the same new prompts at the same moment, make exactly the
// requests of a single process and of the plan, in sample and in
// distribution mode: each distinct prompt (in sample mode each block of
// samples) is requested by one host, and the other takes its reply from
// the run's fetch claims. The calls, answers reused and calls saved of
// results.json are the single process's, and calls + answers reused
// reconcile with the answers.
func TestTwoHostsPayOnce(t *testing.T) {
	// Sample mode twice: with samples = 50 every segment of samples holds
	// agents of both hosts (the fetch claims share them), with samples = 1
	// each host fetches its own agents' samples ahead.
	for _, tc := range []struct{ mode, samples string }{{"sample", "50"}, {"sample", "1"}, {"distribution", "50"}} {
		mode := tc.mode
		t.Run(mode+"-"+tc.samples, func(t *testing.T) {
			// Each request holds the server a moment, so that both hosts'
			// agents ask their prompts while the other's are in flight.
			hs, ms := testModelServer(t, modelserver.Options{Seed: 4, Latency: 20 * time.Millisecond})
			dir := t.TempDir()
			name := "twohosts-" + mode
			sc := strings.Replace(openaiScenario(name, hs.URL, mode, 120, "max_tokens = 8\nseed = 3"), "samples = 50", "samples = "+tc.samples, 1)
			file := writeScenario(t, dir, name, sc+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n[run]\nshards = 4\n")

			if _, stderr, code := runCLI(t, "run", file, "--out", filepath.Join(dir, "single"), "--quiet", "--cache", filepath.Join(dir, "single-cache")); code != 0 {
				t.Fatalf("single-process run: exit %d\n%s", code, stderr)
			}
			singleCalls := ms.Stats().Requests
			single := readResults(t, filepath.Join(dir, "single"))

			url := natsOnLoopback(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			id := name + "-5"
			roles := make(chan error, 3)
			// One task at a time per host (two pullers): with four
			// shards, each host takes tasks while the other serves its.
			var outs [2]bytes.Buffer
			for i := range 2 {
				go func() {
					roles <- run(ctx, []string{"agents", "--nats", url, "--name", fmt.Sprintf("host-%d", i+1), "--tasks", "1",
						"--cache", filepath.Join(dir, fmt.Sprintf("host-%d-cache", i+1))}, &outs[i], io.Discard)
				}()
			}
			go func() {
				roles <- run(ctx, []string{"analyze", "--nats", url, "--out", filepath.Join(dir, "dist")}, io.Discard, io.Discard)
			}()
			_, stderr, code := runCLI(t, "run", file, "--nats", url, "--cache", filepath.Join(dir, "orch-cache"))
			calls := ms.Stats().Requests - singleCalls
			// The run over, its fetch claims are gone (the server
			// reserves storage for their bucket).
			if nc, err := nats.Connect(url); err != nil {
				t.Error(err)
			} else {
				js, _ := jetstream.New(nc)
				if _, err := js.KeyValue(t.Context(), bus.Subjects{Run: id}.FlightsBucket()); !errors.Is(err, jetstream.ErrBucketNotFound) {
					t.Errorf("the run's claims bucket after the run: got %v, want it deleted", err)
				}
				nc.Close()
			}
			// The same study under another name: a new run, which the
			// hosts serve from their caches.
			again := writeScenario(t, dir, "again", strings.Replace(string(readFile(t, file)), name, "again-"+mode, 1))
			_, stderrAgain, codeAgain := runCLI(t, "run", again, "--nats", url, "--quiet", "--cache", filepath.Join(dir, "orch-cache"))
			cancel()
			for range 3 {
				if err := <-roles; err != nil {
					t.Errorf("role: %v", err)
				}
			}
			if codeAgain != 0 {
				t.Fatalf("second run: exit %d\n%s", codeAgain, stderrAgain)
			}
			if code != 0 {
				t.Fatalf("distributed run: exit %d\n%s", code, stderr)
			}
			m := regexp.MustCompile(`(?m)^\s*served\s+` + mode + `\s+(\d+)\s`).FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("no plan of the served model in the run's stderr:\n%s", stderr)
			}
			plan, _ := strconv.ParseInt(m[1], 10, 64)
			if calls != singleCalls || calls != plan {
				t.Errorf("two hosts made %d calls, one process %d, the plan says %d; want all equal", calls, singleCalls, plan)
			}
			for i, o := range outs {
				if !regexp.MustCompile(`: [1-9]\d* tasks served`).MatchString(o.String()) {
					t.Errorf("host-%d served no task (%q): the test needs both hosts serving", i+1, o.String())
				}
			}
			r := readResults(t, filepath.Join(dir, "dist", id))
			if r.LLM.Calls != calls {
				t.Errorf("results.json: %d calls, the server served %d", r.LLM.Calls, calls)
			}
			// Each host kept up to the model's concurrency in flight.
			if r.Run == nil || len(r.Run.Models) != 1 || r.Run.Models[0].Hosts != 2 || r.Run.Models[0].Concurrency != 32 {
				t.Errorf("run.models: got %+v, want concurrency 32 on each of 2 hosts", r.Run)
			} else if s := single.Run.Models[0]; s.Hosts != 1 || s.Concurrency != 32 {
				t.Errorf("single process run.models: got hosts %d, concurrency %d; want 1, 32", s.Hosts, s.Concurrency)
			}
			reconciles(t, "single process", single)
			reconciles(t, "two hosts", r)
			if r.LLM.AnswersReused != single.LLM.AnswersReused || r.LLM.CacheHits != single.LLM.CacheHits {
				t.Errorf("two hosts: %d answers reused, %d calls saved; one process %d, %d",
					r.LLM.AnswersReused, r.LLM.CacheHits, single.LLM.AnswersReused, single.LLM.CacheHits)
			}
			// The second run paid nothing, and saved each call of the
			// first once, whichever host used its reply first.
			ra := readResults(t, filepath.Join(dir, "dist", "again-"+mode+"-5"))
			if more := ms.Stats().Requests - singleCalls - calls; more != 0 || ra.LLM.Calls != 0 || ra.LLM.CacheHits != calls ||
				ra.LLM.CacheHits+ra.LLM.AnswersReused != ra.Answers.Expected {
				t.Errorf("second run: %d requests served, results %d calls, %d saved, %d answers reused of %d; want 0, 0, %d saved, saved + reused = answers",
					more, ra.LLM.Calls, ra.LLM.CacheHits, ra.LLM.AnswersReused, ra.Answers.Expected, calls)
			}
			// The run block counts the agent hosts that served the run,
			// and per model those that served its tasks, calls or none
			// (as README says of hosts): the second run, answered from
			// the caches, made none.
			if r.Run != nil && r.Run.AgentHosts != 2 {
				t.Errorf("run.agent_hosts: got %d, want 2", r.Run.AgentHosts)
			}
			if ra.Run == nil || len(ra.Run.Models) != 1 || ra.Run.AgentHosts < 1 || ra.Run.Models[0].Hosts != ra.Run.AgentHosts {
				t.Errorf("second run: got run block %+v, want the hosts that served it counted, with 0 calls", ra.Run)
			}
			// The model's seed makes each reply a function of its request,
			// whichever host sends it.
			sameAnswers(t, filepath.Join(dir, "single"), filepath.Join(dir, "dist", id))
		})
	}
}

// reconciles checks that a fresh run's answers are its calls' first
// answers plus the answers reused (every reply was readable, so no
// strict retry was made, and nothing was cached before).
func reconciles(t *testing.T, who string, r analysis.Results) {
	t.Helper()
	if r.LLM.CacheHits != 0 || r.Answers.Invalid != 0 {
		t.Fatalf("%s: %d calls saved, %d invalid answers; the test needs none", who, r.LLM.CacheHits, r.Answers.Invalid)
	}
	if got := r.LLM.Calls + r.LLM.AnswersReused; got != r.Answers.Expected {
		t.Errorf("%s: %d calls + %d answers reused = %d, want the %d answers", who, r.LLM.Calls, r.LLM.AnswersReused, got, r.Answers.Expected)
	}
}

// TestFreshRunIDOverNATS: a run started with --fresh over NATS is a new
// run, named as a single-process run is (NAME-SEED-TIME-RANDOM), in its
// results and its summary; a run without --fresh keeps NAME-SEED, which
// starting the scenario again continues.
func TestFreshRunIDOverNATS(t *testing.T) {
	url := natsOnLoopback(t)
	dir := t.TempDir()
	file := writeScenario(t, dir, "freshid", `name = "freshid"
seed = 3
[population]
size = 40
[[questionnaires]]
name = "pvq40"
[run]
shards = 2
`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hostDone := make(chan error, 1)
	go func() {
		hostDone <- run(ctx, []string{"agents", "--nats", url, "--name", "host", "--cache", filepath.Join(dir, "host-cache")}, io.Discard, io.Discard)
	}()
	ids := map[string]string{}
	for _, fresh := range []bool{false, true} {
		args := []string{"run", file, "--nats", url, "--out", filepath.Join(dir, fmt.Sprint(fresh)), "--quiet", "--cache", filepath.Join(dir, "orch-cache")}
		if fresh {
			args = append(args, "--fresh")
		}
		stdout, stderr, code := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("run (fresh %v): exit %d\n%s", fresh, code, stderr)
		}
		r := readResults(t, filepath.Join(dir, fmt.Sprint(fresh)))
		if r.Run == nil {
			t.Fatalf("run (fresh %v): no run block", fresh)
		}
		ids[fmt.Sprint(fresh)] = r.Run.ID
		if !strings.Contains(stdout, r.Run.ID) {
			t.Errorf("run (fresh %v): the summary does not name the run %s:\n%s", fresh, r.Run.ID, stdout)
		}
	}
	cancel()
	if err := <-hostDone; err != nil {
		t.Errorf("agent host: %v", err)
	}
	if ids["false"] != "freshid-3" {
		t.Errorf("run id without --fresh: got %q, want freshid-3", ids["false"])
	}
	if !regexp.MustCompile(`^freshid-3-\d{8}-\d{6}-[0-9a-f]{8}$`).MatchString(ids["true"]) {
		t.Errorf("run id with --fresh: got %q, want freshid-3-YYYYMMDD-HHMMSS-RANDOM as a single-process run's", ids["true"])
	}
}

// noLogprobs stands before a model server and strips the log
// probabilities from its chat replies, as a server without them does:
// every distribution-mode question is then sampled instead.
type noLogprobs struct{ next http.Handler }

func (n noLogprobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	n.next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	var reply map[string]any
	if strings.HasSuffix(r.URL.Path, "/chat/completions") && rec.Code == http.StatusOK && json.Unmarshal(body, &reply) == nil {
		if chs, ok := reply["choices"].([]any); ok {
			for _, c := range chs {
				if m, ok := c.(map[string]any); ok {
					delete(m, "logprobs")
				}
			}
			body, _ = json.Marshal(reply)
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// TestDistributedRunModelsFallback: in distribution mode, a run whose
// questions were sampled instead (a server without log probabilities)
// records the samples and max_tokens that applied to them, over NATS as
// in a single process, and both record one host asking the model.
func TestDistributedRunModelsFallback(t *testing.T) {
	url := natsOnLoopback(t)
	hs := httptest.NewServer(noLogprobs{syntheticModelServer(t, modelserver.Options{Seed: 4})})
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	file := writeScenario(t, dir, "fallback", openaiScenario("fallback", hs.URL, "distribution", 40, "max_tokens = 8")+
		"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n[run]\nshards = 2\n")
	single, distributed := singleThenDistributed(t, url, dir, file, "fallback-5")
	for _, d := range []string{single, distributed} {
		r := readResults(t, d)
		if r.Run == nil || len(r.Run.Models) != 1 {
			t.Fatalf("%s: got run %+v, want one model", d, r.Run)
		}
		m := r.Run.Models[0]
		if m.LLM == nil || m.LLM.Fallbacks == 0 {
			t.Fatalf("%s: no question sampled instead (%+v): the test needs them", d, m.LLM)
		}
		if m.Samples != 50 || m.MaxTokens != 8 || m.Hosts != 1 || m.Concurrency != 32 {
			t.Errorf("%s: got samples %d, max_tokens %d, hosts %d, concurrency %d; want 50, 8, 1, 32", d, m.Samples, m.MaxTokens, m.Hosts, m.Concurrency)
		}
	}
}
