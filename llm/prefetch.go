package llm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/society-sim/society/agent"
)

// This file fetches a phase's questions ahead of the agents that ask
// them. Agents walk their items one after another, so without it only
// their current questions are in flight: in distribution mode one per
// persona (11 requests however large the concurrency), in sample mode one
// per agent.

// Prefetch fetches everything the questions qs will need, at the client's
// concurrency (and under its adaptive limit), so that the Asks that follow
// find it in memory instead of each waiting for a request of its own.
//
// qs lists the distinct questions of a phase, one per (persona, instrument,
// item, context) as Ask will see them (the persona's Style already set to
// the task's). Sample is read as the highest sample index that will be
// asked: in sample mode (and for questions sampled in distribution mode)
// the samples 0 to max(Sample, Demand(persona)-1) are fetched, in the same
// segments, with the same seeds, as Ask would fetch them, so the answers
// are those Ask gives without Prefetch. Distribution-mode questions are
// fetched once whatever their Sample (the questions of a scale whose
// options need more than one token are sampled, and prefetched as in
// sample mode); the samples of a distribution that falls back to sampling
// (low coverage) are left to the Asks.
//
// Requests go out ordered by value prefix, then context, instrument and
// item, so that requests sharing a prompt prefix are in flight together
// (server prefix caches hit). Distributions are kept in memory and in the
// response cache; sampled replies are kept in memory until their Ask reads
// them (it parses them, retries an unreadable one with the strict
// instruction, and stores the answer). A segment whose samples are all in
// the cache costs no request. The plan holds one entry per question, not
// per request: in memory, a fetch costs the requests in flight and the
// replies not yet read.
//
// No request is made twice: an Ask for a question whose request is in
// flight waits for it. An Ask for samples Prefetch has not reached yet
// waits for them too, so that the phase's requests are made by
// Prefetch's workers alone, each sending its next request as soon as it
// has read a reply, as a bare client does (see segFetch); an Ask for a
// distribution Prefetch has not reached yet makes the request itself,
// which Prefetch then skips. Start it before the phase's tasks go out,
// with StartPrefetch: a segment of samples that Asks already fetched and
// read in full before Prefetch made its plan is fetched again (the same
// request, so the same answers; one call wasted).
//
// Prefetch returns when every request is done, or when ctx ends (Asks then
// fetch what is left themselves, those waiting for it included). Its
// error is ctx's, or names the requests that failed: the Asks for those
// questions make them again and report their own errors, so a caller may
// log it and go on. Malformed questions are reported and skipped.
func (c *Client) Prefetch(ctx context.Context, qs []*agent.Question) error {
	return c.StartPrefetch(ctx, qs)()
}

// StartPrefetch is Prefetch with its plan made before it returns: every
// request of qs is planned, so that an Ask made after StartPrefetch
// returns waits for Prefetch's request, and no segment is fetched twice
// however soon the agents start (with Prefetch called from a goroutine,
// Asks that run before its plan is made fetch segments that Prefetch then
// fetches again). The requests are made in a goroutine; wait returns
// when they are done, with Prefetch's error, and must be called.
// A plan holds its questions, not its requests, so the first request
// goes out at once however many agents ask: BenchmarkPrefetchPlan plans
// the 40,040 requests of 1,000 agents × PVQ-40 (440 questions) in
// 1.1–1.4 ms and 1.3 MB, where a plan listing every request took 18–20
// ms and 16.6 MB, and would have held forty million at a million agents.
func (c *Client) StartPrefetch(ctx context.Context, qs []*agent.Question) (wait func() error) {
	return c.startPrefetch(ctx, qs, nil, nil)
}

// startPrefetch is StartPrefetch telling progress, when not nil, how far
// it is (see StartPrefetchCounted), and fetching only the samples from
// first[i] of qs[i] when first is not nil (see StartPrefetchShare).
func (c *Client) startPrefetch(ctx context.Context, qs []*agent.Question, first []int, progress func(done, planned int)) (wait func() error) {
	pl, err := c.newPlan(qs, first, progress)
	done := make(chan error, 1)
	go func() {
		if rerr := c.runPrefetch(ctx, pl); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			err = c.redact(fmt.Errorf("llm %s: prefetch: %w", c.name, err))
		}
		done <- err
	}()
	return func() error { return <-done }
}

