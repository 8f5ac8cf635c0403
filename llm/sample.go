package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// This file is sample mode: one completion per answer, fetched in
// segments of up to Samples completions per request, read, retried with
// the strict instruction when unreadable, and stored.

// answerEntry is a cached sample: the answer with its raw text. Calls is
// the number of model calls the answer cost when it was fetched: the
// requests of its segment for the first sample read from them (more than
// one when the server ignored n), plus a strict retry; 0 for the other
// samples of the segment, whose answers came from the same replies. A rerun
// served from the cache counts them as calls saved (CacheHits). Entries
// written before it was recorded have none (nil). Strict is the part of
// Calls that was a strict retry (0 or 1; entries written before it was
// recorded have 0): the rest were the segment's requests, which a rerun
// that fetches the segment again makes again.
type answerEntry struct {
	Value  int    `json:"value"`
	Valid  bool   `json:"valid"`
	Raw    string `json:"raw"`
	Reason string `json:"reason,omitempty"`
	Calls  *int   `json:"calls,omitempty"`
	Strict int    `json:"strict,omitempty"`
}

// askSample returns sample q.Sample of the prompt: from the cache, or read
// from a reply fetched for the sample's segment (see segmentOf), retried
// with the strict instruction when unreadable, and then stored. Only the
// samples agents ask for are parsed, retried and stored.
func (c *Client) askSample(ctx context.Context, q *agent.Question, p agent.Prompt) (agent.Answer, error) {
	return c.samples.do(ctx, sampleKey{p.System, p.User, q.Sample}, func() (agent.Answer, error) {
		var key string
		if c.cfg.Cache != nil {
			key = c.cacheKey(p, strconv.Itoa(q.Sample))
			raw, ok, err := c.cfg.Cache.Get(ctx, key)
			if err != nil {
				return agent.Answer{}, err
			}
			if e, decoded := decodeEntry(raw); ok && decoded {
				if err := c.countStored(ctx, q, p, e); err != nil {
					return agent.Answer{}, err
				}
				return e.answer(), nil
			}
		}
		ch, err := c.sampleReply(ctx, q, p)
		if err != nil {
			return agent.Answer{}, err
		}
		if ch.calls == 0 {
			// Another sample of the segment was read from the same
			// replies first.
			c.stats.answersReused.Add(1)
		}
		a, strict, err := c.readSample(ctx, q, p, ch)
		if err != nil {
			return agent.Answer{}, err
		}
		if c.cfg.Cache != nil {
			calls := ch.calls + strict
			raw, err := json.Marshal(answerEntry{Value: a.Value, Valid: a.Valid, Raw: a.Raw, Reason: a.Reason, Calls: &calls, Strict: strict})
			if err != nil {
				return agent.Answer{}, err
			}
			if err := c.cfg.Cache.Put(ctx, key, raw); err != nil {
				return agent.Answer{}, err
			}
		}
		if !a.Valid {
			c.stats.invalid.Add(1)
		}
		return a, nil
	})
}

// sampleKey identifies a sample of a prompt among the Asks in flight: the
// same sample asked for at once is read once. Within one client it says
// what the sample's cache key says (the client's parameters are the
// same for all), without hashing the prompt into a new string at every
// Ask; the cache key is made only when there is a cache.
type sampleKey struct {
	system, user string
	sample       int
}

// segmentOf returns the samples [start, end) fetched together with sample
// i. Samples come in blocks of Samples (one request with n = Samples when
// the server honours n); a block is cut where the run's demand for the
// persona ends (Demand), so that a block is fetched only as far as agents
// will use it, and the samples past the demand (asked for only when the
// demand was wrong) form a segment of their own. The segments depend on
// the demand and the index only, never on which agent asked first, so the
// same run sends the same requests with the same seeds.
func (c *Client) segmentOf(persona agent.Persona, i int) (start, end int) {
	d := 0
	if c.cfg.Demand != nil {
		d = c.cfg.Demand(persona)
	}
	return c.segmentAt(d, i)
}

// segmentAt is segmentOf for a persona whose demand is d (0 or less:
// unknown).
func (c *Client) segmentAt(d, i int) (start, end int) {
	s := c.cfg.Samples
	blockStart := i / s * s
	blockEnd := blockStart + s
	cut := blockEnd
	if d > 0 {
		cut = min(max(d, blockStart), blockEnd)
	}
	if i < cut {
		return blockStart, cut
	}
	return cut, blockEnd
}

