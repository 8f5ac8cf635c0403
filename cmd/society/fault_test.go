package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/results"
)

// The fault tests run the roles of a distributed run as real separate
// processes on loopback: a nats-server built from the module this program
// depends on, and the society binary built from this tree. They kill and
// restart processes at points chosen by the progress the analysis service
// publishes, never by sleeping, and check that the run ends with exactly
// the answers an undisturbed run gets.

var faultBins struct {
	once           sync.Once
	society, nats  string
	err            error
	societyBuildIn time.Duration
}

// binaries builds (once per test binary) the society binary of this tree
// and the nats-server of the version in go.mod, which is cached in the
// temporary directory across test runs.
func binaries(t *testing.T) (society, natsServer string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs separate processes")
	}
	faultBins.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "society-fault-test")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			faultBins.err = err
			return
		}
		// Binaries of earlier runs of this test are stale.
		old, _ := filepath.Glob(filepath.Join(dir, "society-*"))
		for _, f := range old {
			if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) > time.Hour {
				os.Remove(f)
			}
		}
		version := "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, d := range bi.Deps {
				if d.Path == "github.com/nats-io/nats-server/v2" {
					version = d.Version
				}
			}
		}
		ns := filepath.Join(dir, "nats-server-"+version)
		if _, err := os.Stat(ns); err != nil {
			tmp := fmt.Sprintf("%s.%d", ns, os.Getpid())
			if out, err := exec.Command("go", "build", "-o", tmp, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
				faultBins.err = fmt.Errorf("build nats-server: %v\n%s", err, out)
				return
			}
			if err := os.Rename(tmp, ns); err != nil {
				faultBins.err = err
				return
			}
		}
		soc := filepath.Join(dir, fmt.Sprintf("society-%d", os.Getpid()))
		start := time.Now()
		if out, err := exec.Command("go", "build", "-o", soc, ".").CombinedOutput(); err != nil {
			faultBins.err = fmt.Errorf("build society: %v\n%s", err, out)
			return
		}
		faultBins.society, faultBins.nats, faultBins.societyBuildIn = soc, ns, time.Since(start)
	})
	if faultBins.err != nil {
		t.Fatal(faultBins.err)
	}
	return faultBins.society, faultBins.nats
}

// proc is a child process whose output is kept for the test's log.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// await returns the first line the process writes on stderr that
// contains want; the process ending first, or the test's deadline, fails
// the test.
func (p *proc) await(t *testing.T, want string) string {
	t.Helper()
	return p.stderr.await(t, p.name, want, p.done)
}

// kill ends the process at once (kill -9) and waits for it.
func (p *proc) kill() {
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop asks the process to shut down (SIGTERM) and waits for it.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	// A busy machine may take its time to stop; a process that never
	// does is caught by the test's own deadline.
	select {
	case <-p.done:
	case <-t.Context().Done():
		t.Errorf("%s did not stop after SIGTERM before the test ended", p.name)
		p.kill()
	}
}

// wait waits for the process to end on its own, however long a busy
// machine makes it take; the test's own deadline bounds the wait.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-t.Context().Done():
		t.Fatalf("%s did not finish before the test ended", p.name)
		return nil
	}
}

