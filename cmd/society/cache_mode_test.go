package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
)

// cachedReplies is the number of replies stored in the cache in dir.
func cachedReplies(t *testing.T, dir string) int {
	t.Helper()
	fs, err := llm.OpenFileStore(dir, llm.FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	n, err := fs.Len()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCacheModeFlags: --no-cache creates no cache file and makes every
// call again; --cache-mode read uses the cache but never writes it; a bad
// mode, or --no-cache with another mode, is a usage error.
func TestCacheModeFlags(t *testing.T) {
	hs, srv := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	sc := writeScenario(t, dir, "modes", openaiScenario("modes", hs.URL, "sample", 40, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n")
	calls := func(args ...string) int64 {
		t.Helper()
		before := srv.Stats().Requests
		out := filepath.Join(dir, fmt.Sprint("out", before))
		if _, stderr, code := runCLI(t, append([]string{"run", sc, "--out", out, "--quiet"}, args...)...); code != 0 {
			t.Fatalf("run %v: exit %d\n%s", args, code, stderr)
		}
		return srv.Stats().Requests - before
	}

	off := filepath.Join(dir, "off")
	first := calls("--no-cache", "--cache", off)
	if first == 0 {
		t.Fatal("the run made no model calls")
	}
	if again := calls("--no-cache", "--cache", off); again != first {
		t.Errorf("second --no-cache run: got %d calls, want %d (every call again)", again, first)
	}
	if _, err := os.Stat(off); !os.IsNotExist(err) {
		t.Errorf("--no-cache: got %v for the cache directory, want it never created", err)
	}

	read := filepath.Join(dir, "read")
	if got := calls("--cache-mode", "read", "--cache", read); got != first {
		t.Errorf("--cache-mode read on an empty cache: got %d calls, want %d", got, first)
	}
	if n := cachedReplies(t, read); n != 0 {
		t.Errorf("--cache-mode read: got %d replies stored, want 0", n)
	}
	// Filled by a read-write run, the cache answers a read run.
	if got := calls("--cache", read); got != first {
		t.Errorf("read-write run: got %d calls, want %d", got, first)
	}
	stored := cachedReplies(t, read)
	if got := calls("--cache-mode", "read", "--cache", read); got != 0 {
		t.Errorf("--cache-mode read on a full cache: got %d calls, want 0", got)
	}
	if n := cachedReplies(t, read); n != stored {
		t.Errorf("--cache-mode read: got %d replies stored after, want %d", n, stored)
	}

	for _, args := range [][]string{
		{"run", sc, "--cache-mode", "sometimes"},
		{"run", sc, "--no-cache", "--cache-mode", "read"},
		{"run", sc, "--nats", "nats://127.0.0.1:1", "--no-cache", "--cache-mode", "write"},
		{"agents", "--nats", "nats://127.0.0.1:1", "--cache-mode", "sometimes"},
		{"agents", "--nats", "nats://127.0.0.1:1", "--no-cache", "--cache-mode", "read-write"},
	} {
		if _, stderr, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: got exit %d, want 2 (usage)\n%s", args, code, stderr)
		}
	}
}

// TestCacheSharedRoles: agent hosts share the cluster's reply bucket, and
// the orchestrator keeps its replies on its machine. A run served by one
// host pays for its replies; the same questions asked by a second run,
// served by another host with a cache of its own, cost no call; and after
// the first run, the orchestrator's own cache answers a run without the
// cluster.
func TestCacheSharedRoles(t *testing.T) {
	url := natsOnLoopback(t)
	hs, ms := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	scenario := func(name string) string {
		return writeScenario(t, dir, name, openaiScenario(name, hs.URL, "sample", 40, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n[run]\nshards = 4\n")
	}
	orchCache := filepath.Join(dir, "orchestrator-cache")
	// distributed runs scenario name with one agent host of its own cache
	// and returns the model calls the run made.
	distributed := func(name, host string) int64 {
		t.Helper()
		before := ms.Stats().Requests
		ctx, cancel := context.WithCancel(t.Context())
		hostDone := make(chan error, 1)
		go func() {
			hostDone <- run(ctx, []string{"agents", "--nats", url, "--name", host, "--run", name + "-5",
				"--cache", filepath.Join(dir, host+"-cache")}, io.Discard, io.Discard)
		}()
		_, stderr, code := runCLI(t, "run", scenario(name), "--nats", url, "--out", filepath.Join(dir, name), "--quiet", "--cache", orchCache)
		cancel()
		if err := <-hostDone; err != nil {
			t.Errorf("agent host %s: %v", host, err)
		}
		if code != 0 {
			t.Fatalf("run %s: exit %d\n%s", name, code, stderr)
		}
		return ms.Stats().Requests - before
	}
	first := distributed("share-a", "host-1")
	if first == 0 {
		t.Fatal("the first run made no model calls")
	}
	second := distributed("share-b", "host-2")
	t.Logf("model calls: host-1 %d (empty caches), host-2 %d (its own cache empty, the bucket full)", first, second)
	if second != 0 {
		t.Errorf("second host: got %d model calls, want 0 (every reply in the shared bucket)", second)
	}
	a, b := readResults(t, filepath.Join(dir, "share-a")), readResults(t, filepath.Join(dir, "share-b"))
	if a.Answers != b.Answers || a.Answers.Valid == 0 {
		t.Errorf("got answers %+v from the bucket, want %+v", b.Answers, a.Answers)
	}

	// Without the cluster, the orchestrator's cache answers the same
	// questions.
	before := ms.Stats().Requests
	if _, stderr, code := runCLI(t, "run", scenario("share-c"), "--out", filepath.Join(dir, "share-c"), "--quiet", "--cache", orchCache); code != 0 {
		t.Fatalf("embedded run: exit %d\n%s", code, stderr)
	}
	if got := ms.Stats().Requests - before; got != 0 {
		t.Errorf("embedded run on the orchestrator's cache: got %d model calls, want 0", got)
	}
}

// TestValidateOpensNoCache: validating a scenario with a model builds its
// plan without the model cache: no file is created, and none held by a
// running process is waited for.
func TestValidateOpensNoCache(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home)
	t.Setenv("HOME", home)
	dir := t.TempDir()
	sc := writeScenario(t, dir, "check", openaiScenario("check", "http://127.0.0.1:1", "sample", 40, "")+"[[questionnaires]]\nname = \"pvq40\"\n")
	if _, stderr, code := runCLI(t, "validate", sc); code != 0 {
		t.Fatalf("validate: exit %d\n%s", code, stderr)
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("validate wrote %v under the user's cache directory, want nothing", entries)
	}
}

// TestDistributedCountsCalibration: the requests of a distributed run's
// model-specific calibration (made by the orchestrator) are in results.json
// with the agent hosts', whichever process writes the results: the
// results count what the server served.
func TestDistributedCountsCalibration(t *testing.T) {
	url := natsOnLoopback(t)
	hs, ms := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	file := writeScenario(t, dir, "calib", fmt.Sprintf(`name = "calib"
seed = 5
[population]
size = 40
strategies = ["model-specific"]
calibration = 10
[[models]]
name = "served"
backend = "openai"
base_url = %q
model = "synthetic-respondents"
mode = "distribution"
max_tokens = 8
[[questionnaires]]
name = "pvq40"
items = 12
[analysis]
bootstrap_iterations = 20
null_iterations = 19
[run]
shards = 2
`, hs.URL+"/v1"))
	ctx, cancel := context.WithCancel(t.Context())
	hostDone := make(chan error, 1)
	go func() {
		hostDone <- run(ctx, []string{"agents", "--nats", url, "--name", "host", "--run", "calib-5",
			"--cache", filepath.Join(dir, "host-cache")}, io.Discard, io.Discard)
	}()
	_, stderr, code := runCLI(t, "run", file, "--nats", url, "--out", filepath.Join(dir, "out"), "--cache", filepath.Join(dir, "orch-cache"))
	cancel()
	if err := <-hostDone; err != nil {
		t.Errorf("agent host: %v", err)
	}
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	r := readResults(t, filepath.Join(dir, "out"))
	served := ms.Stats().Requests
	if len(r.Calibration) == 0 {
		t.Fatal("no calibration in the results: the test needs one")
	}
	if r.LLM.Calls != served || served == 0 {
		t.Errorf("results.json: got %d calls, want %d (the server's count, the calibration's included)", r.LLM.Calls, served)
	}
	// The run showed its plan once connected, before any task, with the
	// requests the server then served.
	if plan := strings.Index(stderr, "\nPlan of calib (seed 5): "); plan < 0 || strings.Contains(stderr[:plan], "queueing tasks") ||
		!regexp.MustCompile(`(?m)^\s*served\s+distribution\s+`+strconv.FormatInt(served, 10)+`\s`).MatchString(stderr) {
		t.Errorf("the run's stderr does not start with its plan of %d requests:\n%s", served, stderr)
	}
	// Off a terminal, the calibration in this process and the main run
	// each show progress lines, as a single-process run does.
	for _, run := range []string{"calibration", "calib"} {
		if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d ` + run + `: analysing: \d+/\d+ answers`).MatchString(stderr) {
			t.Errorf("no progress line of the %s analysing in the run's stderr:\n%s", run, stderr)
		}
	}
}

// TestDistributedResultsCountHosts: results written by the analysis service
// count every request the agent hosts made and carry the model server's
// synthetic label, however soon after the last answer they are written:
// hosts record their traffic before each task is acknowledged, and the
// run completes once every task is. The agent host, stopped as Ctrl-C
// stops it (its context cancelled), says in one line what it did: the
// tasks it served, their answers and its model calls.
func TestDistributedResultsCountHosts(t *testing.T) {
	url := natsOnLoopback(t)
	hs, ms := testModelServer(t, modelserver.Options{Seed: 4})
	dir := t.TempDir()
	file := writeScenario(t, dir, "hosts", openaiScenario("hosts", hs.URL, "distribution", 60, "max_tokens = 8")+
		"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n[run]\nshards = 3\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	roles := make(chan error, 2)
	var hostOut, hostErr, anaOut, anaErr bytes.Buffer
	go func() {
		roles <- run(ctx, []string{"agents", "--nats", url, "--name", "host", "--run", "hosts-5", "--cache", filepath.Join(dir, "host-cache")}, &hostOut, &hostErr)
	}()
	go func() {
		roles <- run(ctx, []string{"analyze", "--nats", url, "--out", filepath.Join(dir, "results"), "--run", "hosts-5", "--name", "svc"}, &anaOut, &anaErr)
	}()
	_, stderr, code := runCLI(t, "run", file, "--nats", url, "--quiet", "--cache", filepath.Join(dir, "orch-cache"))
	cancel()
	for range 2 {
		if err := <-roles; err != nil {
			t.Errorf("role: %v", err)
		}
	}
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	r := readResults(t, filepath.Join(dir, "results", "hosts-5"))
	served := ms.Stats().Requests
	if r.LLM.Calls != served || served == 0 {
		t.Errorf("results.json: got %d calls, want %d (the server's count)", r.LLM.Calls, served)
	}
	if r.Run == nil || !r.Run.Synthetic || len(r.Models) != 1 || !r.Models[0].Synthetic {
		t.Errorf("results.json: got run %+v, models %+v; want the model server's answers labelled synthetic", r.Run, r.Models)
	}
	m := regexp.MustCompile(`^agent host host: (\d+) tasks served, 0 unusable messages rejected, (\d+) answers, (\d+) model calls\n$`).FindStringSubmatch(hostOut.String())
	if m == nil {
		t.Fatalf("the agent host's output: got %q, want its summary line", hostOut.String())
	}
	// A task delivered again is served again: at least every answer.
	if tasks, _ := strconv.Atoi(m[1]); tasks < 3 {
		t.Errorf("summary: %d tasks served, want at least one per shard (3)", tasks)
	}
	if answers, _ := strconv.ParseInt(m[2], 10, 64); answers < r.Answers.Expected || answers == 0 {
		t.Errorf("summary: %d answers, want at least the run's %d", answers, r.Answers.Expected)
	}
	if calls, _ := strconv.ParseInt(m[3], 10, 64); calls != served {
		t.Errorf("summary: %d model calls, want %d (the server's count)", calls, served)
	}
	// The log, read apart from the summary line, ends with the same
	// counts; the analysis service's summary and log say what it wrote.
	last := func(log string) string {
		lines := strings.Split(strings.TrimSpace(log), "\n")
		return lines[len(lines)-1]
	}
	if l := last(hostErr.String()); !strings.Contains(l, `msg="agent host stopped"`) || !strings.Contains(l, fmt.Sprintf("tasks_served=%s unusable_messages=0 answers=%s model_calls=%s", m[1], m[2], m[3])) {
		t.Errorf("the agent host's log: got last line %q, want it to end with the summary's counts", l)
	}
	if got, want := anaOut.String(), "analysis service svc: 1 results written, 0 unusable messages rejected\n"; got != want {
		t.Errorf("the analysis service's output: got %q, want %q", got, want)
	}
	if l := last(anaErr.String()); !strings.Contains(l, `msg="analysis service stopped"`) || !strings.Contains(l, "results_written=1 unusable_messages=0") {
		t.Errorf("the analysis service's log: got last line %q, want it to end with its counts", l)
	}
}

// natsOnLoopback starts an in-process NATS server listening on a free
// loopback port for the test and returns its URL.
func natsOnLoopback(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	srv, err := bus.StartServer(bus.ServerOptions{Listen: true, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}