// segment holds the replies of a segment fetched in this run until each
// has been read once; kept by value in Client.segments (no allocation of
// its own).
type segment struct {
	replies segReplies
	left    int // replies not yet handed out
}

// segReplies are the replies of the samples [start, start+len) of a
// segment, those not kept marked by !ok: a slice the size of the segment
// instead of a map, which cost two allocations per sample-mode call.
type segReplies struct {
	start int
	chs   []keptChoice
}

type keptChoice struct {
	choice
	ok bool
}

// get returns the reply of sample i, if kept.
func (r segReplies) get(i int) (choice, bool) {
	k := i - r.start
	if k < 0 || k >= len(r.chs) || !r.chs[k].ok {
		return choice{}, false
	}
	return r.chs[k].choice, true
}

// take is get, forgetting the reply.
func (r segReplies) take(i int) (choice, bool) {
	ch, ok := r.get(i)
	if ok {
		r.chs[i-r.start] = keptChoice{}
	}
	return ch, ok
}

// count is the number of replies kept.
func (r segReplies) count() int {
	n := 0
	for _, k := range r.chs {
		if k.ok {
			n++
		}
	}
	return n
}

// segFetch is a segment being fetched, or queued by the Asks waiting for
// it to be fetched by a Prefetch plan's workers. An Ask that registered it
// for itself (claimSegment), or the plan's workers (takeJob), fetch it and
// end it with endSegment; everyone else waits for done, a segment queued
// for the plan included: its workers reach every segment of their plan,
// and requests made by the agents beside them would each hand a slot of
// the limiter from one goroutine to another (agents took 22,000 of a
// sample phase's 40,000 segments over when they could; BENCHMARKS.md
// gives the rates before and after). prefetched marks a fetch made, or
// to be made, by Prefetch: its failure is not the waiting Ask's, which
// then fetches the segment itself. done is guarded by Client.segMu, made
// by the first Ask that waits (a fetch nobody waits for, as most are,
// costs no channel) and closed by endSegment.
type segFetch struct {
	done       chan struct{}
	err        error // set before done is closed
	prefetched bool
	ended      bool // endSegment has run
	// count is the plan's count of requests answered, when the segment
	// is one of a Prefetch plan's: whoever fetches it counts it there.
	count *prefetchCount
	// plan is the Prefetch plan whose workers will fetch the segment,
	// while it is queued for them by the Asks waiting for it (see
	// planAhead); nil once they take it.
	plan *prefetchPlan
}

// segKey identifies the samples [start, end) of a prompt in memory. The
// segments of a run live in this process only, so the prompt itself is
// the key (hashed by the map, not by SHA-256 into a new string per call).
type segKey struct {
	system, user string
	start, end   int
}

// segmentKey is the key under which the replies of samples [start, end)
// of prompt p are kept.
func (c *Client) segmentKey(p agent.Prompt, start, end int) segKey {
	return segKey{p.System, p.User, start, end}
}

// sampleReply returns the reply for sample q.Sample, fetching its segment
// when no request of this run has, or waiting for the request that is
// fetching it (another agent's or Prefetch's): a segment is requested
// once however many ask for it at once.
func (c *Client) sampleReply(ctx context.Context, q *agent.Question, p agent.Prompt) (choice, error) {
	i := q.Sample
	start, end := c.segmentOf(q.Persona, i)
	key := c.segmentKey(p, start, end)
	// A segment fetched earlier whose samples were all read is fetched
	// again for a sample asked a second time (only without a cache): a
	// bounded number of rounds, not a loop on a server that drops choices.
	// A round that waited for a failed prefetch does not count.
	for rounds := 0; rounds < 3; {
		ch, ok, f, done, owner := c.claimSegment(key, i)
		switch {
		case ok:
			return ch, nil
		case owner:
			rounds++
			replies, err := c.fetchSegmentOnce(ctx, q, p, start, end, i)
			// The fetching Ask keeps its own reply; the others wait
			// for theirs in c.segments.
			ch, ok := replies.take(i)
			c.endSegment(key, f, replies, err)
			if err != nil {
				return choice{}, err
			}
			if ok {
				return ch, nil
			}
		default:
			c.segWaiting.Add(1)
			select {
			case <-done:
			case <-ctx.Done():
				c.segWaiting.Add(-1)
				return choice{}, ctx.Err()
			}
			c.segWaiting.Add(-1)
			c.segMu.Lock()
			prefetched := f.prefetched
			c.segMu.Unlock()
			if f.err != nil && !prefetched {
				if !isContextErr(f.err) || ctx.Err() != nil {
					return choice{}, f.err
				}
				rounds++ // the fetching Ask's context ended: try again
			}
		}
	}
	return choice{}, fmt.Errorf("sample %d: no reply after fetching its samples", i)
}

