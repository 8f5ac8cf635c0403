//go:build !race

package llm

import (
	"context"
	"testing"

	"github.com/society-sim/society/values"
)

// maxSampleAllocs bounds the allocations of one sample-mode call against
// an in-process server that answers at once, the server's own included
// (about 35 of them, net/http's): the client's allocations are most of its
// CPU per call beyond the connection's reads and writes. It was 120 before
// the chat reply was read without reflection, the extra fields merged as
// the body is written, the request sent through the transport and the
// sample's key left unhashed without a cache, and 97 before the attempts
// shared their deadlines (deadline.go) and the hand-off of a sample made
// its channels only for those who wait; a newer net/http may move it by a
// few (88–90 when it was set).
const maxSampleAllocs = 93

func TestSampleCallAllocs(t *testing.T) {
	srv := instantServer(t)
	cfg := testConfig(srv.URL)
	cfg.Seed = ptr(uint64(1))
	c := newClient(t, cfg)
	in := pvq(t)
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		i++
		if _, err := c.Ask(context.Background(), question(in, values.Power, i%len(in.Items), i)); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > maxSampleAllocs {
		t.Errorf("%.0f allocations per sample call, want at most %d", allocs, maxSampleAllocs)
	}
	t.Logf("%.0f allocations per sample call", allocs)
}
