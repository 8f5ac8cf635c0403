package llm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// seededReply answers as a vLLM server with a seed does: the same request
// gets the same reply, choice j of a request drawn from its seed and j.
// Distribution requests get top log-probabilities drawn from the prompt,
// some covering too little of the mass (sampled instead); sampled replies
// are mostly readable, some not, and a strict retry reads for half of
// those.
func seededReply(r seenReq) map[string]any {
	h := func(parts ...string) uint64 {
		f := fnv.New64a()
		for _, p := range parts {
			f.Write([]byte(p))
			f.Write([]byte{0})
		}
		return f.Sum64()
	}
	text := r.text()
	if r.dist() {
		x := h(text)
		a, b := strconv.Itoa(int(x%6)+1), strconv.Itoa(int(x/6%6)+1)
		if x%5 == 0 {
			return topReply(r, map[string]float64{"The": 0.8, a: 0.1})
		}
		return topReply(r, map[string]float64{a: 0.55, " " + b: 0.3, "I": 0.1})
	}
	seed, _ := r.seed()
	texts := make([]string, r.n())
	for j := range texts {
		x := h(text, strconv.FormatUint(seed, 10), strconv.Itoa(j))
		switch {
		case r.strict() && x%2 == 0:
			texts[j] = "I would rather not say."
		case !r.strict() && x%7 == 0:
			texts[j] = "As an AI, I cannot have values."
		default:
			texts[j] = strconv.Itoa(int(x%6) + 1)
		}
	}
	return textsReply(r, texts...)
}

// phase is a phase's questions as the engine sees them: every persona,
// a few items, perPersona agents of each persona.
type phase struct {
	in         *questionnaires.Instrument
	items      []int
	perPersona int
}

func (ph phase) personas() []agent.Persona { return allPersonas(agent.StyleDescription) }

// distinct is the phase's distinct questions, Sample the highest rank.
func (ph phase) distinct() []*agent.Question {
	var qs []*agent.Question
	for _, p := range ph.personas() {
		for _, it := range ph.items {
			qs = append(qs, &agent.Question{Persona: p, Instrument: ph.in, Item: it, Sample: ph.perPersona - 1})
		}
	}
	return qs
}

type answerKey struct {
	v            values.Value
	item, sample int
}

