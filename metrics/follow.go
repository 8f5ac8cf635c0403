package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/sim"
)

// liveEvery is how often a Follower refreshes the values similarity so far
// and the answer backlog: a few seconds is live enough for a dashboard and
// keeps the cost of the sample negligible beside the run.
const liveEvery = 2 * time.Second

// Follower keeps one run's live figures (a Live) fresh while the run
// lasts, from a goroutine it stops in Finish. A nil *Follower (a process
// without metrics) does nothing.
type Follower struct {
	live *Live

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Follow follows the run this process drives: Observer is the run's
// observer. A nil m returns nil.
func Follow(ctx context.Context, m *Metrics) *Follower {
	if m == nil {
		return nil
	}
	return follow(ctx, NewLive(m, LiveSampleMax))
}

// FollowAnswers follows a run whose answers this process reads but whose
// loop runs elsewhere (the analysis service): the same live figures as the
// orchestrator's, fed by the answers as they are stored (Sink), without
// society_agents (see Live.FollowAnswers). A nil m returns nil.
func FollowAnswers(ctx context.Context, m *Metrics, lay sim.Layout) *Follower {
	if m == nil {
		return nil
	}
	l := NewLive(m, LiveSampleMax).FollowAnswers()
	l.Start(lay)
	return follow(ctx, l)
}

func follow(ctx context.Context, l *Live) *Follower {
	f := &Follower{live: l}
	var lctx context.Context
	lctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		l.Run(lctx, liveEvery)
	}()
	return f
}

// Observer is the run's observer (sim.Observer): nil for a nil f.
func (f *Follower) Observer() sim.Observer {
	if f == nil {
		return nil
	}
	return f.live
}

// Sink stores answer batches in col and, when f is not nil, counts them for
// the metrics once col holds them.
func (f *Follower) Sink(col *analysis.Collector) func(*agent.Batch) error {
	if f == nil {
		return col.Add
	}
	return func(b *agent.Batch) error {
		if err := col.Add(b); err != nil {
			return err
		}
		e, v, i := col.Counts()
		f.live.Batch(b, sim.Counts{Expected: e, Valid: v, Invalid: i})
		return nil
	}
}

// Finish stops the refreshing and publishes the run's final figures (see
// Live.Finish): every agent finished and, when the run succeeded (out not
// nil), the similarities of results.json. Later calls do nothing, so a
// deferred Finish(nil) ends a run that failed.
func (f *Follower) Finish(out *analysis.Outcome) {
	if f == nil {
		return
	}
	f.cancel()
	f.wg.Wait()
	f.live.Finish(out)
}
