package agent_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// distModel answers every question with one fixed distribution, as the
// synthetic respondents do, so that the benchmarks measure the agents.
type distModel struct{ dist []float64 }

func (m distModel) Ask(context.Context, *agent.Question) (agent.Reply, error) {
	return agent.Reply{Dist: m.dist}, nil
}

func newAgents(n int) []agent.Agent {
	as := make([]agent.Agent, n)
	for i := range as {
		as[i] = agent.New(i, agent.Persona{Value: values.Value(i%11 - 1)}, i/11, 1)
	}
	return as
}

// TestShardStopsBetweenEvents runs in a synctest bubble: the bubble's
// clock moves only when every goroutine is blocked, so the timer fires
// only when the shard can no longer stop by itself, however slowly a
// busy machine runs it.
func TestShardStopsBetweenEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := pvq(t)
		sh := agent.NewShard(0, 0, newAgents(50), map[string]agent.Model{"m": distModel{[]float64{1, 1, 1, 1, 1, 1}}})
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- sh.Run(ctx) }()
		if _, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: in, Items: []int{0, 1}}); err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case err := <-ran:
			if err != nil {
				t.Fatalf("run: got %v, want nil", err)
			}
		case <-time.After(time.Hour):
			t.Fatal("run: blocked for good after its context ended")
		}
		if _, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: in, Items: []int{0}}); err == nil {
			t.Error("do on a stopped shard: got nil error, want one")
		}
	})
}

// TestShardStopsWhileAnEventIsServed runs in a synctest bubble, as
// TestShardStopsBetweenEvents does. With 2000 agents some see the halt
// before the event: the bubble, which fails when goroutines stay blocked
// at its end, shows that no wait for the event is left behind.
func TestShardStopsWhileAnEventIsServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := pvq(t)
		release := make(chan struct{})
		var once sync.Once
		asked := make(chan struct{})
		m := &blockingModel{release: release, asked: func() { once.Do(func() { close(asked) }) }}
		sh := agent.NewShard(0, 0, newAgents(2000), map[string]agent.Model{"m": m})
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- sh.Run(ctx) }()
		did := make(chan error, 1)
		go func() {
			_, err := sh.Do(context.Background(), &agent.Task{Model: "m", Instrument: in, Items: []int{0, 1, 2}})
			did <- err
		}()
		<-asked
		cancel()
		close(release)
		for name, c := range map[string]chan error{"run": ran, "do": did} {
			select {
			case <-c:
			case <-time.After(time.Hour):
				t.Fatalf("%s: blocked for good after the shard was stopped", name)
			}
		}
	})
}

type blockingModel struct {
	release chan struct{}
	asked   func()
}

func (m *blockingModel) Ask(ctx context.Context, q *agent.Question) (agent.Reply, error) {
	m.asked()
	<-m.release
	return agent.Reply{Answer: agent.Answer{Value: 3, Valid: true}}, nil
}

// BenchmarkShardDo is one event for a shard of 4,096 agents answering the
// whole PVQ-40 from a fixed distribution: waking every agent goroutine,
// 40 model calls and draws each, and the batches. Reported per answer.
func BenchmarkShardDo(b *testing.B) {
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		b.Fatal(err)
	}
	const agents = 4096
	sh := agent.NewShard(0, 0, newAgents(agents), map[string]agent.Model{"m": distModel{[]float64{.1, .1, .2, .3, .2, .1}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sh.Run(ctx) }()
	defer func() { cancel(); <-done }()
	items := make([]int, len(in.Items))
	for i := range items {
		items[i] = i
	}
	task := &agent.Task{Model: "m", Instrument: in, Items: items}
	b.ResetTimer()
	for b.Loop() {
		if _, err := sh.Do(ctx, task); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*agents*len(items)), "ns/answer")
}

// BenchmarkShardStart is starting and stopping a shard of 4,096 agent
// goroutines. Reported per agent.
func BenchmarkShardStart(b *testing.B) {
	const agents = 4096
	as := newAgents(agents)
	m := map[string]agent.Model{"m": distModel{[]float64{1}}}
	for b.Loop() {
		sh := agent.NewShard(0, 0, as, m)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); sh.Run(ctx) }()
		cancel()
		<-done
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*agents), "ns/agent")
}

func BenchmarkDraw(b *testing.B) {
	dist := []float64{.1, .1, .2, .3, .2, .1}
	var sink int
	i := uint64(0)
	for b.Loop() {
		i++
		sink += agent.Draw(dist, 42, 7, i, 0)
	}
	_ = sink
}
