package llm

import (
	"context"

	"github.com/society-sim/society/agent"
)

// StartPrefetchCounted is StartPrefetch (its plan made before it returns,
// so that the agents started next meet it) telling progress how far it
// is: once when its plan is made, then each time one of the plan's
// requests is answered, whoever made it (Prefetch, an Ask whose request
// was in flight when the plan was made, or an Ask that met a planned
// distribution first), with the requests answered and planned. planned is
// every request of the plan, those the agents had already made when it
// was made included. A request that fails, or is cancelled, is not
// counted, and nothing is once Prefetch has returned
// (its context ended: the run was interrupted, or the phase is over).
// progress is called from the goroutines that make the requests, several
// at once, so a count may arrive after a larger one; it must return
// quickly. It makes sim.CountingPrefetcher of a Client, so that a run's
// progress shows the requests of the fetch ahead of the answers.
func (c *Client) StartPrefetchCounted(ctx context.Context, qs []*agent.Question, progress func(done, planned int)) (wait func() error) {
	return c.startPrefetch(ctx, qs, nil, progress)
}

// StartPrefetchShare is StartPrefetchCounted for a share of a phase's
// agents (the tasks an agent host took): of each sample-mode question
// qs[i], only the segments within the samples first[i] to qs[i].Sample
// (the ranks of the share's agents of that persona) are fetched, not the
// persona's whole demand, whose other samples other hosts' agents read.
// The segments and their seeds are those of the whole run, so the answers
// are the same. A segment that also holds samples outside the share (on
// its border, or all of a persona's samples when Samples exceeds its
// demand) is left to the Asks, as without a fetch ahead: fetched here, the
// replies of other hosts' agents would stay unread in memory, and a
// rerun from this process's cache would ask the model for them.
// Distribution-mode questions are fetched as by StartPrefetchCounted. first must have one entry per question, each
// between 0 and the question's Sample; a question whose entry is not is
// reported malformed and skipped. It makes sim.SharePrefetcher of a
// Client.
func (c *Client) StartPrefetchShare(ctx context.Context, qs []*agent.Question, first []int, progress func(done, planned int)) (wait func() error) {
	if first == nil {
		first = []int{} // every question malformed, not the whole demand
	}
	return c.startPrefetch(ctx, qs, first, progress)
}
