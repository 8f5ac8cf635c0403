package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/metrics/promtest"
)

// TestDistributedRunServesMetrics: the orchestrator of a distributed run
// (`run --nats --metrics`) follows the run through the same loop, and so
// the same observer, as a single-process run: its answer counters end
// equal to results.json.
func TestDistributedRunServesMetrics(t *testing.T) {
	url := natsOnLoopback(t)
	scen := writeWatchedScenario(t, "dist-watched", 300, "h-np")
	out := filepath.Join(t.TempDir(), "out")
	addr := promtest.FreeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hostDone := make(chan error, 1)
	go func() {
		hostDone <- run(ctx, []string{"agents", "--nats", url, "--run", "dist-watched-7", "--cache", t.TempDir()}, io.Discard, io.Discard)
	}()
	var stdout, stderr lockedBuffer
	runDone := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		runDone <- run(ctx, []string{"run", scen, "--nats", url, "--out", out, "--quiet", "--metrics", addr,
			"--metrics-linger", "5m", "--cache", t.TempDir()}, &stdout, &stderr)
		close(ended)
	}()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("run: %v\n%s", err, stderr.String())
		}
		<-hostDone
	}()
	// The results are written, and the final figures set, before the run
	// says it lingers.
	stderr.await(t, "run", "serving final metrics", ended)
	res := readResults(t, out)
	want := map[string]float64{"valid": float64(res.Answers.Valid), "invalid": float64(res.Answers.Invalid)}
	got := scrapeAnswers(t, "http://"+addr+"/metrics")
	if got["valid"] != want["valid"] || got["invalid"] != want["invalid"] || want["valid"] == 0 {
		t.Errorf("society_answers_total by outcome: got %v, want %v (results.json)", got, want)
	}
}

// scrapeAnswers reads society_answers_total by outcome from a /metrics
// endpoint; an unreachable endpoint reads as no answers yet.
func scrapeAnswers(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	f, ok := fams["society_answers_total"]
	if !ok {
		return out
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestDistributedMetricsOnPrometheus: a distributed run with --metrics on
// every role (orchestrator, agent host, analysis service) is scraped by one
// real Prometheus. Each role exports society_run_info for the run; the
// orchestrator and the analysis service count every answer of results.json
// under the run's label; the agent host reports its model requests; and
// the dashboard's progress shows the run once, complete.
func TestDistributedMetricsOnPrometheus(t *testing.T) {
	promtest.Require(t)
	url := natsOnLoopback(t)
	hs, _ := testModelServer(t, modelserver.Options{})
	dir := t.TempDir()
	scen := writeScenario(t, dir, "distprom", openaiScenario("distprom", hs.URL, "sample", 60, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n")
	id := bus.RunID("distprom-5")
	out := filepath.Join(dir, "results")

	addr := map[string]string{"run": promtest.FreeAddr(t), "agents": promtest.FreeAddr(t), "analyze": promtest.FreeAddr(t)}
	// Prometheus scrapes each role through a proxy that tells the test of
	// every scrape; the proxies' addresses are the instances.
	var scr scrapes
	role := map[string]string{}
	for name, a := range addr {
		role[scr.proxy(t, a)] = name
	}
	files, err := metrics.DeployFiles(metrics.DeployOptions{Target: strings.Join(slices.Sorted(maps.Keys(role)), ","),
		ScrapeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, string(files[metrics.PrometheusConfigFile]))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	roles := map[string][]string{
		"agents":  {"agents", "--nats", url, "--cache", t.TempDir(), "--metrics", addr["agents"]},
		"analyze": {"analyze", "--nats", url, "--out", out, "--name", "svc", "--metrics", addr["analyze"]},
		"run": {"run", scen, "--nats", url, "--quiet", "--cache", t.TempDir(), "--metrics", addr["run"],
			"--metrics-linger", "10m"},
	}
	done := make(chan error, len(roles))
	logs := map[string]*lockedBuffer{}
	ended := make(chan struct{}) // closed when a role ends
	var endOnce sync.Once
	for name, args := range roles {
		log := &lockedBuffer{}
		logs[name] = log
		go func() {
			err := run(ctx, args, io.Discard, log)
			if err != nil {
				err = fmt.Errorf("%s: %w\n%s", name, err, log.String())
			}
			done <- err
			endOnce.Do(func() { close(ended) })
		}()
	}
	defer func() {
		cancel()
		for range roles {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()

	// The analysis service writes results.json once every answer is in,
	// after it has counted them all, and then says so; the orchestrator,
	// told by the registry, sets its final figures and then says it
	// lingers. Ending the run before then would fail it.
	resDir := filepath.Join(out, id)
	logs["analyze"].await(t, "analysis service", "results written", ended)
	logs["run"].await(t, "run", "serving final metrics", ended)
	res := readResults(t, resDir)
	// Wait for a successful scrape of every role that began after both: it
	// holds the final counts. The queries are evaluated at a moment by
	// which every role's last scrape succeeded and was stored, so that a
	// scrape a busy machine makes fail later (which marks the role's series
	// stale) cannot empty them.
	written := time.Now()
	var at time.Time
	for wait := boundedContext(t); ; {
		at = time.Now()
		if !scr.await(wait, scr.counts(), 2) {
			t.Fatal("prometheus did not scrape every role before the test ended")
		}
		r, err := prom.Query(ctx, fmt.Sprintf("count(timestamp(up == 1) > %.3f)", float64(written.UnixNano())/1e9), at)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) == 1 && r[0].Last == 3 {
			break
		}
	}
	query := func(expr string) map[string]float64 {
		t.Helper()
		r, err := prom.Query(ctx, expr, at)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, s := range r {
			k := role[s.Metric["instance"]]
			if o := s.Metric["outcome"]; o != "" {
				k += " " + o
			}
			got[k] = s.Last
		}
		return got
	}
	sel := fmt.Sprintf(`run=%q`, id)
	if got, want := query(fmt.Sprintf(`society_run_info{%s,scenario="distprom",seed="5"}`, sel)),
		map[string]float64{"run": 1, "agents": 1, "analyze": 1}; !maps.Equal(got, want) {
		t.Errorf("society_run_info by role: got %v, want %v", got, want)
	}
	valid, invalid := float64(res.Answers.Valid), float64(res.Answers.Invalid)
	if got, want := query(fmt.Sprintf(`sum by (instance, outcome) (society_answers_total{%s})`, sel)),
		map[string]float64{"run valid": valid, "run invalid": invalid, "analyze valid": valid, "analyze invalid": invalid}; !maps.Equal(got, want) || valid == 0 {
		t.Errorf("society_answers_total by role: got %v, want %v (results.json)", got, want)
	}
	if got, want := query(fmt.Sprintf(`society_run_progress_ratio{%s}`, sel)), map[string]float64{"run": 1, "analyze": 1}; !maps.Equal(got, want) {
		t.Errorf("society_run_progress_ratio by role: got %v, want %v", got, want)
	}
	if got := query(`sum by (instance) (society_model_requests_total)`); got["agents"] <= 0 || len(got) != 1 {
		t.Errorf("society_model_requests_total by role: got %v, want requests from the agent host only", got)
	}
	dash, err := metrics.Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range dashboardPanelQueries(t, dash) {
		if q.Panel != "Progress" {
			continue
		}
		r, err := prom.Query(ctx, grafanaExpand(q.Expr, "1m"), at)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) != 1 || r[0].Metric["run"] != id || r[0].Last != 1 {
			t.Errorf("dashboard Progress: got %+v, want one series, run %s at 1", r, id)
		}
	}
}
