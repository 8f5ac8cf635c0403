package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/metrics/promtest"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// writeWatchedScenario writes a PVQ-40 scenario of size agents under the
// given strategies, analysed against one reference with a small bootstrap
// (the analysis is not what these tests watch), and returns its path.
func writeWatchedScenario(t *testing.T, name string, size int, strategies ...string) string {
	t.Helper()
	return writeScenarioText(t, name, size, "", strategies...)
}

// writeScenarioText is writeWatchedScenario with extra TOML appended.
func writeScenarioText(t *testing.T, name string, size int, extra string, strategies ...string) string {
	t.Helper()
	src := fmt.Sprintf(`name = %q
seed = 7
[population]
size = %d
strategies = ["%s"]
[[questionnaires]]
name = "pvq40"
[analysis]
references = ["pvq40_smacof_mrat"]
bootstrap = "paper"
bootstrap_iterations = 10
bootstrap_size = 200
null_iterations = 19
`, name, size, strings.Join(strategies, `", "`)) + extra
	path := filepath.Join(t.TempDir(), name+".toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// gauge reads the value of the series of family name whose labels include
// want; ok is false when there is none.
func gathered(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			return gatheredValue(m), true
		}
	}
	return 0, false
}

func gatheredValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return math.NaN()
}

// TestLiveSimilarity follows a run with the live figures and checks them
// against the run's own results: with every agent in the sample the values
// similarity so far, once every answer is in, must equal results.json's;
// with a third of the agents it must be close to it. The agents must all
// be idle once every answer is in, and finished after the run.
func TestLiveSimilarity(t *testing.T) {
	sc, err := scenarios.Open(writeWatchedScenario(t, "live", 2000, "uniform", "h-np"))
	if err != nil {
		t.Fatal(err)
	}
	type follower struct {
		name      string
		tolerance float64
		reg       *prometheus.Registry
		live      *metrics.Live
	}
	// One run, followed by two observers that sample differently; the
	// first also reads the answer backlog once while answers arrive.
	var pendingOnce sync.Once
	var pendingErr error
	var fs []follower
	for _, c := range []struct {
		name      string
		sampleMax int
		tolerance float64
	}{
		{"every agent", 1 << 20, 1e-9},
		{"a third of the agents", 1100, 0.05},
	} {
		reg := prometheus.NewRegistry()
		fs = append(fs, follower{c.name, c.tolerance, reg, metrics.NewLive(metrics.New(reg, metrics.BuildInfo{}), c.sampleMax)})
	}
	obs := sim.Observers{fs[0].live, fs[1].live, batchObserver(func(*agent.Batch) {
		pendingOnce.Do(func() { pendingErr = fs[0].live.Refresh(context.Background()) })
	})}
	res, err := runScenario(context.Background(), runConfig{Scenario: sc, Out: t.TempDir(), Log: io.Discard, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	// The pool holds every agent any strategy needs: more than the
	// population size when strategies differ.
	agents := float64(res.Outcome.Results.Answers.Expected / 40)
	if agents <= 2000 {
		t.Fatalf("got %v agents in the pool, want more than the 2000 of one strategy", agents)
	}
	if pendingErr != nil {
		t.Errorf("answer backlog during the run: %v", pendingErr)
	}
	ref := sc.Analysis.References[0]
	for _, f := range fs {
		t.Run(f.name, func(t *testing.T) {
			_ = f.live.Refresh(context.Background()) // the backlog is gone with the run
			checked := 0
			for _, row := range res.Outcome.Results.ValueStructure {
				if row.Reference != ref {
					continue
				}
				got, ok := gathered(t, f.reg, "society_values_similarity", map[string]string{"model": row.Model, "strategy": row.Strategy, "reference": ref})
				if !ok {
					t.Errorf("%s/%s: no live values similarity", row.Model, row.Strategy)
					continue
				}
				if want := float64(row.ValuesSimilarity); math.Abs(got-want) > f.tolerance {
					t.Errorf("%s/%s: got live similarity %.6f, want %.6f ± %g", row.Model, row.Strategy, got, want, f.tolerance)
				}
				checked++
			}
			if checked != 2 {
				t.Errorf("checked %d strategies, want 2", checked)
			}
			for state, want := range map[string]float64{metrics.StateIdle: agents, metrics.StateAnswering: 0, metrics.StateFinished: 0} {
				if got, _ := gathered(t, f.reg, "society_agents", map[string]string{"state": state}); got != want {
					t.Errorf("before finish: %s agents: got %v, want %v", state, got, want)
				}
			}
			if got, _ := gathered(t, f.reg, "society_tasks_published_total", nil); got <= 0 {
				t.Errorf("tasks published: got %v, want some", got)
			}
			f.live.Finish(res.Outcome)
			if got, _ := gathered(t, f.reg, "society_agents", map[string]string{"state": metrics.StateFinished}); got != agents {
				t.Errorf("after finish: finished agents: got %v, want %v", got, agents)
			}
		})
	}
}

// TestRunServesMetrics is the user's view: `society run --metrics` scraped
// by a real Prometheus (Debian's package; CI installs it) every 200ms. Every
// panel of the dashboard must return data, except the few whose metrics a
// questionnaire run on synthetic respondents cannot produce, and the final
// answer counters must equal results.json.
func TestRunServesMetrics(t *testing.T) {
	promtest.Require(t)
	scen := writeScenarioText(t, "watched", 20000, "[games.paired_charity]\nrounds = 3\nstrategy = \"h-np\"\n", "h-np")
	out := filepath.Join(t.TempDir(), "out")
	addr := promtest.FreeAddr(t)
	// Prometheus scrapes the run through a proxy that tells the test of
	// every scrape.
	var scr scrapes
	files, err := metrics.DeployFiles(metrics.DeployOptions{Target: scr.proxy(t, addr), ScrapeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, string(files[metrics.PrometheusConfigFile]))
	// The run starts once Prometheus scrapes, so that it sees the run's
	// beginning: target discovery is applied a few seconds after start.
	if !scr.await(boundedContext(t), nil, 1) {
		t.Fatal("prometheus scraped nothing before the test ended")
	}

	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	errc := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		errc <- run(ctx, []string{"run", scen, "--metrics", addr, "--metrics-linger", "5m", "--out", out, "--quiet"}, &stdout, &stderr)
		close(ended)
	}()
	defer func() {
		cancel() // ends the linger
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("run: %v\n%s", err, stderr.String())
			}
		case <-t.Context().Done():
			t.Error("run did not return after its context was cancelled")
		}
	}()

	// The results are written, and the final values set, before the run
	// says it lingers.
	stderr.await(t, "run", "serving final metrics", ended)
	res := readResults(t, out)

	// The final counters reach Prometheus with the next scrapes: look again
	// at each scrape, which begins once the one before it is stored.
	want := map[string]float64{"valid": float64(res.Answers.Valid), "invalid": float64(res.Answers.Invalid)}
	var got map[string]float64
	for wait := boundedContext(t); scr.await(wait, scr.counts(), 1); {
		series, err := prom.Query(ctx, "sum by (outcome) (society_answers_total)", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]float64{}
		for _, s := range series {
			got[s.Metric["outcome"]] = s.Last
		}
		// The similarity gauges are set when the run's results are known:
		// wait for them too, so that a run shorter than the live refresh
		// still shows them.
		sim, err := prom.Query(ctx, "society_values_similarity", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got["valid"] == want["valid"] && got["invalid"] == want["invalid"] && len(got) == 2 && len(sim) > 0 {
			break
		}
	}
	if got["valid"] != want["valid"] || got["invalid"] != want["invalid"] || len(got) != 2 {
		t.Errorf("society_answers_total by outcome: got %v, want %v (results.json)", got, want)
	}
	if res.Answers.Valid+res.Answers.Invalid != res.Answers.Expected || res.Answers.Expected < 20000*40 {
		t.Errorf("results.json: got answers %+v, want valid + invalid = expected >= %d", res.Answers, 20000*40)
	}

	// Panels that a questionnaire run on synthetic respondents leaves
	// empty, each with its reason. metrics.TestDashboardOnPrometheus feeds
	// them all and checks that they are not empty there.
	expectEmpty := []struct{ metric, why string }{
		{"society_model_", "synthetic respondents answer in process: no requests to a model endpoint"},
		{"society_cache_", "synthetic respondents are not cached: they cost nothing to ask again"},
		{"society_distribution_coverage_ratio", "synthetic respondents return exact distributions, no token coverage"},
		{"society_behavior_similarity", "the scenario asks no behaviour instrument"},
	}
	dash, err := metrics.Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	for _, q := range dashboardPanelQueries(t, dash) {
		why := ""
		for _, e := range expectEmpty {
			if strings.Contains(q.Expr, e.metric) && !strings.Contains(q.Expr, "society_model_info") {
				why = e.why
			}
		}
		series, err := prom.QueryRange(ctx, grafanaExpand(q.Expr, "1s"), start, end, 200*time.Millisecond)
		if err != nil {
			t.Errorf("panel %q: %v", q.Panel, err)
			continue
		}
		points := 0
		for _, s := range series {
			points += s.Points
		}
		switch {
		case why == "" && points == 0:
			t.Errorf("panel %q: no data during the run: %s", q.Panel, q.Expr)
		case why != "" && points > 0:
			t.Errorf("panel %q: expected empty (%s) but got %d points; take it off the list", q.Panel, why, points)
		}
	}
}

// dashboardPanelQueries reads every panel query from the dashboard JSON.
func dashboardPanelQueries(t *testing.T, dash []byte) []struct{ Panel, Expr string } {
	t.Helper()
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatal(err)
	}
	var out []struct{ Panel, Expr string }
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, struct{ Panel, Expr string }{p.Title, tg.Expr})
		}
	}
	if len(out) < 20 {
		t.Fatalf("got %d dashboard queries, want the whole dashboard", len(out))
	}
	return out
}

