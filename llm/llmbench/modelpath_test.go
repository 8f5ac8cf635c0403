package llmbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"testing"
	"time"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
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
	st := h.Stats()
	fmt.Fprintf(os.Stderr, "stopped after %d requests (%d served, at most %d in flight)\n", st.Requests, st.Served, st.MaxInFlight)
	os.Exit(0)
}

func TestMeasureModelPath(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a model server process")
	}
	server := func(ctx context.Context) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestModelServerProcess$")
		cmd.Env = append(os.Environ(), "LLMBENCH_SERVER=1")
		return cmd, nil
	}
	mp, err := MeasureModelPath(t.Context(), Options{Slots: 2, Latency: 10 * time.Millisecond, Calls: 16, Server: server})
	if err != nil {
		t.Fatal(err)
	}
	// At concurrency S (2) and 2·S (4): each 16 timed calls after a first
	// wave of one call per agent (4 and 8 agents).
	if len(mp.Runs) != 2 || mp.ServerRequests != 16+4+16+8 || mp.MaxInFlight < 1 || mp.MaxInFlight > 2 {
		t.Fatalf("got %+v, want two runs, 44 server requests, at most 2 in flight", mp)
	}
	if mp.IdealCallsPerSecond != 200 || mp.Concurrency != 4 || mp.Efficiency <= 0 || mp.Efficiency != mp.Runs[1].Efficiency {
		t.Errorf("got ideal %v calls/s at concurrency %d and efficiency %v, want 200, 4 and the second run's (%v)",
			mp.IdealCallsPerSecond, mp.Concurrency, mp.Efficiency, mp.Runs[1].Efficiency)
	}
	for i, want := range []int{2, 4} {
		if r := mp.Runs[i]; r.Concurrency != want || r.Agents != 2*want || r.Calls != 16 {
			t.Errorf("run %d: got %+v, want concurrency %d, %d agents, 16 calls", i, r, want, 2*want)
		}
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
