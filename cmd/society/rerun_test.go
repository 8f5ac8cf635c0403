package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm/modelserver"
)

// distRoles starts an agent host and an analysis service for run on the
// NATS server at url, the results going under dir/results; stop stops
// them and reports their errors.
func distRoles(t *testing.T, url, dir, run string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	roles := make(chan error, 2)
	go func() {
		roles <- run_(ctx, "agents", "--nats", url, "--name", "host", "--run", run, "--cache", filepath.Join(dir, "host-cache"))
	}()
	go func() {
		roles <- run_(ctx, "analyze", "--nats", url, "--out", filepath.Join(dir, "results"), "--run", run)
	}()
	return func() {
		cancel()
		for range 2 {
			if err := <-roles; err != nil {
				t.Errorf("role: %v", err)
			}
		}
	}
}

// singleThenDistributed runs the scenario file in one process (results in
// dir/single), then over NATS with the roles of distRoles under run id
// run, and returns the two results directories.
func singleThenDistributed(t *testing.T, url, dir, file, run string) (single, distributed string) {
	t.Helper()
	single = filepath.Join(dir, "single")
	if _, stderr, code := runCLI(t, "run", file, "--quiet", "--out", single, "--cache", filepath.Join(dir, "single-cache")); code != 0 {
		t.Fatalf("single-process run: exit %d\n%s", code, stderr)
	}
	stop := distRoles(t, url, dir, run)
	defer stop()
	if _, stderr, code := runCLI(t, "run", file, "--nats", url, "--quiet", "--cache", filepath.Join(dir, "orch-cache")); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	return single, filepath.Join(dir, "results", run)
}

func run_(ctx context.Context, args ...string) error { return run(ctx, args, io.Discard, io.Discard) }

// rerunScenario is a small sample-mode run against the model server: its
// answers are synthetic whatever the model is called.
func rerunScenario(t *testing.T, dir, url string) string {
	return writeScenario(t, dir, "rerun", openaiScenario("rerun", url, "sample", 60, "max_tokens = 8")+
		"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n[run]\nshards = 3\n")
}

// TestDistributedRerunWritesSameResults: running a finished distributed
// run again, as the README promises, writes the same results again: the
// same synthetic label, model traffic, served model and run block (the
// times of the run that produced the answers), whether the analysis
// service writes them or the orchestrator itself (--out). No field
// differs.
func TestDistributedRerunWritesSameResults(t *testing.T) {
	url := natsOnLoopback(t)
	hs, ms := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	file := rerunScenario(t, dir, hs.URL)
	stop := distRoles(t, url, dir, "rerun-5")
	defer stop()
	out := filepath.Join(dir, "results", "rerun-5")
	orch := func() {
		t.Helper()
		if _, stderr, code := runCLI(t, "run", file, "--nats", url, "--quiet", "--cache", filepath.Join(dir, "orch-cache")); code != 0 {
			t.Fatalf("run: exit %d\n%s", code, stderr)
		}
	}
	orch()
	first, firstReport := readFile(t, filepath.Join(out, "results.json")), readFile(t, filepath.Join(out, "report.md"))
	r := readResults(t, out)
	calls := ms.Stats().Requests
	if r.Run == nil || !r.Run.Synthetic || r.LLM.Calls != calls || calls == 0 {
		t.Fatalf("first run: got run %+v, calls %d; want synthetic, %d calls", r.Run, r.LLM.Calls, calls)
	}

	orch()
	if ms.Stats().Requests != calls {
		t.Errorf("the rerun made %d model calls, want none", ms.Stats().Requests-calls)
	}
	if got := readFile(t, filepath.Join(out, "results.json")); !bytes.Equal(got, first) {
		t.Errorf("results.json of the rerun differs:\n got %s\nwant %s", got, first)
	}
	if got := readFile(t, filepath.Join(out, "report.md")); !bytes.Equal(got, firstReport) {
		t.Errorf("report.md of the rerun differs:\n got %s\nwant %s", got, firstReport)
	}

	own := filepath.Join(dir, "own")
	if _, stderr, code := runCLI(t, "run", file, "--nats", url, "--quiet", "--out", own, "--cache", filepath.Join(dir, "orch-cache")); code != 0 {
		t.Fatalf("run --out: exit %d\n%s", code, stderr)
	}
	if got := readFile(t, filepath.Join(own, "results.json")); !bytes.Equal(got, first) {
		t.Errorf("results.json of the rerun with --out differs:\n got %s\nwant %s", got, first)
	}
}

