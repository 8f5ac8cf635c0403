package sim

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// Task asks the agents of one shard to answer items of an instrument with
// a model: a phase's unit of work.
type Task struct {
	Shard      int
	Model      string
	Instrument string
	Items      []int
	Round      int
	Style      agent.Style
	// Game makes the task a round of the Paired Charity Game.
	Game *GameRound
}

// GameRound is what a game task carries so that whoever serves it keeps no
// game state: the decision instrument asked after the probable choice,
// the memory of every agent of the shard, and the rate shown.
type GameRound struct {
	Decision string
	// First is the id of the shard's first agent, whose memory comes
	// first in Memories.
	First     int
	Memories  []agent.Memory
	RateShown bool
	Rate      int
}

// AgentTask is the agents' view of t, its instruments looked up with
// instrument; false when one is unknown.
func (t Task) AgentTask(instrument func(string) (*questionnaires.Instrument, bool)) (*agent.Task, bool) {
	in, ok := instrument(t.Instrument)
	if !ok {
		return nil, false
	}
	out := &agent.Task{Model: t.Model, Instrument: in, Items: t.Items, Round: t.Round, Style: t.Style}
	if g := t.Game; g != nil {
		dec, ok := instrument(g.Decision)
		if !ok {
			return nil, false
		}
		out.Game = &agent.GameTask{Decision: dec, Memory: g.Memories, RateShown: g.RateShown, Rate: g.Rate}
	}
	return out, true
}

// Dispatcher hands a run's tasks to its agents and delivers their answer
// batches back: the NATS work queue (bus) or memory (Local).
type Dispatcher interface {
	// Deliver hands every answer batch stored for the run to sink,
	// including those stored before it started (a resumed run), until
	// ctx is done or the run cannot go on (a task that failed for good),
	// which it returns. It calls caughtUp once every batch stored when it
	// began has gone to sink.
	Deliver(ctx context.Context, sink func(*agent.Batch) error, caughtUp func()) error
	// Dispatch hands tasks out and returns once they are safely queued.
	Dispatch(ctx context.Context, tasks []Task) error
	// Idle reports whether no task handed out is waiting or at work: a
	// phase still missing answers then needs its missing work again.
	Idle(ctx context.Context) (bool, error)
}

// Observer follows a run: the live metrics and the terminal's progress bar
// implement it. Start and Phase are called from the loop's goroutine,
// Batch from the dispatcher's, one batch at a time; all must return
// quickly.
type Observer interface {
	// Start is called once, before any task goes out.
	Start(Layout)
	// Phase is called just before a phase's tasks go out.
	Phase(PhaseStart)
	// Batch is called for every answer batch stored, with the run's answer
	// counts once it is.
	Batch(b *agent.Batch, n Counts)
}

// Counts are a run's answers: expected, and stored so far.
type Counts struct {
	Expected, Valid, Invalid int64
}

// PhaseStart is a phase about to hand out its tasks.
type PhaseStart struct {
	Plans  []analysis.Plan
	Shards int
	// Rounds are the game rounds recorded from the answers of the phases
	// before (the previous round, the last one before the closing phase).
	Rounds []Round
}

// Round is a recorded round of a game.
type Round struct {
	// Game names the game: the game, and the model when several play it.
	Game  string
	Round int
	// ByValue is the share of players of each dominant value code who
	// contributed.
	ByValue map[string]float64
}

// NoObserver observes nothing; embed it to implement part of Observer.
type NoObserver struct{}

func (NoObserver) Start(Layout)               {}
func (NoObserver) Phase(PhaseStart)           {}
func (NoObserver) Batch(*agent.Batch, Counts) {}

// Observers is an Observer telling each of its members in turn.
type Observers []Observer

func (os Observers) Start(l Layout) {
	for _, o := range os {
		o.Start(l)
	}
}

func (os Observers) Phase(ph PhaseStart) {
	for _, o := range os {
		o.Phase(ph)
	}
}

func (os Observers) Batch(b *agent.Batch, n Counts) {
	for _, o := range os {
		o.Batch(b, n)
	}
}

// Layout describes a run to its observers and dispatchers once the plan
// exists.
type Layout struct {
	// ID names the run (RunID), Name its scenario.
	ID, Name string
	Plan     *Plan
	// Shards is the number of shards the agents are cut into (ShardBounds).
	Shards int
	// Dispatcher is the run's dispatcher, for an observer that reads more
	// from it than the loop does (the answer backlog of a NATS run).
	Dispatcher Dispatcher
}

// ShardSizes are the number of agents of each shard.
func (l Layout) ShardSizes() []int {
	n := l.Plan.Study.Pool.Size()
	out := make([]int, l.Shards)
	for s := range out {
		lo, hi := ShardBounds(s, n, l.Shards)
		out[s] = hi - lo
	}
	return out
}

