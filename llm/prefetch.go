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
// flight waits for it, and an Ask for a question Prefetch has not reached
// yet makes the request itself, which Prefetch then skips. Start it before
// the phase's tasks go out, with StartPrefetch: a segment of samples that
// Asks already fetched and read in full before Prefetch made its plan is
// fetched again (the same request, so the same answers; one call wasted).
//
// Prefetch returns when every request is done, or when ctx ends (Asks then
// fetch what is left themselves). Its error is ctx's, or names the requests
// that failed: the Asks for those questions make them again and report
// their own errors, so a caller may log it and go on. Malformed questions
// are reported and skipped.
func (c *Client) Prefetch(ctx context.Context, qs []*agent.Question) error {
	return c.StartPrefetch(ctx, qs)()
}

// StartPrefetch is Prefetch with its plan made before it returns: every
// request of qs is registered, so that an Ask made after StartPrefetch
// returns waits for Prefetch's request or takes it over, and no segment is
// fetched twice however soon the agents start (with Prefetch called from a
// goroutine, Asks that run before its plan is made fetch segments that
// Prefetch then fetches again). The requests are made in a goroutine; wait
// returns when they are done, with Prefetch's error, and must be called.
// Planning takes well under a microsecond per question.
func (c *Client) StartPrefetch(ctx context.Context, qs []*agent.Question) (wait func() error) {
	return c.startPrefetch(ctx, qs, nil)
}

// startPrefetch is StartPrefetch telling progress, when not nil, how far
// it is (see PrefetchCounted).
func (c *Client) startPrefetch(ctx context.Context, qs []*agent.Question, progress func(done, planned int)) (wait func() error) {
	jobs, err := c.plan(qs)
	done := make(chan error, 1)
	go func() {
		if rerr := c.runPrefetch(ctx, jobs, progress); rerr != nil {
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

// plan lists the requests the questions need, in prefix order, and
// registers the segments among them so that Asks meeting one in flight
// wait for it.
func (c *Client) plan(qs []*agent.Question) ([]*prefetchJob, error) {
	var (
		errs  []error
		jobs  []*prefetchJob
		dists = map[memoKey]bool{}
		segs  = map[segKey]bool{}
		slab  jobSlab
	)
	for i, q := range qs {
		if q == nil || q.Instrument == nil || q.Item < 0 || q.Item >= len(q.Instrument.Items) || q.Sample < 0 {
			errs = append(errs, fmt.Errorf("question %d: malformed", i))
			continue
		}
		qq := *q
		p := c.render(&qq)
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
		n := qq.Sample + 1
		if c.cfg.Demand != nil {
			n = max(n, c.cfg.Demand(qq.Persona))
		}
		// The segments holding samples 0 to max(Sample, Demand-1).
		for i := 0; i < n; {
			start, end := c.segmentOf(qq.Persona, i)
			if key := c.segmentKey(p, start, end); !segs[key] {
				segs[key] = true
				jobs = append(jobs, slab.add(prefetchJob{q: qq, p: p, start: start, end: end, key: key}))
			}
			i = end
		}
	}
	slices.SortStableFunc(jobs, func(a, b *prefetchJob) int {
		return cmp.Or(
			cmp.Compare(a.p.System, b.p.System),
			cmp.Compare(a.q.Context, b.q.Context),
			cmp.Compare(a.q.Instrument.Name, b.q.Instrument.Name),
			cmp.Compare(a.q.Item, b.q.Item),
			cmp.Compare(a.start, b.start))
	})
	jobs = c.register(jobs)
	return jobs, errors.Join(errs...)
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
// request of this run is fetching or has fetched and not yet handed out.
func (c *Client) register(jobs []*prefetchJob) []*prefetchJob {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	if c.fetching == nil {
		c.fetching = map[segKey]*segFetch{}
	}
	out := jobs[:0]
	var slab []segFetch // in blocks, as the jobs (jobSlab)
	for _, j := range jobs {
		if !j.dist {
			if _, fetched := c.segments[j.key]; fetched || c.fetching[j.key] != nil {
				continue
			}
			if len(slab) == cap(slab) {
				slab = make([]segFetch, 0, 256)
			}
			slab = append(slab, segFetch{prefetched: true, queued: true})
			j.seg = &slab[len(slab)-1]
			c.fetching[j.key] = j.seg
		}
		out = append(out, j)
	}
	return out
}

// runPrefetch makes the jobs' requests in order with one worker per slot
// of the configured concurrency; the adaptive limit (doer.limit) holds the
// requests actually in flight below it when the endpoint sheds load. It
// tells progress, when not nil, the jobs done and planned (see
// PrefetchCounted).
func (c *Client) runPrefetch(ctx context.Context, jobs []*prefetchJob, progress func(done, planned int)) error {
	var (
		next     atomic.Int64
		finished atomic.Int64
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
			if progress != nil {
				progress(int(finished.Add(1)), len(jobs))
			}
		}
	}
	if progress != nil {
		progress(0, len(jobs))
	}
	workers := min(c.cfg.Concurrency, len(jobs))
	wg.Add(workers)
	for range workers {
		go work()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed, the first: %w", failed, len(jobs), firstErr)
	}
	return nil
}

// prefetchOne makes one job's request, unless ctx has ended (a queued
// segment is then handed back to the Asks) or an Ask took the job over.
func (c *Client) prefetchOne(ctx context.Context, j *prefetchJob) error {
	if !j.dist {
		if !c.startSegment(j.seg) {
			return nil // an Ask is fetching it
		}
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

// startSegment takes a queued segment for Prefetch to fetch; false when
// an Ask took it first.
func (c *Client) startSegment(f *segFetch) bool {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	ok := f.queued
	f.queued = false
	return ok
}
