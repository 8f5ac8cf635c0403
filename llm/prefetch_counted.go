package llm

import (
	"context"

	"github.com/society-sim/society/agent"
)

// PrefetchCounted is Prefetch telling progress how far it is: once with
// 0 done when its plan is made, then after each planned request (made,
// found fetched by an Ask, or given up when ctx ends), with the requests
// done and planned. progress is called from Prefetch's workers, several
// at once; it must return quickly. It makes sim.CountingPrefetcher of a
// Client, so that a run's progress shows the fetch ahead of the answers.
func (c *Client) PrefetchCounted(ctx context.Context, qs []*agent.Question, progress func(done, planned int)) error {
	return c.startPrefetch(ctx, qs, progress)()
}
