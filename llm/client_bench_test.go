package llm

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/internal/benchcpu"
	"github.com/society-sim/society/values"
)

// benchServer is an endpoint that serves at most slots requests at once,
// each taking latency; the rest queue, like a GPU server at its batch
// limit. Its throughput ceiling is slots/latency.
func benchServer(b *testing.B, slots int, latency time.Duration) *openAIServer {
	sem := make(chan struct{}, slots)
	return newOpenAIServer(b, func(r seenReq) (int, any) {
		sem <- struct{}{}
		if latency > 0 {
			time.Sleep(latency)
		}
		<-sem
		return 200, textsReply(r, "4")
	})
}

// BenchmarkClientThroughput drives a 20 ms, 8-slot endpoint with more
// agents than slots and reports the achieved calls per second and their
// fraction of the endpoint's ceiling (slots/latency).
func BenchmarkClientThroughput(b *testing.B) {
	const (
		slots   = 8
		latency = 20 * time.Millisecond
	)
	srv := benchServer(b, slots, latency)
	cfg := testConfig(srv.URL)
	cfg.Concurrency = 2 * slots
	c := newClient(b, cfg)
	in := pvq(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4 * slots)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Every agent has its own sample: one request per answer.
			q := question(in, values.Power, 0, int(next.Add(1)))
			if _, err := c.Ask(context.Background(), q); err != nil {
				b.Error(err)
				return
			}
		}
	})
	perSec := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(perSec, "calls/s")
	b.ReportMetric(perSec/(slots/latency.Seconds()), "of-ceiling")
}

// BenchmarkClientCall is one call at a time to an endpoint that answers at
// once: ns/op and allocs/op bound the client's own cost per call (they
// include the loopback round trip and the in-process server's work).
func BenchmarkClientCall(b *testing.B) {
	srv := benchServer(b, 1, 0)
	c := newClient(b, testConfig(srv.URL))
	in := pvq(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Ask(context.Background(), question(in, values.Power, 0, i)); err != nil {
			b.Fatal(err)
		}
	}
}

// instantServer answers every chat request at once with the same reply,
// as vLLM writes it, without decoding the request: what remains of a
// call's cost is the client's own and the loopback round trip.
func instantServer(b testing.TB) *httptest.Server {
	reply := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"test-model",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"4","reasoning_content":null,"tool_calls":[]},` +
		`"logprobs":null,"finish_reason":"stop","stop_reason":null}],` +
		`"usage":{"prompt_tokens":120,"total_tokens":121,"completion_tokens":1,"prompt_tokens_details":null},` +
		`"prompt_logprobs":null}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(reply)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkClientSample is the sample path's cost per call against an
// endpoint that answers at once: one request per answer (every agent has
// its own sample), no cache. Sequential measures one call's latency on
// an idle client; Parallel many callers at the configured concurrency,
// where ns/op is the client's (and the loopback's) throughput limit.
func BenchmarkClientSample(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "Sequential"
		if parallel {
			name = "Parallel"
		}
		b.Run(name, func(b *testing.B) {
			srv := instantServer(b)
			cfg := testConfig(srv.URL)
			cfg.Seed, cfg.Concurrency = ptr(uint64(1)), 64
			c := newClient(b, cfg)
			in := pvq(b)
			var next atomic.Int64
			b.ReportAllocs()
			defer benchcpu.Report(b)()
			if !parallel {
				for i := 0; b.Loop(); i++ {
					if _, err := c.Ask(context.Background(), question(in, values.Power, i%len(in.Items), i)); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					if _, err := c.Ask(context.Background(), question(in, values.Power, i%len(in.Items), i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDistributionPhase answers one PVQ-40 phase in distribution mode
// (11 personas × 40 items = 440 distinct prompts, 4 agents per persona
// asking their items in turn) against a 64-slot endpoint taking 20 ms per
// request, with and without Prefetch. Without it one request per persona
// is in flight, so the phase takes about 40 latencies; with it the 440
// requests go out 64 at a time, in about 7.
func BenchmarkDistributionPhase(b *testing.B) {
	const (
		slots   = 64
		latency = 20 * time.Millisecond
		agents  = 4
	)
	sem := make(chan struct{}, slots)
	srv := newOpenAIServer(b, func(r seenReq) (int, any) {
		sem <- struct{}{}
		time.Sleep(latency)
		<-sem
		return 200, topReply(r, map[string]float64{"4": 0.6, "5": 0.3, "3": 0.1})
	})
	in := pvq(b)
	for _, prefetch := range []bool{false, true} {
		name := "Agents"
		if prefetch {
			name = "Prefetch"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				cfg := testConfig(srv.URL)
				cfg.Mode, cfg.Concurrency = ModeDistribution, slots
				c, err := NewClient(cfg)
				if err != nil {
					b.Fatal(err)
				}
				var qs []*agent.Question
				for _, p := range allPersonas(agent.StyleDescription) {
					for it := range in.Items {
						qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: it})
					}
				}
				done := make(chan error, 1)
				if prefetch {
					go func() { done <- c.Prefetch(context.Background(), qs) }()
				} else {
					done <- nil
				}
				var wg sync.WaitGroup
				for _, p := range allPersonas(agent.StyleDescription) {
					for s := range agents {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for it := range in.Items {
								if _, err := c.Ask(context.Background(), &agent.Question{Persona: p, Instrument: in, Item: it, Sample: s}); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
				}
				wg.Wait()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/phase")
		})
	}
}
