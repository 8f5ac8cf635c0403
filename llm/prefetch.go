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
// the cache costs no request. The plan holds one entry per request (in
// sample mode one per segment of up to Samples answers), a few hundred
// bytes each.
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
// request of qs is registered, so that an Ask made after StartPrefetch
// returns waits for Prefetch's request, and no segment is fetched twice
// however soon the agents start (with Prefetch called from a goroutine,
// Asks that run before its plan is made fetch segments that Prefetch then
// fetches again). The requests are made in a goroutine; wait returns
// when they are done, with Prefetch's error, and must be called.
// Planning takes about half a microsecond per segment of samples
// (BenchmarkPrefetchPlan: 20–25 ms for the 40,040 segments of 1,000
// agents × PVQ-40 on a loaded 2-core machine).
func (c *Client) StartPrefetch(ctx context.Context, qs []*agent.Question) (wait func() error) {
	return c.startPrefetch(ctx, qs, nil, nil)
}

// startPrefetch is StartPrefetch telling progress, when not nil, how far
// it is (see StartPrefetchCounted), and fetching only the samples from
// first[i] of qs[i] when first is not nil (see StartPrefetchShare).
func (c *Client) startPrefetch(ctx context.Context, qs []*agent.Question, first []int, progress func(done, planned int)) (wait func() error) {
	jobs, count, err := c.planCounted(qs, first, progress)
	done := make(chan error, 1)
	go func() {
		if rerr := c.runPrefetch(ctx, jobs, count); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			err = c.redact(fmt.Errorf("llm %s: prefetch: %w", c.name, err))
		}
		done <- err
	}()
	return func() error { return <-done }
}

// prefetchJob is one request Prefetch makes: a distribution (dist), or
// the samples [start, end) of a prompt.
type prefetchJob struct {
	q          agent.Question
	p          agent.Prompt
	dist       bool
	start, end int
	key        segKey
	seg        *segFetch // registered in c.fetching
}

// prefetchCount counts the requests of a plan answered so far, whoever
// made them: Prefetch, an Ask whose request was in flight when the plan
// was made, or an Ask that met a planned distribution first. Counting
// only Prefetch's own requests, a run whose agents made many of the
// plan's requests showed a fraction of the requests the server had
// answered, and a rate and time left to match. planned is set before any
// request can be counted; progress, when not nil, is told each count
// until over.
type prefetchCount struct {
	planned  int
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
		n.progress(int(d), n.planned)
	}
}