// answer asks as agents do: each agent its items one after another, the
// agents at once.
func (ph phase) answer(t *testing.T, c *Client) map[answerKey]agent.Reply {
	t.Helper()
	var (
		mu   sync.Mutex
		out  = map[answerKey]agent.Reply{}
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range ph.personas() {
		for s := range ph.perPersona {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, it := range ph.items {
					r, err := c.Ask(context.Background(), &agent.Question{Persona: p, Instrument: ph.in, Item: it, Sample: s})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					}
					out[answerKey{p.Value, it, s}] = r
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// requestLog lists a server's requests, sorted, as (kind, prompt, seed, n).
func requestLog(srv *openAIServer) []string {
	var out []string
	for _, r := range srv.requests() {
		seed, _ := r.seed()
		h := fnv.New64a()
		h.Write([]byte(r.text()))
		out = append(out, fmt.Sprintf("dist=%v n=%d seed=%d prompt=%x", r.dist(), r.n(), seed, h.Sum64()))
	}
	slices.Sort(out)
	return out
}

// sampleRequests is requestLog without the distribution requests.
func sampleRequests(log []string) []string {
	return slices.DeleteFunc(slices.Clone(log), func(s string) bool { return strings.HasPrefix(s, "dist=true") })
}

// Prefetch changes the order of the requests, never the answers: the same
// agents get the same answers with and without it, from the same requests.
func TestPrefetchSameAnswers(t *testing.T) {
	ph := phase{in: pvq(t), items: []int{0, 13, 39}, perPersona: 5}
	type variant struct {
		mode     string
		samples  int
		demand   int // 0: unknown
		cache    bool
		parallel bool // agents ask while Prefetch runs
	}
	var vs []variant
	for _, mode := range []string{ModeSample, ModeDistribution} {
		for _, cache := range []bool{false, true} {
			for _, par := range []bool{false, true} {
				vs = append(vs, variant{mode, 1, 0, cache, par}, variant{mode, 3, 5, cache, par}, variant{mode, 3, 0, cache, par})
			}
		}
	}
	for _, v := range vs {
		t.Run(fmt.Sprintf("%s samples %d demand %d cache %v parallel %v", v.mode, v.samples, v.demand, v.cache, v.parallel), func(t *testing.T) {
			run := func(prefetch bool) (map[answerKey]agent.Reply, []string, ClientStats) {
				srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, seededReply(r) })
				cfg := testConfig(srv.URL)
				cfg.Mode, cfg.Samples, cfg.Seed, cfg.Concurrency = v.mode, v.samples, ptr(uint64(7)), 16
				if v.demand > 0 {
					cfg.Demand = func(agent.Persona) int { return v.demand }
				}
				if v.cache {
					cfg.Cache = NewCache(NewMemStore())
				}
				c := newClient(t, cfg)
				if !prefetch {
					return ph.answer(t, c), requestLog(srv), c.Stats()
				}
				// plan, then run: as Prefetch does, with the agents
				// asking only once the segments are registered.
				pl, err := c.newPlan(ph.distinct(), nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- c.runPrefetch(context.Background(), pl) }()
				if !v.parallel {
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				}
				got := ph.answer(t, c)
				if v.parallel {
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				}
				return got, requestLog(srv), c.Stats()
			}
			want, wantLog, wantSt := run(false)
			got, gotLog, gotSt := run(true)
			if len(got) != len(want) {
				t.Fatalf("got %d answers, want %d", len(got), len(want))
			}
			var dists, invalid int
			for k, w := range want {
				g := got[k]
				if !slices.Equal(g.Dist, w.Dist) || g.Answer != w.Answer {
					t.Errorf("%v item %d sample %d: got %+v, want %+v", k.v, k.item, k.sample, g, w)
				}
				if w.Dist != nil {
					dists++
				}
				if w.Dist == nil && !w.Answer.Valid {
					invalid++
				}
			}
			if v.mode == ModeDistribution && (dists == 0 || dists == len(want)) {
				t.Errorf("%d of %d answers are distributions, want some and some sampled", dists, len(want))
			}
			if invalid == 0 {
				t.Errorf("no invalid answer among %d, want the unreadable path covered", len(want))
			}
			// Without a cache, distribution-mode questions sampled
			// instead ask for the distribution again on every Ask (as
			// without Prefetch), so only their sample requests are
			// compared request for request; the distinct requests are
			// the same.
			if v.mode == ModeDistribution && !v.cache {
				if g, w := slices.Compact(slices.Clone(gotLog)), slices.Compact(slices.Clone(wantLog)); !slices.Equal(g, w) {
					t.Errorf("distinct requests differ: got %d, want %d", len(g), len(w))
				}
				gotLog, wantLog = sampleRequests(gotLog), sampleRequests(wantLog)
			}
			if !slices.Equal(gotLog, wantLog) {
				t.Errorf("requests differ: got %d, want %d\ngot  %q\nwant %q", len(gotLog), len(wantLog), gotLog, wantLog)
			}
			// Cache hits of distributions sampled instead depend on
			// which Ask fetched the distribution (the others read it
			// from the store), with or without Prefetch.
			if gotSt.Invalid != wantSt.Invalid || gotSt.StrictRetries != wantSt.StrictRetries ||
				(v.cache && gotSt.Calls != wantSt.Calls) ||
				(v.cache && v.mode == ModeSample && gotSt.CacheHits != wantSt.CacheHits) {
				t.Errorf("stats: got %+v, want %+v", gotSt, wantSt)
			}
		})
	}
}

// gate is a counting server handler: each request waits until target
// requests are in flight at once (or the client gives it up), then
// answers. peak is the most ever in flight.
type gate struct {
	target   int64
	inFlight atomic.Int64
	peak     atomic.Int64
	once     sync.Once
	reached  chan struct{}
}

func newGate(target int) *gate { return &gate{target: int64(target), reached: make(chan struct{})} }

func (g *gate) respond(r seenReq) (int, any) {
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
	case <-r.Ctx.Done():
	}
	return 200, seededReply(r)
}

// testContext ends a little before the test's deadline, so that a test
// stuck waiting for a server reports what it saw instead of panicking.
func testContext(t *testing.T) context.Context {
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		c, cancel := context.WithDeadline(ctx, d.Add(-10*time.Second))
		t.Cleanup(cancel)
		ctx = c
	}
	return ctx
}

