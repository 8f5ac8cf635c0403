package llm

import (
	"context"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/society-sim/society/agent"
)

// BenchmarkSamplePhase answers one PVQ-40 phase in sample mode as the
// engine drives it: agents asking their items in turn, one goroutine each,
// while Prefetch, started just before (StartPrefetch), fetches every
// sample the phase needs at the client's concurrency; one call per answer,
// against an endpoint that answers at once. An op is a phase of 8,800
// answers; ns/answer, cpu-ns/answer and allocs/answer are the client's cost
// of a call and of handing its reply to the agent that asked (the
// in-process server's included).
func BenchmarkSamplePhase(b *testing.B) {
	const (
		perPersona  = 20 // agents of each of the 11 personas
		concurrency = 64
	)
	srv := instantServer(b)
	in := pvq(b)
	personas := allPersonas(agent.StyleDescription)
	var qs []*agent.Question
	for _, p := range personas {
		for it := range in.Items {
			qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: it})
		}
	}
	answers := len(personas) * perPersona * len(in.Items)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		cfg := testConfig(srv.URL)
		cfg.Concurrency = concurrency
		cfg.Demand = func(agent.Persona) int { return perPersona }
		c, err := NewClient(cfg)
		if err != nil {
			b.Fatal(err)
		}
		wait := c.StartPrefetch(context.Background(), qs)
		var wg sync.WaitGroup
		for _, p := range personas {
			for s := range perPersona {
				wg.Go(func() {
					for it := range in.Items {
						if _, err := c.Ask(context.Background(), &agent.Question{Persona: p, Instrument: in, Item: it, Sample: s}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
		}
		wg.Wait()
		if err := wait(); err != nil {
			b.Fatal(err)
		}
		if n := c.Stats().Calls; n != int64(answers) {
			b.Fatalf("%d calls for %d answers", n, answers)
		}
		c.Close()
	}
	n := float64(b.N * answers)
	cpu := processCPU(b) - cpu0
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/answer")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/answer")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/answer")
}

// processCPU is the process's CPU time (user and system).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPrefetchPlan is the plan of a sample phase of 1,000 agents
// (11 personas of 91) × PVQ-40, one sample per segment: its 440 questions
// rendered and put in prefix order, its 40,040 segments counted, made
// before the first request goes out.
func BenchmarkPrefetchPlan(b *testing.B) {
	in := pvq(b)
	var qs []*agent.Question
	for _, p := range allPersonas(agent.StyleDescription) {
		for it := range in.Items {
			qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: it})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		cfg := testConfig("http://127.0.0.1:1")
		cfg.Demand = func(agent.Persona) int { return 91 }
		c, err := NewClient(cfg)
		if err != nil {
			b.Fatal(err)
		}
		pl, err := c.newPlan(qs, nil, nil)
		if err != nil || pl.count.planned.Load() != 40_040 {
			b.Fatal(pl.count.planned.Load(), err)
		}
		c.Close()
	}
}
