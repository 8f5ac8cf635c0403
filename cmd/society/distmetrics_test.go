package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/metrics/promtest"
)

// TestDistributedRunServesMetrics: the orchestrator of a distributed run
// (`run --nats --metrics`) follows the run through the same loop, and so
// the same observer, as a single-process run: its answer counters end
// equal to results.json.
func TestDistributedRunServesMetrics(t *testing.T) {
	port := freePort(t)
	srv, err := bus.StartServer(bus.ServerOptions{Listen: true, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
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
	go func() {
		runDone <- run(ctx, []string{"run", scen, "--nats", url, "--out", out, "--quiet", "--metrics", addr,
			"--metrics-linger", "5m", "--cache", t.TempDir()}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("run: %v\n%s", err, stderr.String())
		}
		<-hostDone
	}()
	for {
		if _, err := os.Stat(filepath.Join(out, "results.json")); err == nil {
			break
		}
		select {
		case err := <-runDone:
			runDone <- err
			t.Fatalf("run ended before writing results: %v\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	res := readResults(t, out)
	want := map[string]float64{"valid": float64(res.Answers.Valid), "invalid": float64(res.Answers.Invalid)}
	// The final figures are set just after results.json is written.
	var got map[string]float64
	for range 100 {
		got = scrapeAnswers(t, "http://"+addr+"/metrics")
		if got["valid"] == want["valid"] && got["invalid"] == want["invalid"] {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
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
