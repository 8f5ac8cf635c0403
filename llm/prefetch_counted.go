package llm

import (
	"context"

	"github.com/society-sim/society/agent"
)

// StartPrefetchCounted is StartPrefetch (its plan made before it returns,
// so that the agents started next meet it) telling progress how far it is: once when
// its plan is made, then each time one of the plan's requests is answered,
// whoever made it (Prefetch, or an Ask that took a queued segment over or
// met a planned distribution first), with the requests answered and
// planned. planned is every request of the plan, those the agents had
// already made when it was made included. A request that fails, or is
// cancelled, is not counted, and nothing is once Prefetch has returned
// (its context ended: the run was interrupted, or the phase is over).
// progress is called from the goroutines that make the requests, several
// at once, so a count may arrive after a larger one; it must return
// quickly. It makes sim.CountingPrefetcher of a Client, so that a run's
// progress shows the requests of the fetch ahead of the answers.
func (c *Client) StartPrefetchCounted(ctx context.Context, qs []*agent.Question, progress func(done, planned int)) (wait func() error) {
	return c.startPrefetch(ctx, qs, progress)
}
