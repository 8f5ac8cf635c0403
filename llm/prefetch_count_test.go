package llm

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/society-sim/society/agent"
)

// progressLog keeps the largest count a fetch's progress was told and the
// planned requests, as a run's progress display does.
type progressLog struct {
	mu            sync.Mutex
	done, planned int
	calls         int
}

func (l *progressLog) progress(done, planned int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done, l.planned, l.calls = max(l.done, done), planned, l.calls+1
}

func (l *progressLog) get() (done, planned int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done, l.planned
}

// heldServer answers as a seeded server does, holding the first
// request until release is closed; sent counts the requests besides
// strict retries.
func heldServer(t *testing.T) (srv *openAIServer, sent *atomic.Int64, first <-chan struct{}, release chan struct{}) {
	arrived, rel := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sent = new(atomic.Int64)
	srv = newOpenAIServer(t, func(r seenReq) (int, any) {
		if !r.strict() {
			sent.Add(1)
		}
		held := false
		once.Do(func() { held = true; close(arrived) })
		if held {
			select {
			case <-rel:
			case <-r.Ctx.Done():
			}
		}
		return 200, seededReply(r)
	})
	return srv, sent, arrived, rel
}

// The requests a fetch ahead counts are those answered, whoever made them,
// and the Asks that meet a segment queued by the plan wait for the
// fetch's request: the count ends equal to the server's, with no request
// made twice.
func TestPrefetchCountsAsksRequests(t *testing.T) {
	in := pvq(t)
	var sent atomic.Int64
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		if !r.strict() {
			sent.Add(1)
		}
		return 200, seededReply(r)
	})
	cfg := testConfig(srv.URL)
	cfg.Seed = ptr(uint64(1))
	cfg.Demand = func(agent.Persona) int { return 3 }
	c := newClient(t, cfg)
	var qs []*agent.Question
	for _, p := range allPersonas(agent.StyleDescription) {
		qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: 0})
	}
	var log progressLog
	// The plan is made; its workers have not begun when the agents ask
	// for the last question's 3 segments.
	pl, err := c.newPlan(qs, nil, log.progress)
	if err != nil {
		t.Fatal(err)
	}
	q := qs[len(qs)-1]
	asked := make(chan error, 3)
	for s := range 3 {
		go func() {
			qq := *q
			qq.Sample = s
			_, err := c.Ask(context.Background(), &qq)
			asked <- err
		}()
	}
	for c.segWaiting.Load() < 3 && sent.Load() == 0 {
		runtime.Gosched()
	}
	if done, _ := log.get(); done != 0 || sent.Load() != 0 {
		t.Errorf("Asks for queued segments: progress says %d, the server %d; want 0, 0 (the Asks wait for the fetch)", done, sent.Load())
	}
	if err := c.runPrefetch(context.Background(), pl); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-asked; err != nil {
			t.Fatal(err)
		}
	}
	if done, planned := log.get(); planned != 3*len(qs) || done != planned || int64(done) != sent.Load() {
		t.Errorf("at the end: progress %d/%d, server %d requests; want %d/%d, as many as the server's", done, planned, sent.Load(), 3*len(qs), 3*len(qs))
	}
}

// A plan made while an Ask's request is in flight still counts that
// request among those planned, and counts it when answered: the total is
// the plan's whenever the agents begin.
func TestPrefetchPlanCountsAsksInFlight(t *testing.T) {
	in := pvq(t)
	srv, sent, first, release := heldServer(t)
	cfg := testConfig(srv.URL)
	cfg.Seed, cfg.Concurrency = ptr(uint64(1)), 4
	cfg.Demand = func(agent.Persona) int { return 3 }
	c := newClient(t, cfg)
	var qs []*agent.Question
	for _, p := range allPersonas(agent.StyleDescription) {
		qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: 0})
	}
	asked := make(chan error, 1)
	go func() {
		_, err := c.Ask(context.Background(), qs[0])
		asked <- err
	}()
	<-first // the Ask's request is in flight
	var log progressLog
	wait := c.startPrefetch(context.Background(), qs, nil, log.progress)
	close(release)
	if err := <-asked; err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if done, planned := log.get(); planned != 3*len(qs) || done != planned || int64(done) != sent.Load() {
		t.Errorf("progress %d/%d, server %d requests; want %d/%d, %d", done, planned, sent.Load(), 3*len(qs), 3*len(qs), 3*len(qs))
	}
}

// TestPrefetchPlansAtOnce: an agent host serving two tasks at once plans
// their fetches on one client, and the second plan takes over the first's
// distributions while the first's requests are answered. A plan's count
// is published only once its planned requests are counted: a distribution
// answered for the other plan counted toward this one while its planned
// requests were still being added up (a data race; the count could show
// more done than planned).
func TestPrefetchPlansAtOnce(t *testing.T) {
	ph := phase{in: pvq(t), perPersona: 1}
	for i := range ph.in.Items {
		ph.items = append(ph.items, i)
	}
	// Questions under three contexts: a plan of 1,320 distributions,
	// whose registering is long enough for the other plan's requests to
	// be answered meanwhile.
	var qs []*agent.Question
	for _, ctx := range []string{"", "a", "b"} {
		for _, q := range ph.distinct() {
			q.Context = ctx
			qs = append(qs, q)
		}
	}
	for range 2 {
		srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, seededReply(r) })
		cfg := testConfig(srv.URL)
		cfg.Mode, cfg.Seed, cfg.Concurrency = ModeDistribution, ptr(uint64(7)), 32
		c := newClient(t, cfg)
		// The second plan is made once the first's requests are being
		// answered.
		answered := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		for i := range 2 {
			if i == 1 {
				<-answered
			}
			wg.Go(func() {
				progress := func(done, planned int) {
					if done > planned {
						t.Errorf("progress: %d requests done of %d planned", done, planned)
					}
					if done > 0 {
						once.Do(func() { close(answered) })
					}
				}
				if err := c.StartPrefetchCounted(context.Background(), qs, progress)(); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
}