// planCounted lists the requests the questions need, in prefix order,
// and registers the segments among them so that Asks meeting one in
// flight wait for it; it returns them with the count of its requests answered, which
// tells progress (nil: no one). The count's planned requests are the
// plan's, those an Ask is fetching or has fetched already among them (a
// plan made once the agents have begun) included, and counted done when
// they are answered.
func (c *Client) planCounted(qs []*agent.Question, first []int, progress func(done, planned int)) ([]*prefetchJob, *prefetchCount, error) {
	var (
		errs  []error
		jobs  []*prefetchJob
		dists = map[memoKey]bool{}
		slab  jobSlab
		// segs holds the segments planned so far once a prompt comes a
		// second time (questions that differ only where the prompt does
		// not, or a question listed twice); until then every segment is
		// new, and a plan of 40,000 segments hashes no prompt for it.
		segs    map[segKey]bool
		prompts = map[[2]string]bool{}
	)
	// The questions in prefix order, each with its prompt, rendered once:
	// sorting the questions, not their segments, compares a few hundred
	// prompts instead of every segment's (sample mode has one per answer).
	type planned struct {
		i int
		q agent.Question
		p agent.Prompt
	}
	ordered := make([]planned, 0, len(qs))
	for i, q := range qs {
		if q == nil || q.Instrument == nil || q.Item < 0 || q.Item >= len(q.Instrument.Items) || q.Sample < 0 ||
			first != nil && (i >= len(first) || first[i] < 0 || first[i] > q.Sample) {
			errs = append(errs, fmt.Errorf("question %d: malformed", i))
			continue
		}
		qq := *q
		ordered = append(ordered, planned{i: i, q: qq, p: c.render(&qq)})
	}
	slices.SortStableFunc(ordered, func(a, b planned) int {
		return cmp.Or(
			cmp.Compare(a.p.System, b.p.System),
			cmp.Compare(a.q.Context, b.q.Context),
			cmp.Compare(a.q.Instrument.Name, b.q.Instrument.Name),
			cmp.Compare(a.q.Item, b.q.Item))
	})
	for _, o := range ordered {
		i, qq, p := o.i, o.q, o.p
		if c.cfg.Mode == ModeDistribution && oneTokenOptions(qq.Instrument.Scale) {
			mk := memoKey{qq.Persona, qq.Instrument, qq.Item, qq.Context}
			if dists[mk] {
				continue
			}
			dists[mk] = true
			if _, ok := c.remembered(mk); !ok {
				jobs = append(jobs, slab.add(prefetchJob{q: qq, p: p, dist: true}))
			}
			continue
		}
		if pk := [2]string{p.System, p.User}; prompts[pk] && segs == nil {
			segs = map[segKey]bool{}
			for _, j := range jobs {
				if !j.dist {
					segs[j.key] = true
				}
			}
		} else {
			prompts[pk] = true
		}
		from, n := 0, qq.Sample+1
		switch {
		case first != nil:
			from = first[i]
		case c.cfg.Demand != nil:
			n = max(n, c.cfg.Demand(qq.Persona))
		}
		// The segments holding samples 0 to max(Sample, Demand-1), or
		// those within first[i] to Sample.
		for i := from; i < n; {
			start, end := c.segmentOf(qq.Persona, i)
			if first != nil && (start < from || end > n) {
				// A segment on the share's border: its other samples
				// are other hosts' agents', and so is the fetch
				// (their Asks, or the run's fetch claims, get it).
				i = end
				continue
			}
			key := c.segmentKey(p, start, end)
			if segs != nil {
				if segs[key] {
					i = end
					continue
				}
				segs[key] = true
			}
			jobs = append(jobs, slab.add(prefetchJob{q: qq, p: p, start: start, end: end, key: key}))
			i = end
		}
	}
	count := &prefetchCount{progress: progress}
	jobs = c.register(jobs, count)
	return jobs, count, errors.Join(errs...)
}

// jobSlab allocates a plan's jobs in blocks: a sample-mode plan has one
// job per segment, 40,000 for 1,000 agents answering PVQ-40 one sample
// each, and an allocation per job was one per answer.
type jobSlab []prefetchJob

func (s *jobSlab) add(j prefetchJob) *prefetchJob {
	if len(*s) == cap(*s) {
		*s = make([]prefetchJob, 0, 256)
	}
	*s = append(*s, j)
	return &(*s)[len(*s)-1]
}

// register queues the segments of jobs in c.fetching, leaving out those a
// request of this run is fetching or has fetched and not yet handed out,
// and sets count's planned requests: the jobs kept, those fetched (counted
// done) and those in flight (counted when answered). Distributions are
// registered in c.distPlan, counted by the first fetch that gets one.
func (c *Client) register(jobs []*prefetchJob, count *prefetchCount) []*prefetchJob {
	out := c.registerSegments(jobs, count)
	// Published once count.planned is final: a fetch of another plan (an
	// agent host plans each task it serves, several at once) may count a
	// distribution as soon as it finds it here.
	c.memoMu.Lock()
	defer c.memoMu.Unlock()
	if c.distPlan == nil {
		c.distPlan = map[memoKey]*prefetchCount{}
	}
	for _, j := range out {
		if j.dist {
			c.distPlan[memoKey{j.q.Persona, j.q.Instrument, j.q.Item, j.q.Context}] = count
		}
	}
	return out
}