// prefetchPlan is a fetch ahead: its questions in prefix order, and how
// far its workers have gone through their requests. It holds no entry
// per request: a plan of every answer of a million agents would hold
// forty million. The workers register each segment as they reach it
// (takeJob); an Ask for a segment still ahead of them registers it
// queued for the plan and waits (planAhead), so that the phase's requests
// are the workers' alone. After newPlan, its fields are guarded by
// Client.segMu.
type prefetchPlan struct {
	qs []plannedQuestion
	// byPrompt lists the sample questions of each prompt (indexes in
	// qs): more than one when questions differ only where the prompt does
	// not, or a question is listed twice.
	byPrompt map[[2]string][]int
	// skip holds the segments the workers pass over: fetched or in
	// flight when the plan was made, or taken already under another
	// question of the same prompt. nil until needed.
	skip  map[segKey]bool
	count *prefetchCount
	// The cursor: the next request is qs[q]'s segment at or after sample
	// i.
	q, i int
	// waiting is the number of segments Asks have queued for the plan
	// that its workers have not reached.
	waiting int
	over    bool // the plan's workers have stopped
	// slab holds the plan's segment entries, made in blocks (newSegment).
	slab []segFetch
}

// newSegment returns a new entry for one of the plan's segments, made in
// blocks: one allocation per request was one per answer in sample mode.
// The caller holds segMu.
func (pl *prefetchPlan) newSegment(f segFetch) *segFetch {
	if len(pl.slab) == cap(pl.slab) {
		pl.slab = make([]segFetch, 0, 256)
	}
	pl.slab = append(pl.slab, f)
	return &pl.slab[len(pl.slab)-1]
}

// plannedQuestion is a question of a plan with its prompt, rendered once.
// A sample question's requests are the segments holding its samples from
// to n-1 (those wholly within them for a share); demand is its persona's
// (Demand, 0 when unknown), read once.
type plannedQuestion struct {
	q              agent.Question
	p              agent.Prompt
	dist           bool
	share          bool
	from, n        int
	demand         int
	repeatedPrompt bool
}

// nextSegment returns the first segment of pq's at or after sample i.
func (c *Client) nextSegment(pq *plannedQuestion, i int) (start, end int, ok bool) {
	for i = max(i, pq.from); i < pq.n; {
		start, end := c.segmentAt(pq.demand, i)
		if pq.share && (start < pq.from || end > pq.n) {
			// A segment on the share's border: its other samples are
			// other hosts' agents', and so is the fetch (their Asks, or
			// the run's fetch claims, get it).
			i = end
			continue
		}
		return start, end, true
	}
	return 0, 0, false
}

// segmentCount is the number of pq's requests, the segments nextSegment
// gives: counted, not walked, for a whole demand (tens of millions at a
// million agents); walked for a share, whose segments are its agents'.
func (c *Client) segmentCount(pq *plannedQuestion) int {
	if pq.share {
		n := 0
		for i := pq.from; ; n++ {
			_, end, ok := c.nextSegment(pq, i)
			if !ok {
				return n
			}
			i = end
		}
	}
	// The blocks of Samples holding samples 0 to n-1 (pq.from is 0),
	// the one the demand cuts in two counted twice when the cut is
	// below n.
	s, d := c.cfg.Samples, pq.demand
	n := (pq.n + s - 1) / s
	if d > 0 && d%s != 0 && d < pq.n {
		n++
	}
	return n
}

// holds tells whether pq's requests include the segment [start, end).
func (c *Client) holds(pq *plannedQuestion, start, end int) bool {
	s, e := c.segmentAt(pq.demand, start)
	return s == start && e == end && start < pq.n && end > pq.from &&
		(!pq.share || start >= pq.from && end <= pq.n)
}

// prefetchJob is one request of a plan: a distribution (dist), or the
// samples [start, end) of a prompt, registered in c.fetching as seg.
type prefetchJob struct {
	pq         *plannedQuestion
	dist       bool
	start, end int
	seg        *segFetch
}

func (j prefetchJob) key() segKey {
	return segKey{j.pq.p.System, j.pq.p.User, j.start, j.end}
}

// prefetchCount counts the requests of a plan answered so far, whoever
// made them: Prefetch, an Ask whose request was in flight when the plan
// was made, or an Ask that met a planned distribution first. Counting
// only Prefetch's own requests, a run whose agents made many of the
// plan's requests showed a fraction of the requests the server had
// answered, and a rate and time left to match. planned is set before any
// request can be counted, and only goes down after (a segment another
// plan of the same client fetches, found as the workers reach it);
// progress, when not nil, is told each count until over.
type prefetchCount struct {
	planned  atomic.Int64
	done     atomic.Int64
	over     atomic.Bool
	progress func(done, planned int)
}

