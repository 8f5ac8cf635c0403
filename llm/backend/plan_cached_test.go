package backend

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// TestEstimateCached: for a run whose reply cache already holds part of
// its answers (an earlier run of the first 12 items), the plan splits a
// first run's requests into those the cache answers and those sent, and
// those sent are what the server then counts; the plan writes nothing to
// the cache. A cache the run does not read (mode write) leaves a first
// run's figures.
func TestEstimateCached(t *testing.T) {
	means, err := population.HumanMeans(SyntheticMeans)
	if err != nil {
		t.Fatal(err)
	}
	meter := NewPromptMeter(modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1}))
	hs := httptest.NewServer(meter)
	t.Cleanup(hs.Close)
	sc := estimateScenario(t, hs.URL, hs.URL)
	sc.Models = sc.Models[:1] // distribution mode, on the model server
	ctx := t.Context()
	cacheDir := t.TempDir()

	runWith := func(sc *scenarios.Scenario) int64 {
		t.Helper()
		before := meter.Count().Requests
		sets := New(cacheDir, nil, nil)
		defer sets.Close()
		if _, err := (&sim.Engine{Backends: sets.Backends, Open: sim.OpenLocal}).Rehearse(ctx, sc); err != nil {
			t.Fatal(err)
		}
		return meter.Count().Requests - before
	}
	first, err := Estimate(ctx, sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	part := *sc
	part.Questionnaires = append([]scenarios.Questionnaire(nil), sc.Questionnaires...)
	part.Questionnaires[0].Items = 12
	cached := runWith(&part)

	p, err := EstimateCached(ctx, sc, 0, &ReplyCache{Dir: cacheDir, Mode: llm.CacheReadWrite})
	if err != nil {
		t.Fatal(err)
	}
	m, all := p.Models[0], first.Models[0].Requests
	if p.CacheDir != cacheDir || m.CachedRequests != cached || m.Requests != all-cached || cached == 0 || m.Requests == 0 {
		t.Errorf("got %d requests and %d cached (cache %q); want %d and %d (%s)", m.Requests, m.CachedRequests, p.CacheDir, all-cached, cached, cacheDir)
	}
	if sent := runWith(sc); sent != m.Requests {
		t.Errorf("the run sent %d requests, the plan said %d", sent, m.Requests)
	}
	var b strings.Builder
	p.WriteText(&b, true)
	if want := fmt.Sprintf("answers %d of a first run's %d requests; %d go to the model", cached, all, all-cached); !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "answered by the cache") {
		t.Errorf("text: got\n%s\nwant the cached requests in a column and a line", b.String())
	}

	w, err := EstimateCached(ctx, sc, 0, &ReplyCache{Dir: cacheDir, Mode: llm.CacheWrite})
	if err != nil {
		t.Fatal(err)
	}
	if w.CacheDir != "" || w.Models[0].CachedRequests != 0 || w.Models[0].Requests != all {
		t.Errorf("write mode: got %+v, want a first run's %d requests", w.Models[0], all)
	}
	// A run that reads no cache is not told that the cache answers its
	// replies, nor that a rerun makes no request.
	for _, mode := range []llm.CacheMode{llm.CacheWrite, llm.CacheOff} {
		p, err := EstimateCached(ctx, sc, 0, &ReplyCache{Dir: cacheDir, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		for _, short := range []bool{true, false} {
			var b strings.Builder
			p.WriteText(&b, short)
			if got := b.String(); !strings.Contains(got, "reads no reply cache") || strings.Contains(got, "not asked again") || strings.Contains(got, "makes none") {
				t.Errorf("cache mode %v, short %v: got\n%s\nwant it to say the run reads no reply cache", mode, short, got)
			}
		}
	}
}