// cluster is one test's processes around one nats-server.
type cluster struct {
	t          *testing.T
	dir        string
	society    string
	natsBin    string
	port       int
	nats       *proc
	env        []string
	nc         *nats.Conn
	natsStarts int
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	soc, ns := binaries(t)
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, society: soc, natsBin: ns, port: freePort(t)}
	// Each test's roles share a model cache of their own, as roles on one
	// machine would, and none from an earlier run. In memory where the
	// machine has a tmpfs: a sample-mode cache holds a file per answer.
	cache := filepath.Join(dir, "cache")
	if d, err := os.MkdirTemp("/dev/shm", "society-fault-cache-"); err == nil {
		cache = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	c.env = append(os.Environ(), "XDG_CACHE_HOME="+cache, "HOME="+dir)
	c.startNATS()
	nc, err := nats.Connect(c.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c.nc = nc
	return c
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (c *cluster) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", c.port) }

func (c *cluster) start(name, bin string, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir, p.cmd.Env = c.dir, c.env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	c.t.Cleanup(func() {
		p.kill()
		if c.t.Failed() || os.Getenv("SOCIETY_FAULT_LOGS") != "" {
			c.t.Logf("--- %s stdout:\n%s\n--- %s stderr:\n%s", name, tail(p.stdout.String()), name, tail(p.stderr.String()))
		}
	})
	return p
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = append([]string{"..."}, lines[len(lines)-40:]...)
	}
	return strings.Join(lines, "\n")
}

// startNATS starts the server (again) on the cluster's port and store, and
// waits until JetStream answers.
func (c *cluster) startNATS() {
	c.t.Helper()
	c.natsStarts++
	c.nats = c.start(fmt.Sprintf("nats-server#%d", c.natsStarts), c.natsBin, "-js", "-sd", filepath.Join(c.dir, "store"),
		"-p", strconv.Itoa(c.port), "-a", "127.0.0.1")
	// The server says it is ready once JetStream has recovered its store
	// and clients are accepted, however long a busy machine takes; then
	// JetStream must answer.
	c.nats.await(c.t, "Server is ready")
	nc, err := nats.Connect(c.url(), nats.Timeout(untilDeadline(c.t)))
	if err != nil {
		c.t.Fatalf("nats-server ready but not answering: %v\n%s", err, c.nats.stderr.String())
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.AccountInfo(c.t.Context())
	}
	if err != nil {
		c.t.Fatalf("nats-server ready but JetStream not answering: %v\n%s", err, c.nats.stderr.String())
	}
}

// untilDeadline is the time left before the test's deadline, for the
// timeouts of clients that take no context: a busy machine may make them
// wait, the deadline alone ends the wait.
func untilDeadline(t *testing.T) time.Duration {
	if d, ok := t.Deadline(); ok {
		return time.Until(d)
	}
	return time.Hour
}

func (c *cluster) role(name string, args ...string) *proc {
	c.t.Helper()
	return c.start(name, c.society, args...)
}

func (c *cluster) analysis(name string) *proc {
	return c.role(name, "analyze", "--nats", c.url(), "--out", "dist", "--name", "analysis")
}

func (c *cluster) host(name string) *proc {
	return c.role(name, "agents", "--nats", c.url(), "--name", name)
}

func (c *cluster) orchestrate(scenario string, extra ...string) *proc {
	return c.role("orchestrator", append([]string{"run", scenario, "--nats", c.url(), "--ack-wait", "1s", "--quiet"}, extra...)...)
}

// progressWatch follows the analysis service's progress on a run.
type progressWatch struct {
	mu   sync.Mutex
	last bus.Progress
	grew chan struct{} // closed at the next report; nil when nobody waits
}

func (c *cluster) watchProgress(run string) *progressWatch {
	c.t.Helper()
	w := &progressWatch{}
	sub, err := c.nc.Subscribe(bus.Subjects{Run: run}.Results(), func(m *nats.Msg) {
		if p, err := bus.DecodeProgress(m.Data); err == nil {
			w.mu.Lock()
			if p.Valid+p.Invalid >= w.last.Valid+w.last.Invalid {
				w.last = p
			}
			if w.grew != nil {
				close(w.grew)
				w.grew = nil
			}
			w.mu.Unlock()
		}
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { sub.Unsubscribe() })
	return w
}

// reset forgets what was seen (before a restarted analysis reports anew).
func (w *progressWatch) reset() {
	w.mu.Lock()
	w.last = bus.Progress{}
	w.mu.Unlock()
}

// await waits until the analysis reports holding at least frac of the
// run's answers, looking again at each report; the test's own deadline
// bounds the wait.
func (w *progressWatch) await(t *testing.T, frac float64) bus.Progress {
	t.Helper()
	ctx := boundedContext(t)
	for {
		w.mu.Lock()
		p := w.last
		if w.grew == nil {
			w.grew = make(chan struct{})
		}
		grew := w.grew
		w.mu.Unlock()
		if p.Expected > 0 && float64(p.Valid+p.Invalid) >= frac*float64(p.Expected) {
			return p
		}
		select {
		case <-grew:
		case <-ctx.Done():
			t.Fatalf("the analysis did not report %.0f%% of the answers before the test ended", 100*frac)
		}
	}
}

func (c *cluster) writeScenario(name, text string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// syntheticScenario is small and fast: 2000 agents in 8 shards answering
// two instruments on the synthetic respondents.
const syntheticScenario = `name = "fault-synthetic"
seed = 11

[population]
size = 2000
strategies = ["h-np", "uniform"]

[[questionnaires]]
name = "pvq40"

[[questionnaires]]
name = "bfi2"

[run]
shards = 8
`

// slowScenario asks a model server over the OpenAI API, one completion per
// answer, so that a run lasts long enough (seconds, bounded by the server's
// latency) to be hit in the middle. The request seed makes the server's
// answers a function of the request alone, so every run gets the same.
func slowScenario(baseURL string) string {
	return fmt.Sprintf(`name = "fault-slow"
seed = 7

[population]
size = 2000

[[models]]
name = "served"
backend = "openai"
base_url = %q
model = "synthetic"
mode = "sample"
samples = 50
seed = 3
concurrency = 8
timeout = "1s"

[[questionnaires]]
name = "pvq40"
items = 12

[run]
shards = 16
`, baseURL)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameAnswers checks that a distributed run's results directory holds
// exactly the answers of the reference run, and the same results apart
// from the model-traffic counts (which depend on how the work was spread
// and on the cache, not on the answers).
func sameAnswers(t *testing.T, want, got string) {
	t.Helper()
	for _, f := range []string{"answers.csv", "invalid.jsonl", "population.csv", "scenario.toml", "prompts.csv"} {
		if !bytes.Equal(readFile(t, filepath.Join(want, f)), readFile(t, filepath.Join(got, f))) {
			t.Errorf("%s differs from the undisturbed run's", f)
		}
	}
	strip := func(path string) string {
		var m map[string]any
		if err := json.Unmarshal(readFile(t, path), &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "llm")
		delete(m, "run") // times, host, and traffic as above
		// Each model's traffic, and what its server said about itself,
		// are known where the clients ran: agent hosts report them about
		// once a second, so a distributed run may lack the last second.
		delete(m, "note")
		for _, key := range []string{"model_runs", "models"} {
			list, _ := m[key].([]any)
			for _, x := range list {
				if e, ok := x.(map[string]any); ok {
					for _, k := range []string{"llm", "synthetic", "served_model", "system_fingerprint"} {
						delete(e, k)
					}
				}
			}
		}
		b, _ := json.MarshalIndent(m, "", " ")
		return string(b)
	}
	if a, b := strip(filepath.Join(want, "results.json")), strip(filepath.Join(got, "results.json")); a != b {
		t.Errorf("results.json differs from the undisturbed run's (model-traffic counts aside):\n got %s\nwant %s", b, a)
	}
	var r struct {
		Answers struct{ Expected, Valid, Invalid int64 } `json:"answers"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(got, "results.json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Answers.Expected == 0 || r.Answers.Valid+r.Answers.Invalid != r.Answers.Expected {
		t.Errorf("got answers %+v, want valid + invalid = expected", r.Answers)
	}
}

// TestDistributedMatchesSingleProcess: an orchestrator, two agent hosts
// and an analysis service as four processes produce results.json byte for
// byte equal to the single-process run; garbage on every subject a role
// reads is rejected and counted; running the finished scenario again
// queues no task and writes the same results; --resume names a run.
func TestDistributedMatchesSingleProcess(t *testing.T) {
	c := newCluster(t)
	scen := c.writeScenario("synthetic.toml", syntheticScenario)
	single := c.role("single", "run", scen, "--out", "single", "--quiet")
	if err := single.wait(t); err != nil {
		t.Fatalf("single-process run: %v\n%s", err, single.stderr.String())
	}

	ana := c.analysis("analysis")
	h1, h2 := c.host("host-1"), c.host("host-2")
	run := "fault-synthetic-11"
	subj := bus.Subjects{Run: run}

	// Garbage in the registry and on the run's task and answer subjects
	// (the streams made ahead of the orchestrator, as a version with other
	// formats would have left them).
	js, err := jetstream.New(c.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := bus.OpenRegistry(ctx, js, bus.RegistryOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "not-a-run", []byte("\x00garbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureAnswerStream(ctx, js, subj, bus.StreamOptions{File: true, MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureTaskQueue(ctx, js, subj, bus.TaskQueueOptions{File: true, AckWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{subj.Tasks(0), subj.Answers(0)} {
		if _, err := js.Publish(ctx, s, []byte(`{"v":99,"what":"from another version"}`)); err != nil {
			t.Fatal(err)
		}
	}

	orch := c.orchestrate(scen)
	if err := orch.wait(t); err != nil {
		t.Fatalf("orchestrator: %v", err)
	}
	// The run blocks (times, hosts) differ; the rest is the same.
	want := results.WithoutRun(readFile(t, filepath.Join(c.dir, "single", "results.json")))
	got := results.WithoutRun(readFile(t, filepath.Join(c.dir, "dist", run, "results.json")))
	if !bytes.Equal(got, want) {
		t.Fatalf("results.json of the distributed run differs from the single-process run's:\n got %s\nwant %s", got, want)
	}
	sameAnswers(t, filepath.Join(c.dir, "single"), filepath.Join(c.dir, "dist", run))
	if !strings.Contains(orch.stdout.String(), filepath.Join(c.dir, "dist", run)) {
		t.Errorf("the orchestrator does not say where the results are:\n%s", orch.stdout.String())
	}

	// The same scenario again: everything is stored, nothing is queued.
	if err := os.RemoveAll(filepath.Join(c.dir, "dist", run)); err != nil {
		t.Fatal(err)
	}
	again := c.orchestrate(scen)
	if err := again.wait(t); err != nil {
		t.Fatalf("second orchestrator: %v", err)
	}
	if strings.Contains(again.stderr.String(), "queueing tasks") {
		t.Errorf("running a finished scenario again queued tasks:\n%s", again.stderr.String())
	}
	if got := results.WithoutRun(readFile(t, filepath.Join(c.dir, "dist", run, "results.json"))); !bytes.Equal(got, want) {
		t.Error("results.json of the rerun differs")
	}
	// --resume by id, without the scenario; with --out the orchestrator
	// writes the results itself, from the answers it followed.
	resumed := c.role("resume", "run", "--resume", run, "--nats", c.url(), "--out", "own", "--quiet")
	if err := resumed.wait(t); err != nil {
		t.Fatalf("run --resume: %v", err)
	}
	if got := results.WithoutRun(readFile(t, filepath.Join(c.dir, "own", "results.json"))); !bytes.Equal(got, want) {
		t.Error("results.json written by the orchestrator differs")
	}

	for _, p := range []*proc{ana, h1, h2} {
		p.stop(t)
		if p.err != nil {
			t.Errorf("%s exited with %v", p.name, p.err)
		}
	}
	var written, anaBad int
	if _, err := fmt.Sscanf(ana.stdout.String(), "analysis service analysis: %d results written, %d unusable", &written, &anaBad); err != nil {
		t.Errorf("analysis summary %q: %v", ana.stdout.String(), err)
	}
	if written < 2 || anaBad < 2 {
		t.Errorf("analysis: got %d results written and %d messages rejected, want at least 2 of each (a record, an answer)", written, anaBad)
	}
	var served, bad, answers int
	for _, h := range []*proc{h1, h2} {
		var n, b, a int
		if _, err := fmt.Sscanf(h.stdout.String(), "agent host "+h.name+": %d tasks served, %d unusable messages rejected, %d answers", &n, &b, &a); err != nil {
			t.Errorf("%s summary %q: %v", h.name, h.stdout.String(), err)
		}
		served, bad, answers = served+n, bad+b, answers+a
	}
	if served != 2*8 {
		t.Errorf("got %d tasks served by the two hosts, want %d (2 instruments x 8 shards, once)", served, 2*8)
	}
	if res := readResults(t, filepath.Join(c.dir, "own")); int64(answers) != res.Answers.Expected {
		t.Errorf("got %d answers from the two hosts, want the run's %d, once", answers, res.Answers.Expected)
	}
	if bad < 3 {
		t.Errorf("got %d messages rejected by the hosts, want at least 3 (the record, twice, and the task)", bad)
	}
}

// modelServer starts "society model-server" on a loopback port the system
// picks and returns its base URL, which it prints once it listens.
func (c *cluster) modelServer(args ...string) string {
	c.t.Helper()
	p := c.role("model-server", append([]string{"model-server", "--addr", "127.0.0.1:0"}, args...)...)
	// It says where it listens once it does.
	line := p.stdout.await(c.t, p.name, " on http://", p.done)
	return line[strings.LastIndex(line, " on ")+len(" on "):]
}

// TestFaults hits a distributed run in the middle, once per fault, and
// checks that it ends with exactly the answers of an undisturbed
// single-process run against the same model server.
func TestFaults(t *testing.T) {
	ref := newCluster(t)
	// The server's latency, not the machine, sets the pace: about 530
	// requests of 25 ms, 4 at a time.
	baseURL := ref.modelServer("--latency", "25ms", "--slots", "4")
	scen := slowScenario(baseURL)
	single := ref.role("single", "run", ref.writeScenario("slow.toml", scen), "--out", "single", "--quiet")
	if err := single.wait(t); err != nil {
		t.Fatalf("single-process run: %v\n%s", err, single.stderr.String())
	}
	want := filepath.Join(ref.dir, "single")
	const run = "fault-slow-7"

	// midRun waits until the analysis holds a quarter of the answers, and
	// checks that the run is not over yet.
	midRun := func(t *testing.T, w *progressWatch) {
		t.Helper()
		p := w.await(t, 0.25)
		if p.Valid+p.Invalid >= p.Expected {
			t.Fatalf("the run was over before the fault (%d of %d answers): make it slower", p.Valid+p.Invalid, p.Expected)
		}
		t.Logf("fault at %d of %d answers", p.Valid+p.Invalid, p.Expected)
	}

	t.Run("analysis killed", func(t *testing.T) {
		c := newCluster(t)
		scen := c.writeScenario("slow.toml", scen)
		w := c.watchProgress(run)
		ana := c.analysis("analysis#1")
		c.host("host-1")
		c.host("host-2")
		orch := c.orchestrate(scen)
		midRun(t, w)
		ana.kill()
		w.reset()
		c.analysis("analysis#2")
		if err := orch.wait(t); err != nil {
			t.Fatalf("orchestrator: %v", err)
		}
		sameAnswers(t, want, filepath.Join(c.dir, "dist", run))
	})

	t.Run("agent host killed", func(t *testing.T) {
		c := newCluster(t)
		scen := c.writeScenario("slow.toml", scen)
		w := c.watchProgress(run)
		c.analysis("analysis")
		h1 := c.host("host-1")
		orch := c.orchestrate(scen)
		// host-1 alone holds tasks in hand when it dies; host-2 joins late
		// and must get them.
		midRun(t, w)
		h2 := c.host("host-2")
		h1.kill()
		if err := orch.wait(t); err != nil {
			t.Fatalf("orchestrator: %v", err)
		}
		sameAnswers(t, want, filepath.Join(c.dir, "dist", run))
		if !strings.Contains(h2.stderr.String(), "task delivered again") {
			t.Errorf("host-2 got none of the killed host's tasks:\n%s", tail(h2.stderr.String()))
		}
	})

	t.Run("nats server killed and restarted", func(t *testing.T) {
		c := newCluster(t)
		scen := c.writeScenario("slow.toml", scen)
		w := c.watchProgress(run)
		c.analysis("analysis")
		c.host("host-1")
		c.host("host-2")
		orch := c.orchestrate(scen)
		midRun(t, w)
		c.nats.kill()
		c.startNATS()
		if err := orch.wait(t); err != nil {
			t.Fatalf("orchestrator: %v", err)
		}
		sameAnswers(t, want, filepath.Join(c.dir, "dist", run))
	})
}

// TestFaultyModelServer: a model server that fails 30% of requests (20%
// errors, 5% hung requests, 5% unreadable answers) costs time, not
// answers: the run completes, valid + invalid = expected, and every
// invalid answer is kept with its raw text and the reason.
func TestFaultyModelServer(t *testing.T) {
	c := newCluster(t)
	baseURL := c.modelServer("--latency", "2ms", "--error-rate", "0.2", "--timeout-rate", "0.05", "--garbage-rate", "0.05")
	scen := strings.Replace(slowScenario(baseURL), `timeout = "1s"`, `timeout = "300ms"`, 1)
	scen = strings.Replace(scen, "size = 2000", "size = 1000", 1)
	c.analysis("analysis")
	c.host("host-1")
	c.host("host-2")
	orch := c.orchestrate(c.writeScenario("faulty.toml", scen))
	if err := orch.wait(t); err != nil {
		t.Fatalf("orchestrator: %v", err)
	}
	dir := filepath.Join(c.dir, "dist", "fault-slow-7")
	var r struct {
		Answers struct{ Expected, Valid, Invalid int64 } `json:"answers"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "results.json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Answers.Expected != 1000*12 || r.Answers.Valid+r.Answers.Invalid != r.Answers.Expected {
		t.Fatalf("got answers %+v, want valid + invalid = expected = %d", r.Answers, 1000*12)
	}
	if r.Answers.Invalid == 0 {
		t.Error("got no invalid answers from a server that sends 5% garbage")
	}
	lines := strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dir, "invalid.jsonl")))), "\n")
	if int64(len(lines)) != r.Answers.Invalid {
		t.Errorf("got %d lines in invalid.jsonl, want %d", len(lines), r.Answers.Invalid)
	}
	for _, l := range lines {
		// An empty reply is a raw text too; the key must be there.
		var iv struct {
			Raw    *string `json:"raw"`
			Reason string  `json:"reason"`
		}
		if err := json.Unmarshal([]byte(l), &iv); err != nil || iv.Raw == nil || iv.Reason == "" {
			t.Errorf("invalid answer without its raw text and reason: %s", l)
			break
		}
	}
	t.Logf("answers: %+v", r.Answers)
}