// add counts one planned request answered; a nil count counts nothing.
func (n *prefetchCount) add() {
	if n == nil {
		return
	}
	d := n.done.Add(1)
	if n.progress != nil && !n.over.Load() {
		n.progress(int(d), int(n.planned.Load()))
	}
}

// newPlan plans the requests the questions need, in prefix order, and
// counts them (progress, when not nil, is told the count as it goes). The
// count's planned requests are the plan's, those an Ask is fetching or
// has fetched already among them (a plan made once the agents have begun)
// included, counted done when they are answered. Distributions are
// registered in c.distPlan, to be counted by the first fetch that gets
// one; segments are registered as they are reached (prefetchPlan).
func (c *Client) newPlan(qs []*agent.Question, first []int, progress func(done, planned int)) (*prefetchPlan, error) {
	var (
		errs  []error
		dists = map[memoKey]bool{}
	)
	// The questions in prefix order, each with its prompt, rendered once:
	// sorting the questions, not their segments, compares a few hundred
	// prompts instead of every segment's (sample mode has one per answer).
	ordered := make([]plannedQuestion, 0, len(qs))
	for i, q := range qs {
		if q == nil || q.Instrument == nil || q.Item < 0 || q.Item >= len(q.Instrument.Items) || q.Sample < 0 ||
			first != nil && (i >= len(first) || first[i] < 0 || first[i] > q.Sample) {
			errs = append(errs, fmt.Errorf("question %d: malformed", i))
			continue
		}
		pq := plannedQuestion{q: *q}
		pq.p = c.render(&pq.q)
		if c.cfg.Mode == ModeDistribution && oneTokenOptions(q.Instrument.Scale) {
			mk := memoKey{q.Persona, q.Instrument, q.Item, q.Context}
			if _, ok := c.remembered(mk); ok || dists[mk] {
				continue
			}
			dists[mk] = true
			pq.dist = true
		} else {
			// The segments holding samples 0 to max(Sample,
			// Demand-1), or those within first[i] to Sample.
			pq.n = q.Sample + 1
			if c.cfg.Demand != nil {
				pq.demand = c.cfg.Demand(q.Persona)
			}
			if first != nil {
				pq.from, pq.share = first[i], true
			} else {
				pq.n = max(pq.n, pq.demand)
			}
		}
		ordered = append(ordered, pq)
	}
	slices.SortStableFunc(ordered, func(a, b plannedQuestion) int {
		return cmp.Or(
			cmp.Compare(a.p.System, b.p.System),
			cmp.Compare(a.q.Context, b.q.Context),
			cmp.Compare(a.q.Instrument.Name, b.q.Instrument.Name),
			cmp.Compare(a.q.Item, b.q.Item))
	})
	pl := &prefetchPlan{qs: ordered, byPrompt: map[[2]string][]int{}, count: &prefetchCount{progress: progress}}
	planned := 0
	for k := range pl.qs {
		pq := &pl.qs[k]
		if pq.dist {
			planned++
			continue
		}
		pk := [2]string{pq.p.System, pq.p.User}
		pl.byPrompt[pk] = append(pl.byPrompt[pk], k)
		planned += c.segmentCount(pq)
	}
	// A segment two questions of a prompt share is one request.
	for _, ks := range pl.byPrompt {
		if len(ks) < 2 {
			continue
		}
		seen := map[[2]int]bool{}
		for _, k := range ks {
			pq := &pl.qs[k]
			pq.repeatedPrompt = true
			for i := pq.from; ; {
				start, end, ok := c.nextSegment(pq, i)
				if !ok {
					break
				}
				if seen[[2]int{start, end}] {
					planned--
				}
				seen[[2]int{start, end}] = true
				i = end
			}
		}
	}
	pl.count.planned.Store(int64(planned))
	c.adopt(pl)
	// Published once the plan's planned requests are counted: a fetch of
	// another plan (an agent host plans each task it serves, several at
	// once) may count a distribution as soon as it finds it here.
	c.memoMu.Lock()
	defer c.memoMu.Unlock()
	if c.distPlan == nil {
		c.distPlan = map[memoKey]*prefetchCount{}
	}
	for k := range pl.qs {
		if q := &pl.qs[k].q; pl.qs[k].dist {
			c.distPlan[memoKey{q.Persona, q.Instrument, q.Item, q.Context}] = pl.count
		}
	}
	return pl, errors.Join(errs...)
}