// claimSegment hands out the reply of sample i once, forgetting the
// segment once every reply has been handed out. Without a reply it returns
// the segment's fetch in progress with the channel its end closes, or
// registers a new one that the caller owns (owner) and must end with
// endSegment.
func (c *Client) claimSegment(key segKey, i int) (ch choice, ok bool, f *segFetch, done <-chan struct{}, owner bool) {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	if sg, ok := c.segments[key]; ok {
		if ch, ok := sg.replies.take(i); ok {
			sg.left--
			if sg.left == 0 {
				delete(c.segments, key)
			} else {
				c.segments[key] = sg
			}
			return ch, true, nil, nil, false
		}
	}
	if f := c.fetching[key]; f != nil {
		return choice{}, false, f, f.wait(), false
	}
	if c.fetching == nil {
		c.fetching = map[segKey]*segFetch{}
	}
	if pl := c.planAhead(key); pl != nil {
		// Queued for the fetch ahead, whose workers will reach it.
		f = pl.newSegment(segFetch{prefetched: true, count: pl.count, plan: pl})
		pl.waiting++
		c.fetching[key] = f
		return choice{}, false, f, f.wait(), false
	}
	f = &segFetch{}
	c.fetching[key] = f
	return choice{}, false, f, nil, true
}

// wait returns the channel closed when f ends, made by the first to wait.
// The caller holds Client.segMu.
func (f *segFetch) wait() <-chan struct{} {
	if f.done == nil {
		f.done = make(chan struct{})
		if f.ended {
			close(f.done)
		}
	}
	return f.done
}

// endSegment keeps the replies of a fetch that succeeded and wakes those
// waiting for it.
func (c *Client) endSegment(key segKey, f *segFetch, replies segReplies, err error) {
	c.segMu.Lock()
	if n := replies.count(); err == nil && n > 0 {
		if c.segments == nil {
			c.segments = map[segKey]segment{}
		}
		if sg, had := c.segments[key]; !had {
			c.segments[key] = segment{replies: replies, left: n}
		} else {
			// Replies of an earlier fetch of the segment not yet read
			// (a sample asked a second time): both are kept.
			for k, kc := range replies.chs {
				if !kc.ok {
					continue
				}
				if _, had := sg.replies.get(replies.start + k); !had {
					sg.left++
				}
				sg.replies.chs[k] = kc
			}
			c.segments[key] = sg
		}
	}
	delete(c.fetching, key)
	f.err = err
	var count *prefetchCount
	if err == nil {
		count, f.count = f.count, nil
	}
	c.segMu.Unlock()
	count.add()
	c.segMu.Lock()
	f.ended = true
	done := f.done
	c.segMu.Unlock()
	if done != nil {
		close(done)
	}
}

// countStored counts a sample served from the cache: the calls its entry
// cost are calls saved, and an entry whose answer was read from the
// replies of another sample's request (its own calls, if any, strict
// retries) is an answer reused, as it was when fetched. (Counted so only
// when it cost no call, a rerun reported fewer answers reused than the
// run that filled the cache, by its reused answers retried strictly.)
// An entry without its calls counts one call saved for the first sample
// of its segment, the one its request was seeded from.
//
// The requests among those calls are saved only when this run never
// fetches the sample's segment (segmentStored): a run with more agents
// than the one that filled the cache finds part of a segment stored and
// fetches the segment whole for the rest (fetchSegment), making the
// stored requests again; only the stored strict retries are saved then.
// Counting them all would count the segment's request twice, once made
// and once saved.
func (c *Client) countStored(ctx context.Context, q *agent.Question, p agent.Prompt, e answerEntry) error {
	saved, requests := 0, 0
	switch {
	case e.Calls != nil:
		saved = *e.Calls
		requests = max(saved-e.Strict, 0)
	default:
		if start, _ := c.segmentOf(q.Persona, q.Sample); start == q.Sample {
			saved, requests = 1, 1
		}
	}
	if requests > 0 {
		stored, err := c.segmentStored(ctx, q, p)
		if err != nil {
			return err
		}
		if !stored {
			saved -= requests
		}
	}
	if saved == 0 || requests == 0 {
		c.stats.answersReused.Add(1)
	}
	if saved == 0 {
		return nil
	}
	c.stats.cacheHits.Add(int64(saved))
	for range saved {
		c.doer.obs.CacheLookup(c.doer.model, true)
	}
	return nil
}