// Prefetch keeps min(concurrency, distinct requests) in flight, where agents
// walking their items hold one request per persona (distribution mode) or
// per agent (sample mode).
func TestPrefetchPeakInFlight(t *testing.T) {
	in := pvq(t)
	tests := []struct {
		name        string
		mode        string
		items       int
		demand      int
		concurrency int
		want        int
	}{
		{"distribution, concurrency below the prompts", ModeDistribution, 3, 0, 8, 8},
		{"distribution, prompts below the concurrency", ModeDistribution, 3, 0, 64, 33},
		{"sample, fewer agents than the concurrency", ModeSample, 5, 2, 16, 16},
		{"sample, requests below the concurrency", ModeSample, 1, 2, 64, 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate(tt.want)
			srv := newOpenAIServer(t, g.respond)
			cfg := testConfig(srv.URL)
			cfg.Mode, cfg.Concurrency, cfg.Seed = tt.mode, tt.concurrency, ptr(uint64(1))
			// A distribution sampled instead is read again from the
			// cache by each Ask; without one it would be asked for again.
			cfg.Cache = NewCache(NewMemStore())
			if tt.demand > 0 {
				cfg.Demand = func(agent.Persona) int { return tt.demand }
			}
			c := newClient(t, cfg)
			var qs []*agent.Question
			for _, p := range allPersonas(agent.StyleDescription) {
				for it := range tt.items {
					qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: it})
				}
			}
			err := c.Prefetch(testContext(t), qs)
			if peak := g.peak.Load(); err != nil || peak != int64(tt.want) {
				t.Fatalf("got peak %d in flight (error %v), want %d", peak, err, tt.want)
			}
			// Every answer is now in memory: asking costs no request.
			calls := srv.calls.Load()
			for _, q := range qs {
				for s := range max(tt.demand, 1) {
					qq := *q
					qq.Sample = s
					if _, err := c.Ask(context.Background(), &qq); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Except for the samples of distributions sampled instead
			// (one per such prompt here), left to the Asks.
			st := c.Stats()
			if got := srv.calls.Load() - calls - st.StrictRetries; got != st.Fallbacks {
				t.Errorf("asking after Prefetch made %d requests besides strict retries, want %d", got, st.Fallbacks)
			}
		})
	}
}