// adopt sets the plan to pass over the segments among its requests that
// this client has fetched already (counted done) or is fetching (an Ask's
// request, counted when answered; another plan's, not planned here), and
// puts it among the plans Asks look ahead in, at once, so that a segment
// is either in flight or ahead of the workers for every Ask.
func (c *Client) adopt(pl *prefetchPlan) {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	for key := range c.segments {
		if c.covers(pl, key) {
			pl.skipSegment(key)
			pl.count.done.Add(1)
		}
	}
	for key, f := range c.fetching {
		if !c.covers(pl, key) {
			continue
		}
		pl.skipSegment(key)
		if f.count == nil && f.plan == nil { // an Ask's request in flight
			f.count = pl.count
		} else {
			pl.count.planned.Add(-1)
		}
	}
	c.plans = append(c.plans, pl)
}

func (pl *prefetchPlan) skipSegment(key segKey) {
	if pl.skip == nil {
		pl.skip = map[segKey]bool{}
	}
	pl.skip[key] = true
}

// covers tells whether the segment key is among the plan's requests not
// yet reached by its workers. The caller holds segMu.
func (c *Client) covers(pl *prefetchPlan, key segKey) bool {
	if pl.over || pl.skip[key] {
		return false
	}
	for _, k := range pl.byPrompt[[2]string{key.system, key.user}] {
		if k < pl.q || k == pl.q && key.start < pl.i {
			continue // the workers have passed it
		}
		if c.holds(&pl.qs[k], key.start, key.end) {
			return true
		}
	}
	return false
}

// planAhead returns the plan whose workers will reach the segment key,
// or nil. The caller holds segMu.
func (c *Client) planAhead(key segKey) *prefetchPlan {
	for _, pl := range c.plans {
		if c.covers(pl, key) {
			return pl
		}
	}
	return nil
}

// takeJob moves the plan's cursor to its next request and returns it,
// its segment registered in c.fetching (taken over from the Asks that
// queued it, if they did), or false when there is none left. The caller
// holds segMu.
func (c *Client) takeJob(pl *prefetchPlan) (prefetchJob, bool) {
	for pl.q < len(pl.qs) {
		pq := &pl.qs[pl.q]
		if pq.dist {
			pl.q, pl.i = pl.q+1, 0
			return prefetchJob{pq: pq, dist: true}, true
		}
		start, end, ok := c.nextSegment(pq, pl.i)
		if !ok {
			pl.q, pl.i = pl.q+1, 0
			continue
		}
		pl.i = end
		j := prefetchJob{pq: pq, start: start, end: end}
		key := j.key()
		if pl.skip[key] {
			continue
		}
		if pq.repeatedPrompt {
			pl.skipSegment(key) // for the prompt's later questions
		}
		if _, fetched := c.segments[key]; fetched {
			// Another plan fetched it, and its replies wait for
			// their Asks.
			pl.count.done.Add(1)
			continue
		}
		if f := c.fetching[key]; f != nil {
			switch {
			case f.plan == pl: // queued by Asks waiting for it
				f.plan = nil
				pl.waiting--
				j.seg = f
				return j, true
			case f.count == nil && f.plan == nil: // an Ask's request
				f.count = pl.count
			default: // another plan's
				pl.count.planned.Add(-1)
			}
			continue
		}
		j.seg = pl.newSegment(segFetch{prefetched: true, count: pl.count})
		if c.fetching == nil {
			c.fetching = map[segKey]*segFetch{}
		}
		c.fetching[key] = j.seg
		return j, true
	}
	return prefetchJob{}, false
}