// segmentStored reports whether the segment of sample q.Sample is not
// fetched by this client: every sample of it is stored, and it was not
// fetched again for samples missing from the store. The store is read
// before the record of fetches: a fetch that stored the missing samples
// before the store was read was recorded before.
func (c *Client) segmentStored(ctx context.Context, q *agent.Question, p agent.Prompt) (bool, error) {
	start, end := c.segmentOf(q.Persona, q.Sample)
	for i := start; i < end; i++ {
		if i == q.Sample {
			continue
		}
		raw, ok, err := c.cfg.Cache.store.Get(ctx, c.cacheKey(p, strconv.Itoa(i)))
		if err != nil {
			return false, fmt.Errorf("cache get: %w", err)
		}
		if _, decoded := decodeEntry(raw); !ok || !decoded {
			return false, nil
		}
	}
	c.segMu.Lock()
	_, again := c.refetched[c.segmentKey(p, start, end)]
	c.segMu.Unlock()
	return !again, nil
}

func (e answerEntry) answer() agent.Answer {
	return agent.Answer{Value: e.Value, Valid: e.Valid, Raw: e.Raw, Reason: e.Reason}
}

func decodeEntry(raw []byte) (answerEntry, bool) {
	if raw == nil {
		return answerEntry{}, false
	}
	var e answerEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return answerEntry{}, false
	}
	return e, true
}

// fetchSegment fetches the samples [start, end) and returns the replies
// of those the cache does not hold (always including sample want). The
// requests are the same whatever the cache holds: a server honouring n
// draws choice j of a request from the request's seed and j, so a request
// for only the missing samples, seeded from the first of them, would give
// them other replies than the run that fetched the segment whole; which
// samples are cached depends on which agent host or restarted process got
// there first, and the same seed must give the same answers. The segment
// is therefore asked for whole, from its first sample; a server that
// ignores n returns fewer choices than asked, and the rest are asked for
// again, each request seeded from its first sample. Choices beyond the
// ones asked for are ignored. A want below start (Prefetch) asks for no
// sample in particular: a segment whose samples are all stored costs no
// request.
func (c *Client) fetchSegment(ctx context.Context, q *agent.Question, p agent.Prompt, start, end, want int) (segReplies, error) {
	need := make(map[int]bool, end-start)
	for i := start; i < end; i++ {
		if i != want && c.cfg.Cache != nil {
			// A crash may have left the segment half stored, and an
			// earlier run with fewer agents, or another agent host,
			// stored some of its samples: those keep their stored
			// answers, and their replies are not kept.
			raw, ok, err := c.cfg.Cache.store.Get(ctx, c.cacheKey(p, strconv.Itoa(i)))
			if err != nil {
				return segReplies{}, fmt.Errorf("cache get: %w", err)
			}
			if _, decoded := decodeEntry(raw); ok && decoded {
				continue
			}
		}
		need[i] = true
	}
	if len(need) == 0 {
		return segReplies{}, nil // only for Prefetch (want < 0): every sample is stored
	}
	if c.cfg.Cache != nil {
		// One miss per segment fetched: the lookup that costs a call.
		c.doer.obs.CacheLookup(c.doer.model, false)
		if len(need) < end-start {
			// The stored samples' requests are made again: they
			// are not calls saved (countStored).
			c.segMu.Lock()
			if c.refetched == nil {
				c.refetched = map[segKey]struct{}{}
			}
			c.refetched[c.segmentKey(p, start, end)] = struct{}{}
			c.segMu.Unlock()
		}
	}
	out := segReplies{start: start, chs: make([]keptChoice, end-start)}
	// Each call belongs to the first reply it brought that is kept:
	// whichever Ask reads that reply accounts for the call, and the Asks
	// that read the call's other replies reuse answers of the same call.
	pending, first := 0, end
	var buf [1]choice // a segment of one sample, the usual: no allocation
	for got := start; got < end; {
		chs, err := c.sampleChoices(ctx, q, p, end-got, got, buf[:0])
		if err != nil {
			return segReplies{}, err
		}
		pending++
		if len(chs) == 0 {
			return segReplies{}, errors.New("server returned no choices")
		}
		for _, ch := range chs[:min(len(chs), end-got)] {
			if need[got] {
				ch.calls, pending = pending, 0
				out.chs[got-start] = keptChoice{ch, true}
				first = min(first, got)
			}
			got++
		}
	}
	if first < end && pending > 0 {
		out.chs[first-start].calls += pending // calls that brought only samples already stored
	}
	return out, nil
}