// registerSegments is register's counting of the plan's requests and
// registering of its segments in c.fetching, under segMu (endSegment
// counts a registered segment once it can take segMu, by when planned is
// final).
func (c *Client) registerSegments(jobs []*prefetchJob, count *prefetchCount) []*prefetchJob {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	// With nothing fetched nor in flight (the first plan of a client, as
	// a single process's), a plan's segments, distinct, are all new: they
	// are put in a map made to their number, not looked up first.
	fresh := len(c.segments) == 0 && len(c.fetching) == 0
	if fresh {
		c.fetching = make(map[segKey]*segFetch, len(jobs))
	}
	out := jobs[:0]
	var slab []segFetch // in blocks, as the jobs (jobSlab)
	for _, j := range jobs {
		if !j.dist {
			if !fresh {
				if _, fetched := c.segments[j.key]; fetched {
					count.planned++
					count.done.Add(1)
					continue
				}
				if f := c.fetching[j.key]; f != nil {
					if f.count == nil { // an Ask's request in flight
						f.count = count
						count.planned++
					}
					continue
				}
			}
			if len(slab) == cap(slab) {
				slab = make([]segFetch, 0, 256)
			}
			slab = append(slab, segFetch{prefetched: true, count: count})
			j.seg = &slab[len(slab)-1]
			c.fetching[j.key] = j.seg
		}
		out = append(out, j)
		count.planned++
	}
	return out
}

// runPrefetch makes the jobs' requests in order with one worker per slot
// of the configured concurrency; the adaptive limit (doer.limit) holds the
// requests actually in flight below it when the endpoint sheds load. Its
// count (nil: none) tells its progress the requests of the plan answered
// and planned (see StartPrefetchCounted) until it returns.
func (c *Client) runPrefetch(ctx context.Context, jobs []*prefetchJob, count *prefetchCount) error {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		failed   int
		firstErr error
		wg       sync.WaitGroup
	)
	work := func() {
		defer wg.Done()
		for {
			k := int(next.Add(1)) - 1
			if k >= len(jobs) {
				return
			}
			if err := c.prefetchOne(ctx, jobs[k]); err != nil && ctx.Err() == nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}
	}
	if count != nil && count.progress != nil {
		count.progress(int(count.done.Load()), count.planned)
	}
	workers := min(c.cfg.Concurrency, len(jobs))
	wg.Add(workers)
	for range workers {
		go work()
	}
	wg.Wait()
	if count != nil {
		// Requests answered from now on are no longer the phase's
		// fetch: it is over, or the run was interrupted.
		count.over.Store(true)
		c.forgetDists(jobs, count)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed, the first: %w", failed, len(jobs), firstErr)
	}
	return nil
}

// prefetchOne makes one job's request, unless ctx has ended (a queued
// segment is then handed back to the Asks waiting for it) or an Ask
// fetched the job's distribution first.
func (c *Client) prefetchOne(ctx context.Context, j *prefetchJob) error {
	if !j.dist {
		if err := ctx.Err(); err != nil {
			c.endSegment(j.key, j.seg, segReplies{}, err)
			return err
		}
		replies, err := c.fetchSegmentOnce(ctx, &j.q, j.p, j.start, j.end, -1)
		c.endSegment(j.key, j.seg, replies, err)
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	mk := memoKey{j.q.Persona, j.q.Instrument, j.q.Item, j.q.Context}
	if _, ok := c.remembered(mk); ok {
		return nil // an Ask fetched it
	}
	e, hit, err := c.distOf(ctx, &j.q, j.p)
	if err != nil {
		return err
	}
	c.distFetched(mk)
	if !e.Fallback {
		// The first Ask to read it from memory counts the call saved
		// when it came from the store, as without Prefetch.
		c.remember(mk, &memoEntry{dist: e.Dist, stored: hit, elsewhere: !hit && c.distElsewhere(j.p)})
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

// forgetDists drops the distributions of jobs still registered for count
// once its fetch is over (its context ended before they were fetched).
func (c *Client) forgetDists(jobs []*prefetchJob, count *prefetchCount) {
	c.memoMu.Lock()
	defer c.memoMu.Unlock()
	for _, j := range jobs {
		if !j.dist {
			continue
		}
		mk := memoKey{j.q.Persona, j.q.Instrument, j.q.Item, j.q.Context}
		if c.distPlan[mk] == count {
			delete(c.distPlan, mk)
		}
	}
}