// An Ask for a segment Prefetch is fetching waits for that request, and
// so does one for a segment Prefetch has queued but not started: the
// segment is requested once, by Prefetch (Asks that took queued segments
// over made 22,000 of a sample phase's 40,000 requests, each handing a
// slot of the limiter to another goroutine). A Prefetch whose context
// ends hands its queued segments back to the Asks.
func TestPrefetchAskJoins(t *testing.T) {
	in := pvq(t)
	persona := agent.Persona{Value: values.Benevolence, Style: agent.StyleDescription}
	q := &agent.Question{Persona: persona, Instrument: in, Item: 2, Sample: 3}
	newPair := func(t *testing.T, respond func(seenReq) (int, any)) (*openAIServer, *Client) {
		srv := newOpenAIServer(t, respond)
		cfg := testConfig(srv.URL)
		cfg.Samples, cfg.Seed = 4, ptr(uint64(3))
		return srv, newClient(t, cfg)
	}
	askFour := func(t *testing.T, c *Client) {
		var wg sync.WaitGroup
		for s := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				qq := *q
				qq.Sample = s
				if _, err := c.Ask(context.Background(), &qq); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}

	t.Run("in flight", func(t *testing.T) {
		arrived, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		srv, c := newPair(t, func(r seenReq) (int, any) {
			if !r.strict() {
				once.Do(func() { close(arrived) })
				<-release
			}
			return 200, seededReply(r)
		})
		done := make(chan error, 1)
		go func() { done <- c.Prefetch(context.Background(), []*agent.Question{q}) }()
		<-arrived
		asked := make(chan struct{})
		go func() { askFour(t, c); close(asked) }()
		for c.segWaiting.Load() < 4 {
			runtime.Gosched()
		}
		close(release)
		<-asked
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := srv.calls.Load() - c.Stats().StrictRetries; got != 1 {
			t.Errorf("got %d segment requests, want 1", got)
		}
	})

	// queued plans the segment and has four Asks wait for it before
	// Prefetch's workers begin; asked is closed once they are answered.
	queued := func(t *testing.T) (srv *openAIServer, c *Client, pl *prefetchPlan, asked chan struct{}) {
		srv, c = newPair(t, func(r seenReq) (int, any) { return 200, seededReply(r) })
		pl, err := c.newPlan([]*agent.Question{q}, nil, nil)
		if n := pl.count.planned.Load(); err != nil || n != 1 {
			t.Fatalf("planned %d requests (error %v), want 1", n, err)
		}
		asked = make(chan struct{})
		go func() { askFour(t, c); close(asked) }()
		for c.segWaiting.Load() < 4 && srv.calls.Load() == 0 {
			runtime.Gosched()
		}
		if n := srv.calls.Load(); n != 0 {
			t.Fatalf("the Asks made %d requests for a segment Prefetch had queued; want them to wait for it", n)
		}
		return srv, c, pl, asked
	}

	t.Run("queued", func(t *testing.T) {
		srv, c, pl, asked := queued(t)
		if err := c.runPrefetch(context.Background(), pl); err != nil {
			t.Fatal(err)
		}
		<-asked
		if got := srv.calls.Load() - c.Stats().StrictRetries; got != 1 {
			t.Errorf("got %d segment requests, want 1", got)
		}
	})

	t.Run("queued, then canceled", func(t *testing.T) {
		// The Asks waiting for a queued segment fetch it themselves when
		// Prefetch's context ends before its workers reach it.
		srv, c, pl, asked := queued(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.runPrefetch(ctx, pl); !errors.Is(err, context.Canceled) {
			t.Fatalf("got error %v, want context.Canceled", err)
		}
		<-asked
		if got := srv.calls.Load() - c.Stats().StrictRetries; got != 1 {
			t.Errorf("got %d segment requests, want 1", got)
		}
	})

	t.Run("canceled", func(t *testing.T) {
		// A Prefetch whose context ends hands its queued segments back:
		// the Asks fetch them themselves.
		srv, c := newPair(t, func(r seenReq) (int, any) { return 200, seededReply(r) })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Prefetch(ctx, []*agent.Question{q}); !errors.Is(err, context.Canceled) {
			t.Fatalf("got error %v, want context.Canceled", err)
		}
		askFour(t, c)
		if got := srv.calls.Load() - c.Stats().StrictRetries; got != 1 {
			t.Errorf("got %d segment requests, want 1", got)
		}
	})
}

func TestPrefetchMalformed(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, seededReply(r) })
	c := newClient(t, testConfig(srv.URL))
	in := pvq(t)
	err := c.Prefetch(context.Background(), []*agent.Question{nil, {Instrument: in, Item: len(in.Items)}, question(in, values.Power, 0, 0)})
	if err == nil || srv.calls.Load() != 1 {
		t.Errorf("got error %v and %d requests, want an error and the one good question fetched", err, srv.calls.Load())
	}
}

