package llmbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// TestModelServerProcess is not a test: TestMeasureModelPath runs it as
// the model server's process, serving as 'society model-server' does (its
// URL on stdout, its accounting on stderr at an interrupt).
func TestModelServerProcess(t *testing.T) {
	if os.Getenv("LLMBENCH_SERVER") != "1" {
		t.Skip("only runs as TestMeasureModelPath's model server")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	means, err := population.HumanMeans("pvq40_smacof")
	if err != nil {
		t.Fatal(err)
	}
	h := modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1, Latency: 10 * time.Millisecond, Slots: 2})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("model server on http://%s/v1\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	<-ctx.Done()
	srv.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
	// As 'society model-server' logs its accounting at a stop.
	slog.New(slog.NewTextHandler(os.Stderr, nil)).Info("model server stopped", h.Stats().Attrs()...)
	os.Exit(0)
}

func TestMeasureModelPath(t *testing.T) {
	if testing.Short() {
		t.Skip("runs model server processes")
	}
	var servers atomic.Int64
	server := func(ctx context.Context) (*exec.Cmd, error) {
		servers.Add(1)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestModelServerProcess$")
		cmd.Env = append(os.Environ(), "LLMBENCH_SERVER=1")
		return cmd, nil
	}
	mp, err := MeasureModelPath(t.Context(), Options{Slots: 2, Latency: 10 * time.Millisecond, Agents: 13, Items: 3, Server: server})
	if err != nil {
		t.Fatal(err)
	}
	// One server for the warm-up of both clients (13 agents × 1 item,
	// a quarter of 3 rounded up to at least one), then one per phase.
	if n := servers.Load(); n != 5 || mp.WarmUpCalls != 13 {
		t.Errorf("got %d model servers and %d warm-up calls, want 5 (warm-up and four phases) and 13", n, mp.WarmUpCalls)
	}
	if mp.IdealCallsPerSecond != 200 || mp.Concurrency != 4 || mp.Agents != 13 || mp.Items != 3 || mp.Efficiency != mp.Sample.Society.Efficiency {
		t.Errorf("got ideal %v calls/s, concurrency %d, %d agents × %d items, efficiency %v, want 200, 4, 13 × 3 and sample mode's (%v)",
			mp.IdealCallsPerSecond, mp.Concurrency, mp.Agents, mp.Items, mp.Efficiency, mp.Sample.Society.Efficiency)
	}
	// 13 agents × 3 items, one call per answer; 11 personas × 3 items,
	// one call per distinct question. Both clients make the same calls.
	for _, c := range []struct {
		cmp   Comparison
		calls int64
	}{{mp.Sample, 39}, {mp.Distribution, 33}} {
		for _, r := range []Run{c.cmp.Society, c.cmp.Bare} {
			if r.Calls != c.calls || r.ServerRequests != c.calls || r.Seconds <= 0 || r.CallsPerSecond <= 0 || r.Efficiency <= 0 ||
				r.ClientCPUMicros <= 0 || r.ServerCPUMicros <= 0 || r.PeakInService < 1 || r.PeakInService > 2 ||
				r.PeakInFlight < r.PeakInService || r.PeakInFlight > 4 {
				t.Errorf("%s mode, %s client: got %+v, want %d calls and requests, positive figures, at most 2 in service and 4 in flight",
					c.cmp.Mode, r.Client, r, c.calls)
			}
			// ⌈calls/S⌉ waves of 10 ms.
			if want := float64((c.calls+1)/2) * 0.01; math.Abs(r.MinSeconds-want) > 1e-9 {
				t.Errorf("%s mode, %s client: got %v s at least, want %v", c.cmp.Mode, r.Client, r.MinSeconds, want)
			}
		}
		if c.cmp.RateRatio <= 0 || c.cmp.SecondsRatio <= 0 || c.cmp.CPURatio <= 0 {
			t.Errorf("%s mode: got ratios %+v, want positive", c.cmp.Mode, c.cmp)
		}
	}
}

// gate is a counting handler in front of the model server: each request
// waits until target requests are open at once (or its client gives up),
// then is answered. peak is the most ever open.
type gate struct {
	next     http.Handler
	target   int64
	inFlight atomic.Int64
	peak     atomic.Int64
	once     sync.Once
	reached  chan struct{}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/chat/completions" {
		n := g.inFlight.Add(1)
		defer g.inFlight.Add(-1)
		for {
			p := g.peak.Load()
			if n <= p || g.peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n >= g.target {
			g.once.Do(func() { close(g.reached) })
		}
		select {
		case <-g.reached:
		case <-r.Context().Done():
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// The society client's phase keeps min(concurrency, pending requests) in
// flight, with fewer agents than the concurrency (sample mode) and fewer
// personas (distribution mode): agents asking their items in turn would
// hold one request per agent or per persona.
func TestPhaseInFlight(t *testing.T) {
	pvq, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	means, err := population.HumanMeans("pvq40_smacof")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                       string
		mode                       string
		agents, items, concurrency int
		want                       int
	}{
		{"sample, fewer agents than the concurrency", llm.ModeSample, 5, 4, 16, 16},
		{"sample, requests below the concurrency", llm.ModeSample, 5, 2, 16, 10},
		{"distribution, concurrency below the prompts", llm.ModeDistribution, 30, 3, 8, 8},
		{"distribution, prompts below the concurrency", llm.ModeDistribution, 30, 3, 64, 33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &gate{next: modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}), target: int64(tt.want),
				reached: make(chan struct{})}
			srv := httptest.NewServer(g)
			defer srv.Close()
			// A failed test lets the requests still held go, so that
			// Close does not wait for them.
			defer g.once.Do(func() { close(g.reached) })
			ctx := t.Context()
			if d, ok := t.Deadline(); ok {
				// End a little before the test's deadline, so that a phase
				// that never reaches the target reports what it saw.
				c, cancel := context.WithDeadline(ctx, d.Add(-10*time.Second))
				defer cancel()
				ctx = c
			}
			ph := phase{pvq: pvq, mode: tt.mode, agents: tt.agents, items: tt.items, concurrency: tt.concurrency}
			r, err := ph.society(ctx, srv.URL+"/v1")
			if peak := g.peak.Load(); err != nil || peak != int64(tt.want) {
				t.Fatalf("got peak %d in flight (error %v), want %d", peak, err, tt.want)
			}
			pending := int64(tt.agents * tt.items)
			if tt.mode == llm.ModeDistribution {
				pending = int64(min(tt.agents, values.N+1) * tt.items)
			}
			if r.Calls != pending {
				t.Errorf("got %d calls, want %d", r.Calls, pending)
			}
		})
	}
}

func TestSteadyRate(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name    string
		samples []callSample
		total   int64
		want    float64
	}{
		// A tenth (10) is first reached at 100 ms, nine tenths (90) last
		// not exceeded at 500 ms: 80 calls in 0.4 s.
		{"steady middle", []callSample{{50 * ms, 2}, {100 * ms, 10}, {300 * ms, 50}, {500 * ms, 90}, {600 * ms, 100}}, 100, 200},
		{"too short to tell", []callSample{{10 * ms, 100}}, 100, 0},
		{"no samples", nil, 100, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := steadyRate(c.samples, c.total); got != c.want {
				t.Errorf("got %v calls/s, want %v", got, c.want)
			}
		})
	}
}