// TestDistributedRunModels: a distributed run records each model's
// settings as resolved, as a single-process run of the same scenario
// does (its traffic aside, which depends on how the work was spread).
func TestDistributedRunModels(t *testing.T) {
	url := natsOnLoopback(t)
	hs, _ := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	file := rerunScenario(t, dir, hs.URL)
	single, distributed := singleThenDistributed(t, url, dir, file, "rerun-5")
	models := func(dir string) string {
		r := readResults(t, dir)
		if r.Run == nil {
			t.Fatalf("%s: no run block", dir)
		}
		ms := make([]analysis.RunModel, len(r.Run.Models))
		for i, m := range r.Run.Models {
			m.LLM = nil
			ms[i] = m
		}
		b, _ := json.MarshalIndent(ms, "", "  ")
		return string(b)
	}
	want, got := models(single), models(distributed)
	if got != want {
		t.Errorf("run.models of the distributed run:\n%s\nwant the single-process run's:\n%s", got, want)
	}
}

// TestDistributedRerunPlan: the plan block of a rerun of a finished
// distributed run says that its results are complete and that no request
// goes to the model, with the first run's requests as already answered,
// as a single-process rerun's block shows those its reply cache answers;
// the first run's block showed them as requests.
func TestDistributedRerunPlan(t *testing.T) {
	url := natsOnLoopback(t)
	hs, ms := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	file := rerunScenario(t, dir, hs.URL)
	stop := distRoles(t, url, dir, "rerun-5")
	defer stop()
	orch := func() (stdout, stderr string) {
		t.Helper()
		stdout, stderr, code := runCLI(t, "run", file, "--nats", url, "--cache", filepath.Join(dir, "orch-cache"))
		if code != 0 {
			t.Fatalf("run: exit %d\n%s", code, stderr)
		}
		return stdout, stderr
	}
	firstOut, first := orch()
	calls := ms.Stats().Requests
	row := regexp.MustCompile(`(?m)^\s*served\s+sample\s+(\d+)\s+(\d+)\s`)
	if strings.Contains(first, "is done") || !regexp.MustCompile(`(?m)^\s*served\s+sample\s+\d+\s+\d+\s+\d+\s`).MatchString(first) {
		t.Fatalf("first run: want a first run's plan, got\n%s", first)
	}
	// The plan read no cache: it says the hosts' caches may answer.
	if !strings.Contains(first, "over NATS the agent hosts' reply caches and the\ncluster's shared reply bucket answer the prompts they hold") {
		t.Errorf("first run: want the plan to say the hosts' caches may answer its requests, got\n%s", first)
	}
	// The summary and the report say the run went over NATS, and on how
	// many hosts.
	report := string(readFile(t, filepath.Join(dir, "results", "rerun-5", "report.md")))
	const over = "Run rerun-5 over NATS with 1 agent host (results written on "
	if !strings.Contains(firstOut, over) || !strings.Contains(report, over) || strings.Contains(firstOut, "was done already") {
		t.Errorf("first run: want the summary and report.md to say %q, got\n%s\nreport.md:\n%s", over, firstOut, report)
	}
	againOut, again := orch()
	if ms.Stats().Requests != calls {
		t.Errorf("the rerun made %d model calls, want none", ms.Stats().Requests-calls)
	}
	m := row.FindStringSubmatch(again)
	if !strings.Contains(again, "Run rerun-5 is done: its answers are all stored, so its results are complete and none of a first run's") ||
		!strings.Contains(again, "requests to the model  already answered") || m == nil || m[1] != "0" || m[2] == "0" {
		t.Errorf("rerun: want a plan of 0 requests, the first run's already answered, got\n%s", again)
	}
	if strings.Contains(again, "Time:") || strings.Contains(again, "at least") {
		t.Errorf("rerun: want no time in a plan that sends nothing, got\n%s", again)
	}
	// The rerun's summary shows the stored results of the run that
	// answered, and says so, with that run's times.
	r := readResults(t, filepath.Join(dir, "results", "rerun-5"))
	said := fmt.Sprintf("Run rerun-5 was done already: nothing was asked now. Below are its stored results, written again:\n"+
		"the times, calls and tokens they show are those of the run that answered (%s to %s, ", r.Run.Start, r.Run.End)
	if !strings.HasPrefix(againOut, said) || !strings.Contains(againOut, over) {
		t.Errorf("rerun: want the summary to start %q and keep the run line, got\n%s", said, againOut)
	}
}