// A caller that missed the memory just before another request's flight
// for the same prompt ended makes no second request: the flight
// remembered the distribution before it ended, and a new flight looks
// there first. Without a cache nothing else would stop the second
// request (Prefetch and agents asking the same prompt meet this).
func TestDistributionFlightLooksFirst(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		return 200, topReply(r, map[string]float64{"4": 0.6, "5": 0.3, "3": 0.1})
	})
	cfg := testConfig(srv.URL)
	cfg.Mode = ModeDistribution
	c := newClient(t, cfg)
	q := &agent.Question{Persona: agent.Persona{Value: values.Power, Style: agent.StyleDescription}, Instrument: pvq(t), Item: 1}
	first, err := c.Ask(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	// The caller past its look at the memory, as when it looked just
	// before the first request's flight ended.
	e, _, err := c.distOf(context.Background(), q, c.render(q))
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.calls.Load(); got != 1 || !slices.Equal(e.Dist, first.Dist) {
		t.Errorf("got %d requests and distribution %v, want 1 and the first's %v", got, e.Dist, first.Dist)
	}
}

// releasedServer answers with seededReply, holding the requests held
// picks until release is closed (or their client gives up).
func releasedServer(t *testing.T, held func(seenReq) bool) (srv *openAIServer, release chan struct{}) {
	release = make(chan struct{})
	srv = newOpenAIServer(t, func(r seenReq) (int, any) {
		if held(r) {
			select {
			case <-release:
			case <-r.Ctx.Done():
			}
		}
		return 200, seededReply(r)
	})
	return srv, release
}

