package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Flights share a fetch among the processes that may need the same reply
// at the same moment: the agent hosts of a distributed run. A cache's
// single flight keeps one process from asking a prompt twice at once;
// two hosts asking it at once would still each pay for it. With Flights,
// the first to claim a key fetches it and lands the value for the
// others, who wait for it instead of asking the model.
//
// A claim whose holder stops heartbeating (a host killed with SIGKILL)
// goes stale and is taken over by a waiter, so a dead host costs a wait,
// never a lost reply. Landed values last as long as the run: they also
// tell a host that a reply it reads from the shared store was fetched by
// this run (an answer reused), not by an earlier one (a call saved).
//
// Implementations (bus.Flights) must be safe for concurrent use.
type Flights interface {
	// Claim tries to take key. It returns the landed value when there is
	// one (landed), or whether this process now holds the claim (won);
	// neither means another process holds it. rev identifies the claim
	// or the state seen, for Beat and Steal.
	Claim(ctx context.Context, key string) (val []byte, landed, won bool, rev uint64, err error)
	// Beat renews a claim this process holds, returning its new rev; it
	// fails when another took the claim over.
	Beat(ctx context.Context, key string, rev uint64) (uint64, error)
	// Steal takes over a claim seen at rev, when it is still at rev.
	Steal(ctx context.Context, key string, rev uint64) (won bool, newRev uint64, err error)
	// Land stores the value fetched under key, ending the claim.
	Land(ctx context.Context, key string, val []byte) error
	// Drop gives a claim up without a value (the fetch failed), so that
	// a waiter fetches it.
	Drop(ctx context.Context, key string) error
	// Landed returns the value landed under key in this run, if any.
	Landed(ctx context.Context, key string) ([]byte, bool, error)
}

// WithFlights shares the cache's fetches with the other processes of a
// run through f (nil for none).
func WithFlights(f Flights) CacheOption { return func(t *tiers) { t.flights = f } }

// Flight timing: a holder renews its claim every flightBeat; a claim
// not renewed for flightStale (as a waiter measures it, on its own clock)
// is taken over. A waiter looks again after flightPoll, growing to
// flightPollMax.
var (
	flightBeat    = 2 * time.Second
	flightStale   = 10 * time.Second
	flightPoll    = 10 * time.Millisecond
	flightPollMax = 250 * time.Millisecond
)

// shareFetch returns the value of key fetched once across the run's
// processes: by fetch, when this process wins the claim (landed then for
// the others), or as landed by another (elsewhere true). When the flights
// fail, it fetches itself: a reply paid twice is a cost, never a wrong
// answer.
func (t *tiers) shareFetch(ctx context.Context, key string, fetch func(ctx context.Context) ([]byte, error)) (val []byte, elsewhere bool, err error) {
	f := t.flights
	if f == nil {
		v, err := fetch(ctx)
		return v, false, err
	}
	poll := flightPoll
	var (
		seenRev uint64
		seenAt  time.Time
	)
	for {
		v, landed, won, rev, err := f.Claim(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			t.sharedFailed(ctx, "claim", err)
			v, err := fetch(ctx)
			return v, false, err
		}
		if landed {
			t.markElsewhere(key)
			return v, true, nil
		}
		if !won {
			// Another holds it: wait, and take it over once its holder
			// has stopped renewing it.
			now := time.Now()
			if rev != seenRev {
				seenRev, seenAt = rev, now
			} else if now.Sub(seenAt) >= flightStale {
				ok, nrev, err := f.Steal(ctx, key, rev)
				if err == nil && ok {
					won, rev = true, nrev
				}
			}
		}
		if won {
			return t.holdAndFetch(ctx, key, rev, fetch)
		}
		if !sleepCtx(ctx, poll) {
			return nil, false, ctx.Err()
		}
		poll = min(poll*2, flightPollMax)
	}
}