// grafanaExpand replaces Grafana's variables as Grafana does with "All" selected.
func grafanaExpand(expr, window string) string {
	return strings.NewReplacer("$__rate_interval", window, "$instance", ".*", "$run", ".*", "$model", ".*", "$strategy", ".*").Replace(expr)
}

func TestRunMetricsFlag(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no port", []string{"--metrics", "localhost"}, 2, "want HOST:PORT"},
		{"loopback", []string{"--metrics", ":0"}, 0, `msg="serving metrics" url=http://127.0.0.1:`},
	}
	scen := writeWatchedScenario(t, "flag", 500, "h-np")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", scen, "--out", filepath.Join(t.TempDir(), "out"), "--quiet"}, c.args...)
			_, stderr, code := runCLI(t, args...)
			if code != c.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, c.wantCode, stderr)
			}
			if !strings.Contains(stderr, c.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", stderr, c.wantErr)
			}
		})
	}
}

// TestServiceMetricsFlag: agents and analyze refuse a --metrics address
// without a port before they join the cluster, like run.
func TestServiceMetricsFlag(t *testing.T) {
	for _, role := range []string{"agents", "analyze"} {
		t.Run(role, func(t *testing.T) {
			_, stderr, code := runCLI(t, role, "--nats", "nats://127.0.0.1:1", "--metrics", "localhost")
			if code != 2 || !strings.Contains(stderr, "want HOST:PORT") {
				t.Errorf("got exit %d, %q; want 2 and a message about HOST:PORT", code, stderr)
			}
		})
	}
}