// endPlan takes the plan out of those Asks look ahead in once its
// workers have stopped, and hands the segments Asks queued for it that
// they did not reach (its context ended first) back to those Asks, which
// fetch them themselves.
func (c *Client) endPlan(pl *prefetchPlan, err error) {
	type queued struct {
		key segKey
		f   *segFetch
	}
	var back []queued
	c.segMu.Lock()
	pl.over = true
	c.plans = slices.DeleteFunc(c.plans, func(p *prefetchPlan) bool { return p == pl })
	if pl.waiting > 0 {
		for key, f := range c.fetching {
			if f.plan == pl {
				f.plan = nil
				back = append(back, queued{key, f})
			}
		}
		pl.waiting = 0
	}
	c.segMu.Unlock()
	if err == nil {
		err = errors.New("the fetch ahead ended before its request") // not reached: its workers take every request
	}
	for _, b := range back {
		c.endSegment(b.key, b.f, segReplies{}, err)
	}
}

// runPrefetch makes the plan's requests in order with one worker per
// slot of the configured concurrency; the adaptive limit (doer.limit)
// holds the requests actually in flight below it when the endpoint sheds
// load. Its count tells its progress the requests of the plan answered
// and planned (see StartPrefetchCounted) until it returns.
func (c *Client) runPrefetch(ctx context.Context, pl *prefetchPlan) error {
	var (
		made     atomic.Int64
		mu       sync.Mutex
		failed   int
		firstErr error
		wg       sync.WaitGroup
	)
	work := func() {
		defer wg.Done()
		for ctx.Err() == nil {
			c.segMu.Lock()
			j, ok := c.takeJob(pl)
			c.segMu.Unlock()
			if !ok {
				return
			}
			made.Add(1)
			if err := c.prefetchOne(ctx, j); err != nil && ctx.Err() == nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}
	}
	count := pl.count
	if count.progress != nil {
		count.progress(int(count.done.Load()), int(count.planned.Load()))
	}
	workers := min(c.cfg.Concurrency, int(count.planned.Load()))
	wg.Add(workers)
	for range workers {
		go work()
	}
	wg.Wait()
	c.endPlan(pl, ctx.Err())
	// Requests answered from now on are no longer the phase's fetch: it
	// is over, or the run was interrupted.
	count.over.Store(true)
	c.forgetDists(pl)
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed, the first: %w", failed, made.Load(), firstErr)
	}
	return nil
}

// prefetchOne makes one job's request, unless ctx has ended (a queued
// segment is then handed back to the Asks waiting for it) or an Ask
// fetched the job's distribution first.
func (c *Client) prefetchOne(ctx context.Context, j prefetchJob) error {
	q, p := &j.pq.q, j.pq.p
	if !j.dist {
		if err := ctx.Err(); err != nil {
			c.endSegment(j.key(), j.seg, segReplies{}, err)
			return err
		}
		replies, err := c.fetchSegmentOnce(ctx, q, p, j.start, j.end, -1)
		c.endSegment(j.key(), j.seg, replies, err)
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	mk := memoKey{q.Persona, q.Instrument, q.Item, q.Context}
	if _, ok := c.remembered(mk); ok {
		return nil // an Ask fetched it
	}
	e, hit, err := c.distOf(ctx, q, p)
	if err != nil {
		return err
	}
	c.distFetched(mk)
	if !e.Fallback {
		// The first Ask to read it from memory counts the call saved
		// when it came from the store, as without Prefetch.
		c.remember(mk, &memoEntry{dist: e.Dist, stored: hit, elsewhere: !hit && c.distElsewhere(p), coverage: e.Coverage})
	}
	// A distribution sampled instead is left to the Asks: registered
	// only now, its samples could already have been fetched and read by
	// Asks that met the fallback first, and would be fetched twice.
	return nil
}

// distFetched counts the distribution of mk as answered for the plan that
// registered it, once, whoever fetched it (Prefetch or an Ask).
func (c *Client) distFetched(mk memoKey) {
	c.memoMu.RLock()
	_, planned := c.distPlan[mk]
	c.memoMu.RUnlock()
	if !planned {
		return
	}
	c.memoMu.Lock()
	count := c.distPlan[mk]
	delete(c.distPlan, mk)
	c.memoMu.Unlock()
	count.add()
}

// forgetDists drops the plan's distributions still registered for it
// once its fetch is over (its context ended before they were fetched).
func (c *Client) forgetDists(pl *prefetchPlan) {
	c.memoMu.Lock()
	defer c.memoMu.Unlock()
	for k := range pl.qs {
		if !pl.qs[k].dist {
			continue
		}
		q := &pl.qs[k].q
		mk := memoKey{q.Persona, q.Instrument, q.Item, q.Context}
		if c.distPlan[mk] == pl.count {
			delete(c.distPlan, mk)
		}
	}
}