// Loop runs a plan's phases over a dispatcher: before each phase it
// hands out the phase's missing tasks, and it waits until every answer of
// the phase is stored before the next. It is the one loop of every run:
// single-process, distributed (the orchestrator) and in memory.
type Loop struct {
	Layout   Layout
	Observer Observer // nil: none
	// Stall, when positive, is how long a phase may go without a new
	// answer while the dispatcher is idle before its missing work is
	// handed out again (a distributed run whose hosts lost tasks).
	Stall time.Duration
	Log   *slog.Logger // nil: no log
	// Prefetch says that the plan's models are those the agents ask (a
	// run whose agents live in this process): at the start of each
	// questionnaire phase (not a game round) the loop has every model
	// that is a Prefetcher fetch the phase's distinct questions ahead of
	// the agents, and stops it when the phase ends.
	Prefetch bool
}

// Prefetcher is a model that can fetch a phase's questions before its
// agents ask them, so that as many requests are in flight as the model
// allows instead of one per persona or agent (llm.Client). Prefetch must
// leave every answer as the agents' own questions would have made it;
// its error only means the agents ask for themselves what it could not
// fetch.
type Prefetcher interface {
	Prefetch(ctx context.Context, qs []*agent.Question) error
}

// stallEvery is how often a phase checks whether its answers stalled.
const stallEvery = 100 * time.Millisecond

