package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/society-sim/society/agent"
)

// exercise calls every method once or more, so that every collector has a
// series to gather; call n (0, 1, …) sends new answer batches each time.
func exercise(m *Metrics, n int) {
	r := testRun(m)
	r.Batch(&agent.Batch{Model: "m1", Instrument: "pvq40", Item: 0, Shard: n, Codes: []uint8{1, 2, 0},
		Invalid: []agent.Invalid{{Agent: 2, Raw: "?", Reason: "unparseable"}}})
	r.Batch(&agent.Batch{Model: "m1", Instrument: "pvq40", Item: 0, Shard: n, Codes: []uint8{1, 2, 0}}) // redelivery
	r.Progress(1e9, int64(2*n+2), int64(n+1))
	r.TasksPublished("m1", "pvq40", 4)
	r.Agents(StateAnswering, 3)
	r.Population("h-np", map[string]int{"SD": 1, "none": 2})
	m.BadMessage(errors.New("bad"))
	r.NATSPending(5)
	r.Similarity("m1", "h-np", "pvq40_smacof_mrat", 0.8)
	r.BehaviorSimilarity("m1", "h-np", "bfi2", "theory", 0.5)
	r.Cooperation("charity", 2, map[string]float64{"BE": 0.9, "PO": 0.2})
	for _, o := range []string{OutcomeOK, OutcomeOK, OutcomeRetry, Outcome429, Outcome5xx, OutcomeTimeout} {
		m.ObserveRequest("m1", o, 0.12)
	}
	m.ObserveQueueWait("m1", 0.003)
	m.InFlight("m1", 2)
	m.InFlight("m1", -1)
	m.Tokens("m1", 120, 1)
	m.CacheLookup("m1", true)
	m.CacheLookup("m1", false)
	m.Coverage("m1", 0.97)
	m.ModelInfo("m1", "openai", "sample", true)
}

// testRun is the run exercise reports on: started on the first call and
// the same on later ones.
func testRun(m *Metrics) *Run {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	r := m.runs["study-7"]
	m.mu.Unlock()
	if r == nil {
		r = m.Run(RunInfo{ID: "study-7", Scenario: "study", Seed: 7})
	}
	return r
}

// value reads a counter's or gauge's current value.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	m, ok := c.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not a single metric", c)
	}
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// count is the number of series c holds.
func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// TestNames keeps every metric society_<thing>_<unit> with bounded labels.
func TestNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	exercise(New(reg, BuildInfo{Version: "v1", Revision: "abc", GoVersion: "go1.26"}), 0)
	fams := gather(t, reg)
	units := regexp.MustCompile(`^society_[a-z_]+_(total|seconds|ratio|messages|agents|expected|similarity|info|round|in_flight)$|^society_agents$`)
	allowed := map[string]bool{"model": true, "strategy": true, "value": true, "instrument": true, "game": true,
		"outcome": true, "reference": true, "state": true, "kind": true, "version": true, "revision": true, "go_version": true,
		"run": true, "scenario": true, "seed": true, "backend": true, "mode": true, "synthetic": true}
	if len(fams) < 20 {
		t.Errorf("got %d metric families, want every collector (at least 20)", len(fams))
	}
	for name, f := range fams {
		t.Run(name, func(t *testing.T) {
			if !units.MatchString(name) {
				t.Errorf("name %s does not read society_<thing>_<unit>", name)
			}
			if f.GetHelp() == "" {
				t.Errorf("%s has no help text", name)
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if !allowed[l.GetName()] {
						t.Errorf("%s has label %q, which is not one of the bounded labels", name, l.GetName())
					}
				}
			}
		})
	}
}

// A model found synthetic from its server's replies is labelled again:
// one series per model, saying synthetic.
func TestModelInfoRelabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{})
	m.ModelInfo("llama", "openai", "sample", false)
	m.ModelInfo("other", "synthetic", "distribution", true)
	m.ModelInfo("llama", "openai", "sample", true)
	if n := count(m.modelInfo); n != 2 {
		t.Fatalf("got %d series, want 2 (one per model)", n)
	}
	if v := value(t, m.modelInfo.WithLabelValues("llama", "openai", "sample", "true")); v != 1 {
		t.Errorf("llama synthetic: got %v, want 1", v)
	}
}

func TestBatchCountsOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{})
	r := m.Run(RunInfo{ID: "s-1"})
	b := &agent.Batch{Model: "m", Instrument: "pvq40", Item: 3, Shard: 1, First: 10, Codes: []uint8{1, 0, 6, 2},
		Invalid: []agent.Invalid{{Agent: 11, Raw: "maybe", Reason: "unparseable"}}}
	if !r.Batch(b) {
		t.Errorf("first delivery: got false, want true")
	}
	if r.Batch(b) {
		t.Errorf("second delivery: got true, want false")
	}
	other := *b
	other.Shard = 2
	if !r.Batch(&other) {
		t.Errorf("same item, other shard: got false, want true")
	}
	next := m.Run(RunInfo{ID: "s-2"})
	if !next.Batch(b) {
		t.Errorf("first delivery in the next run: got false, want true")
	}
	cases := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.answers.WithLabelValues("s-1", "m", "pvq40", "valid"), 6},
		{m.answers.WithLabelValues("s-1", "m", "pvq40", "invalid"), 2},
		{m.answers.WithLabelValues("s-2", "m", "pvq40", "valid"), 3},
		{m.answers.WithLabelValues("s-2", "m", "pvq40", "invalid"), 1},
		{m.redelivered, 1},
	}
	for i, c := range cases {
		if got := value(t, c.c); got != c.want {
			t.Errorf("case %d: got %v, want %v", i, got, c.want)
		}
	}
}

func TestRequestOutcomesAreBounded(t *testing.T) {
	m := New(prometheus.NewRegistry(), BuildInfo{})
	m.ObserveRequest("m", "418 I'm a teapot", 0.1)
	m.ObserveRequest("m", Outcome429, 0.1)
	if got := value(t, m.requests.WithLabelValues("m", OutcomeError)); got != 1 {
		t.Errorf("unknown outcome: got %v in error, want 1", got)
	}
	if got := count(m.requests); got != 2 {
		t.Errorf("got %d series, want 2", got)
	}
}

func TestProgress(t *testing.T) {
	m := New(prometheus.NewRegistry(), BuildInfo{})
	m.Run(RunInfo{ID: "s-1"}).Progress(200, 90, 10)
	if got := value(t, m.progress.WithLabelValues("s-1")); got != 0.5 {
		t.Errorf("progress: got %v, want 0.5", got)
	}
	if got := value(t, m.expected.WithLabelValues("s-1")); got != 200 {
		t.Errorf("expected: got %v, want 200", got)
	}
}

func TestNilMetricsDoNothing(t *testing.T) {
	var m *Metrics
	exercise(m, 0) // must not panic
}

