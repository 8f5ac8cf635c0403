package metrics

import (
	"context"
	"maps"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/metrics/promtest"
)

// scrapeSignal is a Gatherer that tells the test about every scrape: it
// calls before (when set) and then signals scraped, without blocking. Tests
// wait for scrapes, the events that can change what Prometheus holds,
// instead of sleeping between queries.
type scrapeSignal struct {
	prometheus.Gatherer
	before  func()
	scraped chan struct{}
}

func (g *scrapeSignal) Gather() ([]*dto.MetricFamily, error) {
	if g.before != nil {
		g.before()
	}
	defer func() {
		select {
		case g.scraped <- struct{}{}:
		default:
		}
	}()
	return g.Gatherer.Gather()
}

// maxScrapes bounds the scrapes a test waits for before it gives up on a
// query: a count of events, the same on an idle and on a busy machine.
const maxScrapes = 100

// promWindow is the rate window of the queries: wide enough to hold two
// scrapes however far apart a busy machine spaces them.
const promWindow = "1m"

// waitScrape returns once an endpoint has been scraped since the last
// call, or fails the test when it ends first.
func waitScrape(t *testing.T, scraped <-chan struct{}) {
	t.Helper()
	select {
	case <-scraped:
	case <-t.Context().Done():
		t.Fatal("test ended while waiting for a scrape")
	}
}

// TestDashboardOnPrometheus scrapes the endpoint with a real Prometheus
// (native histograms on), configured by the generated prometheus.yml, while
// every observer method keeps reporting, and checks that every panel's
// query returns data: no panel of the dashboard may stay empty when its
// metrics are fed.
func TestDashboardOnPrometheus(t *testing.T) {
	promtest.Require(t)
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{Version: "test"})
	exercise(m, 0)
	// Every scrape sees the counters moved since the last one, so that
	// rates are not zero, whatever the time between scrapes.
	var n atomic.Int64
	g := &scrapeSignal{Gatherer: reg, scraped: make(chan struct{}, 1), before: func() {
		exercise(m, int(n.Add(1)))
	}}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := Serve(ctx, ln, g); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	files, err := DeployFiles(DeployOptions{Target: ln.Addr().String(), ScrapeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, string(files[PrometheusConfigFile]))
	dash, err := Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	queries := dashboardQueries(t, dash)
	// Each panel's query gets data once Prometheus has stored a few
	// scrapes: the queries are asked again after each scrape, up to
	// maxScrapes.
	pending := queries
	for range maxScrapes {
		waitScrape(t, g.scraped)
		var still []panelQuery
		for _, q := range pending {
			res, err := prom.Query(ctx, expand(q.Expr, promWindow), time.Now())
			if err != nil {
				t.Fatalf("panel %q: %v", q.Panel, err)
			}
			if len(res) == 0 {
				still = append(still, q)
			}
		}
		if pending = still; len(pending) == 0 {
			break
		}
	}
	for _, q := range pending {
		t.Errorf("panel %q: query returned no data after %d scrapes: %s", q.Panel, maxScrapes, q.Expr)
	}

	// Every request takes 0.12s. Native buckets (factor 1.1) put the median
	// within 5% of it; classic buckets would interpolate between 0.1 and
	// 0.25 and give about 0.175. So this also shows that the server stored
	// native histograms and that the dashboard's query uses them.
	res, err := prom.Query(ctx, expand(quantile("0.5", "society_model_request_duration_seconds"), promWindow), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("median latency: got %d series, want 1", len(res))
	}
	if got := res[0].Last; math.IsNaN(got) || got < 0.114 || got > 0.126 {
		t.Errorf("median latency: got %v, want 0.12 ± 5%%", got)
	}
}