// TestDeadTaskFailsRun: a model endpoint that refuses the scenario's model
// (a misconfigured server: no retry can mend it) makes every delivery of a
// task fail; after --max-deliver deliveries the task is a dead letter and
// the orchestrator exits 1 naming it.
// TestUnauthorizedFailsDistributedRun runs against an endpoint that
// rejects the key: the run fails at the first delivery of the first task,
// with the server's message, instead of after every redelivery.
func TestUnauthorizedFailsDistributedRun(t *testing.T) {
	var calls atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","code":"invalid_api_key"}}`)
	}))
	t.Cleanup(hs.Close)
	c := newCluster(t)
	scen := strings.Replace(slowScenario(hs.URL+"/v1"), "size = 2000", "size = 200", 1)
	c.analysis("analysis")
	c.host("host-1")
	start := time.Now()
	orch := c.orchestrate(c.writeScenario("unauthorized.toml", scen), "--max-deliver", "5")
	err := orch.wait(t)
	t.Logf("the run failed %v after it started, after %d requests", time.Since(start), calls.Load())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("orchestrator: got %v, want exit status 1", err)
	}
	msg := orch.stderr.String()
	for _, want := range []string{"after 1 deliveries", "status 401: Incorrect API key provided", hs.URL + "/v1/chat/completions"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the run's error lacks %q:\n%s", want, tail(msg))
		}
	}
}

