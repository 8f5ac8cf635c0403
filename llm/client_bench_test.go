package llm

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

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