// TestOverlappingRunsOnPrometheus: two runs overlap, each with its own
// orchestrator, and one analysis service follows both; one Prometheus
// scrapes the three. Run a is half way while run b is complete: the
// dashboard's progress must read 50% for a and 100% for b (a query over
// every series, as before the run label, reads 100%), and the answers
// the orchestrator and the analysis both count are not added up.
func TestOverlappingRunsOnPrometheus(t *testing.T) {
	promtest.Require(t)
	const expected = 100
	runs := []struct {
		info     RunInfo
		answered int
	}{
		{RunInfo{ID: "a-1", Scenario: "a", Seed: 1}, expected / 2},
		{RunInfo{ID: "b-2", Scenario: "b", Seed: 2}, expected},
	}
	report := func(m *Metrics, info RunInfo, answered int) {
		r := m.Run(info)
		codes := make([]uint8, answered)
		for i := range codes {
			codes[i] = 1 + uint8(i%6)
		}
		r.Batch(&agent.Batch{Model: "m", Instrument: "pvq40", Codes: codes})
		r.Progress(expected, int64(answered), 0)
	}
	service := prometheus.NewRegistry()
	sm := New(service, BuildInfo{Version: "test"})
	gatherers := []prometheus.Gatherer{service}
	for _, r := range runs {
		reg := prometheus.NewRegistry()
		report(New(reg, BuildInfo{Version: "test"}), r.info, r.answered)
		report(sm, r.info, r.answered)
		gatherers = append(gatherers, reg)
	}

	// Every figure is set before Prometheus starts, so the first scrape
	// of each endpoint holds the final values.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var targets []string
	scraped := make(chan struct{}, 1)
	for _, reg := range gatherers {
		g := &scrapeSignal{Gatherer: reg, scraped: scraped}
		ln, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Serve(ctx, ln, g); err != nil {
				t.Errorf("serve: %v", err)
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	files, err := DeployFiles(DeployOptions{Target: strings.Join(targets, ","), ScrapeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.Start(t, string(files[PrometheusConfigFile]))
	// Scraped every endpoint: a's and b's orchestrators and the service,
	// which follows both. Asked again after each scrape, up to maxScrapes.
	for i := 0; ; i++ {
		waitScrape(t, scraped)
		res, err := prom.Query(ctx, "count(society_run_info)", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(res) == 1 && res[0].Last == 4 {
			break
		}
		if i == maxScrapes {
			t.Fatalf("prometheus did not hold every endpoint's series after %d scrapes: %v", maxScrapes, res)
		}
	}

	dash, err := Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	panel := func(title string, i int) string {
		t.Helper()
		for _, q := range dashboardQueries(t, dash) {
			if q.Panel == title {
				if i == 0 {
					return expand(q.Expr, "1m")
				}
				i--
			}
		}
		t.Fatalf("no query %d in panel %q", i, title)
		return ""
	}
	byRun := func(expr string) map[string]float64 {
		t.Helper()
		res, err := prom.Query(ctx, expr, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, s := range res {
			out[s.Metric["run"]+s.Metric["outcome"]] = s.Last
		}
		return out
	}
	if got, want := byRun(panel("Progress", 0)), map[string]float64{"a-1": 0.5, "b-2": 1}; !maps.Equal(got, want) {
		t.Errorf("Progress: got %v, want %v", got, want)
	}
	if got, want := byRun(panel("Answers expected and received", 1)), map[string]float64{"a-1valid": 50, "a-1invalid": 0, "b-2valid": 100, "b-2invalid": 0}; !maps.Equal(got, want) {
		t.Errorf("answers received: got %v, want %v (each counted by two processes, shown once)", got, want)
	}
	if got := byRun("max(society_run_progress_ratio)"); got[""] != 1 {
		t.Errorf("progress over every series: got %v, want 1 (the mix the run label prevents)", got)
	}
	// Choosing a run in the dashboard shows that run only.
	one := strings.ReplaceAll(panel("Progress", 0), `run=~".*"`, `run=~"a-1"`)
	if got, want := byRun(one), map[string]float64{"a-1": 0.5}; !maps.Equal(got, want) {
		t.Errorf("Progress of run a-1 alone: got %v, want %v", got, want)
	}
}