func TestDeadTaskFailsRun(t *testing.T) {
	c := newCluster(t)
	baseURL := c.modelServer("--models", "another-model")
	scen := strings.Replace(slowScenario(baseURL), "size = 2000", "size = 200", 1)
	c.analysis("analysis")
	c.host("host-1")
	orch := c.orchestrate(c.writeScenario("dead.toml", scen), "--max-deliver", "2")
	err := orch.wait(t)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("orchestrator: got %v, want exit status 1", err)
	}
	msg := orch.stderr.String()
	// The model server does not serve the model: no delivery can mend
	// that, so the task is dead at its first delivery, and the error
	// carries the server's own message.
	for _, want := range []string{"task served/pvq40", "after 1 deliveries", "host-1", `status 404: the model "synthetic" does not exist`} {
		if !strings.Contains(msg, want) {
			t.Errorf("the run's error does not name the dead task (%q):\n%s", want, tail(msg))
		}
	}
	// The registry says so too, for every role and a later resume.
	js, err := jetstream.New(c.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	reg, err := bus.OpenRegistry(ctx, js, bus.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, _, ok, err := reg.Get(ctx, "fault-slow-7")
	if err != nil || !ok || rec.State != bus.RunFailed || !strings.Contains(rec.Error, "deliveries") {
		t.Errorf("got record %+v (%v), want the run failed with the dead task's error", rec, err)
	}
}