// Asks made once StartPrefetch has returned find its plan: however soon
// they run, every segment is requested once (Asks that ran before a
// Prefetch goroutine made its plan would have their segments fetched
// again).
func TestStartPrefetchPlansFirst(t *testing.T) {
	in := pvq(t)
	srv, release := releasedServer(t, func(seenReq) bool { return true })
	cfg := testConfig(srv.URL)
	cfg.Seed, cfg.Concurrency = ptr(uint64(1)), 4
	cfg.Demand = func(agent.Persona) int { return 3 }
	c := newClient(t, cfg)
	var qs []*agent.Question
	for _, p := range allPersonas(agent.StyleDescription) {
		qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: 0})
	}
	wait := c.StartPrefetch(context.Background(), qs)
	// No request has been answered yet: every segment is in flight, or
	// ahead of the fetch's workers, who will reach it.
	var planned int
	c.segMu.Lock()
	for _, q := range qs {
		p := c.render(q)
		for s := range 3 {
			key := c.segmentKey(p, s, s+1)
			if c.fetching[key] != nil || c.planAhead(key) != nil {
				planned++
			}
		}
	}
	c.segMu.Unlock()
	close(release)
	if planned != 3*len(qs) {
		t.Errorf("StartPrefetch returned with %d segments planned, want %d", planned, 3*len(qs))
	}
	for _, q := range qs {
		for s := range 3 {
			qq := *q
			qq.Sample = s
			if _, err := c.Ask(context.Background(), &qq); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.calls.Load()-c.Stats().StrictRetries, int64(3*len(qs)); got != want {
		t.Errorf("got %d requests besides strict retries, want %d", got, want)
	}
}

// planJobs makes a plan of qs (first as for StartPrefetchShare) and takes
// its requests in the order its workers would, registering their segments
// as they do, without fetching them; the plan is then ended and the
// segments forgotten. It checks that the plan counted as many requests.
func (c *Client) planJobs(t *testing.T, qs []*agent.Question, first []int) ([]prefetchJob, error) {
	t.Helper()
	pl, err := c.newPlan(qs, first, nil)
	var jobs []prefetchJob
	c.segMu.Lock()
	for {
		j, ok := c.takeJob(pl)
		if !ok {
			break
		}
		jobs = append(jobs, j)
	}
	c.segMu.Unlock()
	if n := pl.count.planned.Load(); n != int64(len(jobs)) {
		t.Errorf("planned %d requests, took %d", n, len(jobs))
	}
	c.endPlan(pl, nil)
	c.forgetDists(pl)
	c.segMu.Lock()
	clear(c.fetching)
	c.segMu.Unlock()
	return jobs, err
}

// TestPrefetchShare: a share's fetch plans the segments within its
// agents' ranks and leaves those on its border (holding other hosts'
// agents' samples) to the Asks; the whole fetch plans every segment of
// the persona's demand.
func TestPrefetchShare(t *testing.T) {
	in := pvq(t)
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, seededReply(r) })
	cfg := testConfig(srv.URL)
	// Segments of 3 samples cut at the demand of 10: [0,3) [3,6) [6,9) [9,10).
	cfg.Samples, cfg.Seed = 3, ptr(uint64(3))
	cfg.Demand = func(agent.Persona) int { return 10 }
	c := newClient(t, cfg)
	q := func(last int) *agent.Question {
		return &agent.Question{Persona: agent.Persona{Value: values.Power, Style: agent.StyleDescription}, Instrument: in, Item: 1, Sample: last}
	}
	segments := func(jobs []prefetchJob) [][2]int {
		var out [][2]int
		for _, j := range jobs {
			out = append(out, [2]int{j.start, j.end})
		}
		return out
	}
	for _, tc := range []struct {
		first, last int
		want        [][2]int
	}{
		{2, 7, [][2]int{{3, 6}}},                          // [0,3) and [6,9) cross the border
		{3, 8, [][2]int{{3, 6}, {6, 9}}},                  // exactly two segments
		{0, 9, [][2]int{{0, 3}, {3, 6}, {6, 9}, {9, 10}}}, // the whole demand
		{4, 5, nil},               // inside one segment, not all of it
		{9, 9, [][2]int{{9, 10}}}, // the segment cut at the demand
	} {
		jobs, err := c.planJobs(t, []*agent.Question{q(tc.last)}, []int{tc.first})
		if err != nil {
			t.Fatal(err)
		}
		if got := segments(jobs); !slices.Equal(got, tc.want) {
			t.Errorf("share %d..%d: planned %v, want %v", tc.first, tc.last, got, tc.want)
		}
	}
	// Without a share, the persona's whole demand, whatever the Sample.
	jobs, err := c.planJobs(t, []*agent.Question{q(4)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := segments(jobs), [][2]int{{0, 3}, {3, 6}, {6, 9}, {9, 10}}; !slices.Equal(got, want) {
		t.Errorf("whole fetch: planned %v, want %v", got, want)
	}
	// A share whose first rank is out of its question's range is malformed.
	for _, first := range [][]int{{5}, {-1}, {}} {
		if _, err := c.planJobs(t, []*agent.Question{q(4)}, first); err == nil {
			t.Errorf("first %v for Sample 4: no error", first)
		}
	}
}

// A plan lists each segment once, in prefix order (the value's system
// prompt, then context, instrument and item; a question's segments in
// sample order), however often the questions repeat a prompt: a question
// listed twice, with different highest samples, gives the union of their
// segments.
func TestPlanOrderAndRepeats(t *testing.T) {
	in := pvq(t)
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, seededReply(r) })
	cfg := testConfig(srv.URL)
	cfg.Samples = 2
	c := newClient(t, cfg)
	var qs []*agent.Question
	for _, item := range []int{3, 1} {
		for _, p := range allPersonas(agent.StyleDescription)[:3] {
			qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: item, Sample: 2})
		}
	}
	// The first question again, asking up to sample 5.
	again := *qs[0]
	again.Sample = 5
	qs = append(qs, &again)
	jobs, err := c.planJobs(t, qs, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[segKey]bool{}
	for k, j := range jobs {
		if seen[j.key()] {
			t.Errorf("job %d: segment %d-%d of %v item %d planned twice", k, j.start, j.end, j.pq.q.Persona.Value, j.pq.q.Item)
		}
		seen[j.key()] = true
		if k == 0 {
			continue
		}
		prev := jobs[k-1]
		order := cmp.Or(cmp.Compare(prev.pq.p.System, j.pq.p.System), cmp.Compare(prev.pq.q.Item, j.pq.q.Item), cmp.Compare(prev.start, j.start))
		if order >= 0 {
			t.Errorf("job %d (%v item %d samples %d-%d) after job %d (%v item %d samples %d-%d): not in prefix order",
				k, j.pq.q.Persona.Value, j.pq.q.Item, j.start, j.end, k-1, prev.pq.q.Persona.Value, prev.pq.q.Item, prev.start, prev.end)
		}
	}
	// Samples 0-2 of six questions (segments 0-1 and 2-3), and samples
	// 4-5 of the repeated one: 6*2 + 1.
	if len(jobs) != 13 {
		t.Errorf("got %d jobs, want 13", len(jobs))
	}
}