// holdAndFetch fetches key while renewing the claim at rev, then lands
// the value or drops the claim.
func (t *tiers) holdAndFetch(ctx context.Context, key string, rev uint64, fetch func(ctx context.Context) ([]byte, error)) ([]byte, bool, error) {
	f := t.flights
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(flightBeat)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				nrev, err := f.Beat(ctx, key, rev)
				if err != nil {
					return // taken over or unreachable: the fetch goes on
				}
				rev = nrev
			}
		}
	}()
	v, err := fetch(ctx)
	close(stop)
	wg.Wait()
	// Landing and dropping outlive a cancelled fetch: a waiter must not
	// wait for a stale claim when it can be told at once.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err != nil {
		if derr := f.Drop(lctx, key); derr != nil {
			t.sharedFailed(ctx, "drop", derr)
		}
		return nil, false, err
	}
	// Kept before landing: a lookup of this process that finds the value
	// landed must know it for its own.
	t.own.Store(key, struct{}{})
	if lerr := f.Land(lctx, key, v); lerr != nil {
		t.sharedFailed(ctx, "land", lerr)
	}
	return v, false, nil
}

// usedElsewhere reports whether another process of the run used key's
// value first, so that this process's use of it, read from a store, is
// an answer reused rather than a call saved (or, fetched by another in
// this run, rather than a call of its own). The first process to use a
// stored value claims and lands it, as a fetch would: each reply counts
// one call saved per run, however many hosts use it. When the flights
// cannot tell, the value counts as this process's, as in a single
// process.
func (t *tiers) usedElsewhere(ctx context.Context, key string, val []byte) bool {
	if t.flights == nil {
		return false
	}
	// Uses of key in this process at once share one claim: a claim of
	// this process must not read as another's.
	elsewhere, _ := t.firstUse.do(ctx, key, func() (bool, error) {
		if t.isElsewhere(key) {
			return true, nil
		}
		if _, ours := t.own.Load(key); ours {
			return false, nil
		}
		_, _, won, _, err := t.flights.Claim(ctx, key)
		if err != nil {
			t.sharedFailed(ctx, "claim", err)
			return false, nil
		}
		if !won {
			// Landed by another, or claimed by another that is reading
			// or fetching it this moment.
			t.markElsewhere(key)
			return true, nil
		}
		t.own.Store(key, struct{}{})
		if err := t.flights.Land(ctx, key, val); err != nil {
			t.sharedFailed(ctx, "land", err)
		}
		return false, nil
	})
	return elsewhere
}

func (t *tiers) markElsewhere(key string) { t.elsewhere.Store(key, struct{}{}) }

func (t *tiers) isElsewhere(key string) bool {
	_, ok := t.elsewhere.Load(key)
	return ok
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// wireChoice is a reply of a segment as landed for the other hosts.
type wireChoice struct {
	Content string `json:"content"`
	Finish  string `json:"finish,omitempty"`
	Calls   int    `json:"calls,omitempty"`
}

func encodeSegment(replies segReplies) ([]byte, error) {
	w := make(map[int]wireChoice, len(replies.chs))
	for k, ch := range replies.chs {
		if ch.ok {
			w[replies.start+k] = wireChoice{Content: ch.content, Finish: ch.finish, Calls: ch.calls}
		}
	}
	return json.Marshal(w)
}

// decodeSegment reads the replies of the samples [start, end) another
// process landed; a sample outside the segment makes the whole landing
// unreadable.
func decodeSegment(b []byte, start, end int) (segReplies, error) {
	var w map[int]wireChoice
	if err := json.Unmarshal(b, &w); err != nil {
		return segReplies{}, err
	}
	out := segReplies{start: start, chs: make([]keptChoice, end-start)}
	for i, ch := range w {
		if i < start || i >= end {
			return segReplies{}, fmt.Errorf("sample %d outside the segment [%d, %d)", i, start, end)
		}
		out.chs[i-start] = keptChoice{choice: choice{content: ch.Content, finish: ch.Finish, calls: ch.Calls}, ok: true}
	}
	return out, nil
}
