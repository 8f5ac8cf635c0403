package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
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
	m.Batch(&agent.Batch{Model: "m1", Instrument: "pvq40", Item: 0, Shard: n, Codes: []uint8{1, 2, 0},
		Invalid: []agent.Invalid{{Agent: 2, Raw: "?", Reason: "unparseable"}}})
	m.Batch(&agent.Batch{Model: "m1", Instrument: "pvq40", Item: 0, Shard: n, Codes: []uint8{1, 2, 0}}) // redelivery
	m.Progress(1e9, int64(2*n+2), int64(n+1))
	m.TasksPublished("m1", "pvq40", 4)
	m.Agents(StateAnswering, 3)
	m.Population("h-np", map[string]int{"SD": 1, "none": 2})
	m.BadMessage(errors.New("bad"))
	m.NATSPending(5)
	m.NewRun()
	m.Similarity("m1", "h-np", "pvq40_smacof_mrat", 0.8)
	m.BehaviorSimilarity("m1", "h-np", "bfi2", "theory", 0.5)
	m.Cooperation("charity", 2, map[string]float64{"BE": 0.9, "PO": 0.2})
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
		"backend": true, "mode": true, "synthetic": true}
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
	b := &agent.Batch{Model: "m", Instrument: "pvq40", Item: 3, Shard: 1, First: 10, Codes: []uint8{1, 0, 6, 2},
		Invalid: []agent.Invalid{{Agent: 11, Raw: "maybe", Reason: "unparseable"}}}
	if !m.Batch(b) {
		t.Errorf("first delivery: got false, want true")
	}
	if m.Batch(b) {
		t.Errorf("second delivery: got true, want false")
	}
	other := *b
	other.Shard = 2
	if !m.Batch(&other) {
		t.Errorf("same item, other shard: got false, want true")
	}
	m.NewRun()
	if !m.Batch(b) {
		t.Errorf("first delivery in the next run: got false, want true")
	}
	cases := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.answers.WithLabelValues("m", "pvq40", "valid"), 9},
		{m.answers.WithLabelValues("m", "pvq40", "invalid"), 3},
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
	m.Progress(200, 90, 10)
	if got := value(t, m.progress); got != 0.5 {
		t.Errorf("progress: got %v, want 0.5", got)
	}
	if got := value(t, m.expected); got != 200 {
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
	m := New(prometheus.NewRegistry(), BuildInfo{})
	codes := make([]uint8, 4096)
	for i := range codes {
		codes[i] = uint8(1 + i%6)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Batch(&agent.Batch{Model: "m", Instrument: "pvq40", Item: i % 40, Shard: i / 40, Codes: codes})
	}
}