// fetchSegmentOnce is fetchSegment done by one process of the run when
// the cache shares its fetches with others (WithFlights): the agent
// hosts whose agents ask samples of the same segment at once share one
// request, whoever makes it. The replies come with the calls the fetching
// process gave them, so that whichever host reads a request's first
// reply accounts for the call and every other reply is an answer reused.
// Replies landed by another that lack want (it found want stored) are
// fetched here.
func (c *Client) fetchSegmentOnce(ctx context.Context, q *agent.Question, p agent.Prompt, start, end, want int) (segReplies, error) {
	if c.cfg.Cache == nil || c.cfg.Cache.store.flights == nil {
		return c.fetchSegment(ctx, q, p, start, end, want)
	}
	key := c.cacheKey(p, "segment "+strconv.Itoa(start)+"-"+strconv.Itoa(end))
	raw, elsewhere, err := c.cfg.Cache.ShareFetch(ctx, key, func(ctx context.Context) ([]byte, error) {
		replies, err := c.fetchSegment(ctx, q, p, start, end, want)
		if err != nil {
			return nil, err
		}
		return encodeSegment(replies)
	})
	if err != nil {
		return segReplies{}, err
	}
	replies, err := decodeSegment(raw, start, end)
	if err != nil {
		return segReplies{}, fmt.Errorf("segment landed by another host: %w", err)
	}
	if _, ok := replies.get(want); elsewhere && want >= start && !ok {
		return c.fetchSegment(ctx, q, p, start, end, want)
	}
	return replies, nil
}

// readSample reads the answer of a reply; an unreadable one is asked
// again with the strict instruction. It returns the calls it made: 1
// after a strict retry, else 0.
func (c *Client) readSample(ctx context.Context, q *agent.Question, p agent.Prompt, ch choice) (agent.Answer, int, error) {
	sc := q.Instrument.Scale
	text, cut := truncationReason(ch, sc)
	if cut == "" {
		v, reason, ok := c.parseAnswer(text, q.Instrument)
		if ok {
			return agent.Answer{Value: v, Valid: true, Raw: ch.content}, 0, nil
		}
		a, err := c.strictRetry(ctx, q, p, ch, text, reason, false)
		return a, 1, err
	}
	c.warnOnce("truncated", "replies are cut off by the token limit (a reasoning model spends it on reasoning): "+
		"raise max_tokens or switch reasoning off", "max_tokens", c.cfg.MaxTokens)
	a, err := c.strictRetry(ctx, q, p, ch, text, cut, true)
	return a, 1, err
}