// TestDashboardsCommand writes the provisioning tree with the compose
// file's addresses and compares it with the committed deploy/ folder: the
// command and the repository serve the same files.
func TestDashboardsCommand(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, code := runCLI(t, "dashboards", "--out", dir, "--target", "society:9464", "--prometheus", "http://prometheus:9090")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{metrics.PrometheusConfigFile, metrics.DashboardFile, metrics.DashboardProvider, metrics.DataSourceFile} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s not written: %v", f, err)
			continue
		}
		want, err := os.ReadFile(filepath.Join("..", "..", "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from deploy/%s", f, f)
		}
		if !strings.Contains(stdout, f) {
			t.Errorf("stdout does not list %s:\n%s", f, stdout)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dashboards"}, "--out"},
		{[]string{"dashboards", "--out", dir, "--target", "nohost"}, "target"},
		{[]string{"dashboards", "--out", dir, "extra"}, "no arguments"},
	} {
		_, stderr, code := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: got exit %d, %q; want 2 and a message about %s", c.args, code, stderr, c.want)
		}
	}
}

// TestComposeFileReferencesExist keeps deploy/compose.yaml's bind mounts
// pointing at files that exist.
func TestComposeFileReferencesExist(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "- ./") {
			continue
		}
		host, _, ok := strings.Cut(strings.TrimPrefix(line, "- "), ":")
		if !ok {
			continue
		}
		n++
		if _, err := os.Stat(filepath.Join("..", "..", "deploy", host)); err != nil {
			t.Errorf("compose.yaml mounts %s: %v", host, err)
		}
	}
	if n < 3 {
		t.Errorf("found %d bind mounts in compose.yaml, want the Prometheus and Grafana files", n)
	}
}