// Run runs every phase and returns the collected answers. It returns
// after every goroutine it started has exited; on an error or when ctx
// ends the collector is incomplete and is not returned.
func (l *Loop) Run(ctx context.Context) (*analysis.Collector, error) {
	lay := l.Layout
	p, d := lay.Plan, lay.Dispatcher
	obs := l.Observer
	if obs == nil {
		obs = NoObserver{}
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := p.Study.Pool.Size()
	col := analysis.NewCollector(n, p.Study.Plans)
	have := newBatchSet()
	obs.Start(lay)

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	caughtUp := make(chan struct{})
	var once sync.Once
	sink := func(b *agent.Batch) error {
		if err := col.Add(b); err != nil {
			return err
		}
		have.add(b)
		e, v, i := col.Counts()
		obs.Batch(b, Counts{Expected: e, Valid: v, Invalid: i})
		return nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Deliver(runCtx, sink, func() { once.Do(func() { close(caughtUp) }) }); err != nil {
			cancel(err)
		}
	}()
	select {
	case <-caughtUp:
	case <-runCtx.Done():
		return nil, cause(runCtx)
	}
	if e, v, i := col.Counts(); v+i > 0 {
		log.Info("answers already stored", "run", lay.ID, "stored", v+i, "expected", e)
	}

	// Without a stall to watch, the loop waits only for answers.
	var tick <-chan time.Time
	if l.Stall > 0 {
		t := time.NewTicker(stallEvery)
		defer t.Stop()
		tick = t.C
	}
	for _, ph := range p.Phases {
		if ph.before != nil {
			if err := ph.before(runCtx, col); err != nil {
				return nil, err
			}
		}
		obs.Phase(PhaseStart{Plans: ph.Plans, Shards: lay.Shards, Rounds: p.games.recorded()})
		stop := func() {}
		if l.Prefetch && ph.tasks == nil {
			stop = l.prefetch(runCtx, missingTasks(ph, have, p.Styles, lay.Shards, n), log)
		}
		err := l.phase(runCtx, ph, col, have, tick, log)
		stop()
		if err != nil {
			return nil, err
		}
	}
	return col, nil
}

// phase hands out ph's missing tasks and waits until its answers are
// stored, handing its missing work out again when they stall.
func (l *Loop) phase(runCtx context.Context, ph Phase, col *analysis.Collector, have *batchSet, tick <-chan time.Time, log *slog.Logger) error {
	d := l.Layout.Dispatcher
	if err := l.dispatch(runCtx, ph, have); err != nil {
		if runCtx.Err() != nil {
			return cause(runCtx)
		}
		return err
	}
	last, lastMove := int64(-1), time.Now()
	for !phaseDone(col, ph) {
		select {
		case <-col.Notify():
		case <-runCtx.Done():
			return cause(runCtx)
		case <-tick:
			_, v, i := col.Counts()
			answered := v + i
			if answered != last {
				last, lastMove = answered, time.Now()
				continue
			}
			if time.Since(lastMove) < l.Stall {
				continue
			}
			lastMove = time.Now()
			if idle, err := d.Idle(runCtx); err == nil && idle && !phaseDone(col, ph) {
				log.Warn("answers are missing and no task is queued; handing the missing work out again", "run", l.Layout.ID)
				if err := l.dispatch(runCtx, ph, have); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// prefetch starts the fetch of the phase's tasks' distinct questions
// (PrefetchTasks) and returns what stops it: the phase's answers are all
// in by then, so what it has not fetched is no longer needed.
func (l *Loop) prefetch(ctx context.Context, tasks []Task, log *slog.Logger) (stop func()) {
	return PrefetchTasks(ctx, l.Layout.Plan, tasks, l.Layout.Shards, false, l.Observer, log.With("run", l.Layout.ID))
}

// PrefetchTasks starts, for every model of tasks that is a Prefetcher,
// the fetch of the distinct questions the agents of tasks will ask (the
// run split into shards shards; game tasks are left out), and returns
// what stops it and waits for its goroutines. It is how a single process
// fetches a phase ahead, and how an agent host fetches the tasks it
// takes. share says that tasks are this process's share of the phase (an
// agent host's): each model then fetches only the samples of the tasks'
// agents (SharePrefetcher; a model that is not one fetches nothing), where
// a single process fetches every sample of each persona its tasks ask.
// obs, when it is a PrefetchObserver, is told how far the fetch is; nil
// tells no one. Errors are logged to log (nil: not logged): the
// agents ask for what it could not fetch and report their own errors.
// The fetch never changes an answer (see Prefetcher), only how soon it
// comes.
func PrefetchTasks(ctx context.Context, p *Plan, tasks []Task, shards int, share bool, obs Observer, log *slog.Logger) (stop func()) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	qs, first := phaseQuestions(p, tasks, shards)
	ctx, cancel := context.WithCancel(ctx)
	tally := newPrefetchTally(obs)
	var wg sync.WaitGroup
	for model, q := range qs {
		var fetch func() error
		switch pf := p.Models[model].(type) {
		case SharePrefetcher:
			if share {
				fetch = pf.StartPrefetchShare(ctx, q, first[model], tally.progress(model))
				break
			}
			fetch = pf.StartPrefetchCounted(ctx, q, tally.progress(model))
		case CountingPrefetcher:
			if share {
				continue
			}
			// Planned here, before the phase's tasks go out: agents
			// that began first would fetch segments beside the plan,
			// some twice, and its total would leave theirs out.
			fetch = pf.StartPrefetchCounted(ctx, q, tally.progress(model))
		case Prefetcher:
			if share {
				continue
			}
			fetch = func() error { return pf.Prefetch(ctx, q) }
		default:
			continue
		}
		wg.Go(func() {
			if err := fetch(); err != nil && ctx.Err() == nil {
				log.Warn("prefetch of the phase's questions", "model", model, "err", err)
			}
		})
	}
	// The fetch is over when every model's is, or when the phase ends.
	over := make(chan struct{})
	go func() {
		wg.Wait()
		tally.end()
		close(over)
	}()
	return func() {
		cancel()
		<-over
	}
}

// questionKey is a question as a model sees it, the agent's rank apart.
type questionKey struct {
	persona    agent.Persona
	instrument string
	item       int
	round      int
}

// phaseQuestions lists, per model, the distinct questions the agents of
// tasks will ask, as they ask them (the persona's style set to the
// task's), each with the highest rank (Sample) among the agents asking
// it, and beside each the lowest (first). Ranks count up with agent id
// (population.Pool), so the agents of a shard holding a persona have the
// ranks from its lowest to its highest. Game tasks are left out.
func phaseQuestions(p *Plan, tasks []Task, shards int) (qs map[string][]*agent.Question, first map[string][]int) {
	pool := p.Study.Pool
	n := pool.Size()
	type span struct{ lo, hi int }
	top := map[string]map[questionKey]span{}
	for _, t := range tasks {
		if t.Game != nil {
			continue
		}
		lo, hi := ShardBounds(t.Shard, n, shards)
		ranks := map[values.Value]span{}
		for id := lo; id < hi; id++ {
			v, r := pool.Persona[id], int(pool.Rank[id])
			if s, ok := ranks[v]; !ok {
				ranks[v] = span{r, r}
			} else {
				ranks[v] = span{min(s.lo, r), max(s.hi, r)}
			}
		}
		m := top[t.Model]
		if m == nil {
			m = map[questionKey]span{}
			top[t.Model] = m
		}
		for v, r := range ranks {
			for _, it := range t.Items {
				k := questionKey{agent.Persona{Value: v, Style: t.Style}, t.Instrument, it, t.Round}
				if old, ok := m[k]; ok {
					r = span{min(old.lo, r.lo), max(old.hi, r.hi)}
				}
				m[k] = r
			}
		}
	}
	qs, first = map[string][]*agent.Question{}, map[string][]int{}
	for model, m := range top {
		mq := make([]*agent.Question, 0, len(m))
		mf := make([]int, 0, len(m))
		for k, r := range m {
			in, ok := p.Instrument(k.instrument)
			if !ok {
				continue
			}
			mq = append(mq, &agent.Question{Persona: k.persona, Instrument: in, Item: k.item, Sample: r.hi, Round: k.round})
			mf = append(mf, r.lo)
		}
		qs[model], first[model] = mq, mf
	}
	return qs, first
}

// dispatch hands out the tasks of ph still missing answers.
func (l *Loop) dispatch(ctx context.Context, ph Phase, have *batchSet) error {
	p := l.Layout.Plan
	tasks := missingTasks(ph, have, p.Styles, l.Layout.Shards, p.Study.Pool.Size())
	if len(tasks) == 0 {
		return nil
	}
	return l.Layout.Dispatcher.Dispatch(ctx, tasks)
}

func phaseDone(col *analysis.Collector, ph Phase) bool {
	for _, pl := range ph.Plans {
		if !col.Complete(pl) {
			return false
		}
	}
	return true
}

func cause(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return ctx.Err()
}