// strictRetry asks once more with the strict instruction after the first
// reply's answer text, when it had any: an assistant turn is never empty,
// and a reply that was nothing but reasoning is not shown again. A reply
// cut off by the token limit is retried with truncatedBudget times the
// budget, not the budget that already failed. An answer still unreadable
// is recorded invalid, with both replies: it is never guessed.
func (c *Client) strictRetry(ctx context.Context, q *agent.Question, p agent.Prompt, first choice, text, reason string, truncated bool) (agent.Answer, error) {
	c.stats.strictRetries.Add(1)
	strict := agent.StrictInstruction(q.Instrument)
	budget := c.cfg.MaxTokens
	if truncated {
		budget *= truncatedBudget
	}
	prev := strings.TrimSpace(text)
	seed := seedFor(c.cfg.Seed, p, q.Sample, true)
	var again choice
	if c.cfg.Endpoint == EndpointCompletions {
		prompt := completionPrompt(p)
		if prev != "" {
			prompt += " " + prev + "\n\n" + strict + "\n\nAnswer:"
		} else {
			prompt = strings.TrimSuffix(prompt, "Answer:") + strict + "\n\nAnswer:"
		}
		resp, err := c.complete(ctx, c.completionRequest(prompt, 1, budget), q, seed)
		if err != nil {
			return agent.Answer{}, err
		}
		if chs := completionChoices(resp); len(chs) > 0 {
			again = chs[0]
		}
	} else {
		msgs := chatMessages(p)
		if prev != "" {
			msgs = append(msgs,
				chatMsg{role: "assistant", content: prev},
				chatMsg{role: "user", content: strict})
		} else {
			// Two user turns in a row break chat templates that want
			// the roles to alternate: the instruction joins the question.
			last := &msgs[len(msgs)-1]
			last.content += "\n\n" + strict
		}
		resp, err := c.chat(ctx, c.chatRequest(msgs, 1, budget), q, seed)
		if err != nil {
			return agent.Answer{}, err
		}
		if chs := chatChoices(resp); len(chs) > 0 {
			again = chs[0]
		}
	}
	text2, reason2 := truncationReason(again, q.Instrument.Scale)
	if reason2 == "" {
		v, r, ok := c.parseAnswer(text2, q.Instrument)
		if ok {
			return agent.Answer{Value: v, Valid: true, Raw: again.content}, nil
		}
		reason2 = r
	}
	return agent.Answer{
		Raw:    first.content,
		Reason: fmt.Sprintf("%s; after the strict instruction: %s (reply %q)", reason, reason2, again.content),
	}, nil
}

// truncatedBudget multiplies the token budget of the strict retry of a
// reply cut off by the token limit.
const truncatedBudget = 4

// sampleChoices asks for n completions whose first sample index is first
// and appends them to dst.
func (c *Client) sampleChoices(ctx context.Context, q *agent.Question, p agent.Prompt, n, first int, dst []choice) ([]choice, error) {
	seed := seedFor(c.cfg.Seed, p, first, false)
	if c.cfg.Endpoint == EndpointCompletions {
		resp, err := c.complete(ctx, c.completionRequest(completionPrompt(p), n, c.cfg.MaxTokens), q, seed)
		if err != nil {
			return nil, err
		}
		return appendCompletionChoices(dst, resp), nil
	}
	resp, err := c.chat(ctx, c.chatRequest(chatMessages(p), n, c.cfg.MaxTokens), q, seed)
	if err != nil {
		return nil, err
	}
	return appendChatChoices(dst, resp), nil
}

// parseKey is a short reply to an instrument's items.
type parseKey struct {
	in   *questionnaires.Instrument
	text string
}

// reading is what ParseAnswer made of a reply.
type reading struct {
	value  int
	reason string
	ok     bool
}

// Bounds of the readings kept: replies up to parseMemoText bytes, at most
// parseMemoLimit of them (a few hundred KiB).
const (
	parseMemoText  = 32
	parseMemoLimit = 4096
)

// parseAnswer is ParseAnswer on the scale of in, remembering the readings
// of short replies: sample mode reads the same few replies ("4", "Like
// me") once per answer, and reading one anew costs more of the client's
// CPU than the rest of the reply. ParseAnswer depends on the text and the
// scale only, so a remembered reading is the one it would give.
func (c *Client) parseAnswer(text string, in *questionnaires.Instrument) (int, string, bool) {
	if len(text) > parseMemoText {
		return ParseAnswer(text, in.Scale)
	}
	k := parseKey{in, text}
	if r, ok := c.readings.Load(k); ok {
		r := r.(reading)
		return r.value, r.reason, r.ok
	}
	v, reason, ok := ParseAnswer(text, in.Scale)
	if c.nReadings.Load() < parseMemoLimit {
		if _, loaded := c.readings.LoadOrStore(k, reading{v, reason, ok}); !loaded {
			c.nReadings.Add(1)
		}
	}
	return v, reason, ok
}