// segmentCount counts, without walking them, the segments nextSegment
// walks for a whole demand: blocks of Samples, the one the demand cuts in
// two counted twice.
func TestSegmentCount(t *testing.T) {
	for samples := 1; samples <= 4; samples++ {
		c := &Client{cfg: ClientConfig{Samples: samples}}
		for demand := -1; demand <= 12; demand++ {
			for n := 1; n <= 15; n++ {
				pq := &plannedQuestion{n: n, demand: demand}
				walked := 0
				for i := 0; ; walked++ {
					_, end, ok := c.nextSegment(pq, i)
					if !ok {
						break
					}
					i = end
				}
				if got := c.segmentCount(pq); got != walked {
					t.Errorf("Samples %d, demand %d, samples 0..%d: counted %d segments, walked %d", samples, demand, n-1, got, walked)
				}
			}
		}
	}
}

// A plan costs its questions, not its requests: planning the phase of a
// million agents allocates what the phase of a hundred does (a plan with
// an entry per request held forty million of them, gigabytes, before its
// first request went out).
func TestPlanCostsQuestions(t *testing.T) {
	in := pvq(t)
	var qs []*agent.Question
	for _, p := range allPersonas(agent.StyleDescription) {
		qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: 0})
	}
	allocs := func(demand int) (float64, int64) {
		cfg := testConfig("http://127.0.0.1:1")
		cfg.Demand = func(agent.Persona) int { return demand }
		c := newClient(t, cfg)
		var planned int64
		a := testing.AllocsPerRun(3, func() {
			pl, err := c.newPlan(qs, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			planned = pl.count.planned.Load()
			c.endPlan(pl, nil)
		})
		return a, planned
	}
	small, n := allocs(10)
	large, m := allocs(100_000)
	if n != 10*int64(len(qs)) || m != 100_000*int64(len(qs)) {
		t.Fatalf("planned %d and %d requests, want %d and %d", n, m, 10*len(qs), 100_000*len(qs))
	}
	if large > small+2 {
		t.Errorf("a plan of %d requests made %.0f allocations, one of %d made %.0f: want as many", m, large, n, small)
	}
}

// An Ask for a segment the fetch ahead's workers have passed (a sample
// asked a second time, its replies read) fetches it itself at once,
// instead of waiting for a plan that will not come back to it.
func TestPrefetchPassedSegment(t *testing.T) {
	in := pvq(t)
	// The plan's second request waits until the test is done.
	srv, release := releasedServer(t, func(r seenReq) bool { return strings.Contains(string(r.Raw), in.Items[1].Text) })
	cfg := testConfig(srv.URL)
	// Two workers: one has the first item's request, the other the
	// second's, held; the first's slot is then free for the Ask.
	cfg.Seed, cfg.Concurrency = ptr(uint64(1)), 2
	cfg.Demand = func(agent.Persona) int { return 1 }
	c := newClient(t, cfg)
	p := agent.Persona{Value: values.Power, Style: agent.StyleDescription}
	first := &agent.Question{Persona: p, Instrument: in, Item: 0}
	second := &agent.Question{Persona: p, Instrument: in, Item: 1}
	wait := c.StartPrefetch(context.Background(), []*agent.Question{first, second})
	a, err := c.Ask(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	// The worker has moved on to the second item, held by the server;
	// the first's replies have been read. Asked again (no cache), the
	// first item's segment is fetched by this Ask.
	again, err := c.Ask(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	if _, err := c.Ask(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if again.Answer != a.Answer {
		t.Errorf("asked again: %+v, first %+v (the same request, the same seed)", again.Answer, a.Answer)
	}
	if got := srv.calls.Load() - c.Stats().StrictRetries; got != 3 {
		t.Errorf("got %d requests, want 3: the plan's two and the Ask's", got)
	}
}