func TestListenBindsLoopbackByDefault(t *testing.T) {
	cases := []struct {
		addr, wantHost string
		wantErr        bool
	}{
		{":0", "127.0.0.1", false},
		{"127.0.0.1:0", "127.0.0.1", false},
		{"localhost", "", true},
		{"", "", true},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			ln, err := Listen(c.addr)
			if c.wantErr {
				if err == nil {
					ln.Close()
					t.Fatalf("got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			host, _, _ := net.SplitHostPort(ln.Addr().String())
			if host != c.wantHost {
				t.Errorf("got host %s, want %s", host, c.wantHost)
			}
		})
	}
}

// TestServe scrapes the endpoint over loopback the way Prometheus does: the
// protobuf format must carry native histogram buckets, OpenMetrics must be
// offered, and the server must stop with its context.
func TestServe(t *testing.T) {
	reg := prometheus.NewRegistry()
	exercise(New(reg, BuildInfo{Version: "test"}), 0)
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, reg) }()
	url := "http://" + ln.Addr().String() + "/metrics"

	get := func(accept string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	t.Run("protobuf with native histograms", func(t *testing.T) {
		resp := get("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
		defer resp.Body.Close()
		dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
		found := false
		for {
			var f dto.MetricFamily
			if err := dec.Decode(&f); err != nil {
				if err == io.EOF {
					break
				}
				t.Fatal(err)
			}
			if f.GetName() != "society_model_request_duration_seconds" {
				continue
			}
			h := f.GetMetric()[0].GetHistogram()
			if h.GetSchema() == 0 && len(h.GetPositiveSpan()) == 0 {
				t.Errorf("got no native buckets (schema %d, %d spans), want some", h.GetSchema(), len(h.GetPositiveSpan()))
			}
			if len(h.GetBucket()) == 0 {
				t.Errorf("got no classic buckets, want them too")
			}
			found = true
		}
		if !found {
			t.Errorf("society_model_request_duration_seconds not served")
		}
	})
	t.Run("openmetrics", func(t *testing.T) {
		resp := get("application/openmetrics-text;version=1.0.0")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
			t.Errorf("got content type %q, want OpenMetrics", ct)
		}
		if !strings.Contains(string(body), "# EOF") {
			t.Errorf("OpenMetrics body has no # EOF")
		}
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: got %v, want nil after cancel", err)
		}
	case <-t.Context().Done():
		t.Fatal("Serve did not return after cancel")
	}
}

// BenchmarkBatch is the per-batch cost the pipeline pays with metrics on.
func BenchmarkBatch(b *testing.B) {
	m := New(prometheus.NewRegistry(), BuildInfo{}).Run(RunInfo{ID: "s-1"})
	codes := make([]uint8, 4096)
	for i := range codes {
		codes[i] = uint8(1 + i%6)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Batch(&agent.Batch{Model: "m", Instrument: "pvq40", Item: i % 40, Shard: i / 40, Codes: codes})
	}
}

// TestEndedRunsAreBounded: a process that follows runs one after another
// keeps the series of its KeepRuns latest ended runs and no more, so the
// run label stays bounded; a run still going is never dropped.
func TestEndedRunsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{})
	going := m.Run(RunInfo{ID: "going", Scenario: "s", Seed: 1})
	going.Progress(10, 1, 0)
	for i := range KeepRuns + 2 {
		r := m.Run(RunInfo{ID: fmt.Sprintf("r%d", i), Scenario: "s", Seed: uint64(i)})
		r.Progress(10, 10, 0)
		r.Batch(&agent.Batch{Model: "m", Instrument: "pvq40", Codes: []uint8{1}})
		r.End()
	}
	runs := map[string]bool{}
	for _, f := range gather(t, reg) {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "run" {
					runs[l.GetValue()] = true
				}
			}
		}
	}
	want := map[string]bool{"going": true}
	for i := 2; i < KeepRuns+2; i++ {
		want[fmt.Sprintf("r%d", i)] = true
	}
	if !maps.Equal(runs, want) {
		t.Errorf("runs exported: got %v, want %v", slices.Sorted(maps.Keys(runs)), slices.Sorted(maps.Keys(want)))
	}
	if got := count(m.info); got != KeepRuns+1 {
		t.Errorf("society_run_info: got %d series, want %d", got, KeepRuns+1)
	}
}

// TestRunStartedAgainStartsOver: a run taken up again in the same process
// counts its answers from zero, as its analysis does.
func TestRunStartedAgainStartsOver(t *testing.T) {
	m := New(prometheus.NewRegistry(), BuildInfo{})
	b := &agent.Batch{Model: "m", Instrument: "pvq40", Codes: []uint8{1, 2}}
	m.Run(RunInfo{ID: "r"}).Batch(b)
	if !m.Run(RunInfo{ID: "r"}).Batch(b) {
		t.Errorf("batch in the restarted run: got a redelivery, want new answers")
	}
	if got := value(t, m.answers.WithLabelValues("r", "m", "pvq40", "valid")); got != 2 {
		t.Errorf("valid answers: got %v, want 2", got)
	}
}
