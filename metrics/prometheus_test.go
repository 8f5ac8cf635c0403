package metrics

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/society-sim/society/metrics/promtest"
)

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
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := Serve(ctx, ln, reg); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	go func() { // keep the counters moving so that rates are not zero
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				exercise(m, n)
			}
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
	// Each panel's query gets data once Prometheus has scraped enough,
	// however long a busy machine takes; go test -timeout bounds it.
	pending := queries
	for len(pending) > 0 && t.Context().Err() == nil {
		var still []panelQuery
		for _, q := range pending {
			res, err := prom.Query(ctx, expand(q.Expr, "2s"), time.Now())
			if err != nil {
				t.Fatalf("panel %q: %v", q.Panel, err)
			}
			if len(res) == 0 {
				still = append(still, q)
			}
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, q := range pending {
		t.Errorf("panel %q: query returned no data: %s", q.Panel, q.Expr)
	}

	// Every request takes 0.12s. Native buckets (factor 1.1) put the median
	// within 5% of it; classic buckets would interpolate between 0.1 and
	// 0.25 and give about 0.175. So this also shows that the server stored
	// native histograms and that the dashboard's query uses them.
	res, err := prom.Query(ctx, expand(quantile("0.5", "society_model_request_duration_seconds"), "2s"), time.Now())
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
