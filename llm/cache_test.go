package llm

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/values"
)

func TestStores(t *testing.T) {
	ctx := context.Background()
	file := mustFileStore(t)
	stores := []struct {
		name string
		s    Store
	}{{"mem", NewMemStore()}, {"file", file}}
	key := keyHash("a", "b")
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			if v, ok, err := st.s.Get(ctx, key); err != nil || ok || v != nil {
				t.Fatalf("Get of a missing key: got %q, %v, %v; want nil, false, nil", v, ok, err)
			}
			val := []byte(`{"value":4}`)
			if err := st.s.Put(ctx, key, val); err != nil {
				t.Fatal(err)
			}
			val[2] = 'X' // the store must have kept its own copy
			v, ok, err := st.s.Get(ctx, key)
			if err != nil || !ok || string(v) != `{"value":4}` {
				t.Fatalf("Get: got %q, %v, %v; want {\"value\":4}, true, nil", v, ok, err)
			}
			if err := st.s.Put(ctx, key, []byte("2")); err != nil {
				t.Fatal(err)
			}
			if v, _, _ := st.s.Get(ctx, key); string(v) != "2" {
				t.Errorf("after overwrite: got %q, want 2", v)
			}
		})
	}
}

func TestDefaultCacheDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("XDG_CACHE_HOME is the Linux convention")
	}
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	d, err := DefaultCacheDir()
	if err != nil || d != "/tmp/xdg/society/cache" {
		t.Errorf("got %q, %v; want /tmp/xdg/society/cache", d, err)
	}
}

func TestCacheDo(t *testing.T) {
	ctx := context.Background()
	// In a bubble, synctest.Wait returns once every caller is blocked:
	// on the fetch (the first) or on the fetch in flight (the others).
	synctest.Test(t, func(t *testing.T) { testCacheDoConcurrentMisses(t) })

	t.Run("unusable value is fetched again", func(t *testing.T) {
		c := NewCache(NewMemStore())
		c.Put(ctx, "k2k", []byte("torn"))
		v, hit, err := c.Do(ctx, "k2k", func(b []byte) bool { return bytes.HasPrefix(b, []byte("ok")) },
			func(context.Context) ([]byte, error) { return []byte("ok!"), nil })
		if err != nil || hit || string(v) != "ok!" {
			t.Errorf("got %q, hit %v, %v; want a fresh ok!", v, hit, err)
		}
		if got, _, _ := c.Get(ctx, "k2k"); string(got) != "ok!" {
			t.Errorf("stored: got %q, want ok! to replace the torn value", got)
		}
	})

	t.Run("failed fetch is not stored", func(t *testing.T) {
		c := NewCache(NewMemStore())
		boom := errors.New("boom")
		if _, _, err := c.Do(ctx, "k3k", nil, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("got %v, want boom", err)
		}
		if _, ok, _ := c.Get(ctx, "k3k"); ok {
			t.Error("got a stored value after a failed fetch, want none")
		}
		if c.Hits() != 0 || c.Misses() != 2 {
			t.Errorf("got %d hits and %d misses, want 0 and 2", c.Hits(), c.Misses())
		}
	})
}

func TestCacheKeyParameters(t *testing.T) {
	base := testConfig("http://127.0.0.1:1")
	p := agent.Prompt{System: "s", User: "u"}
	key := func(edit func(*ClientConfig), p agent.Prompt, index string) string {
		cfg := base
		if edit != nil {
			edit(&cfg)
		}
		return newClient(t, cfg).cacheKey(p, index)
	}
	ref := key(nil, p, "0")
	if got := key(func(c *ClientConfig) { c.BaseURL = "http://elsewhere/v1"; c.Concurrency = 3 }, p, "0"); got != ref {
		t.Errorf("moving the server changed the key")
	}
	for name, k := range map[string]string{
		"temperature": key(func(c *ClientConfig) { c.Temperature = ptr(0.7) }, p, "0"),
		"no temp":     key(func(c *ClientConfig) { c.Temperature = nil }, p, "0"),
		"top_p":       key(func(c *ClientConfig) { c.TopP = 0.9 }, p, "0"),
		"max_tokens":  key(func(c *ClientConfig) { c.MaxTokens = 5 }, p, "0"),
		"seed":        key(func(c *ClientConfig) { c.Seed = ptr(uint64(7)) }, p, "0"),
		"model":       key(func(c *ClientConfig) { c.Model = "other" }, p, "0"),
		"endpoint":    key(func(c *ClientConfig) { c.Endpoint = EndpointCompletions }, p, "0"),
		"system":      key(nil, agent.Prompt{System: "s2", User: "u"}, "0"),
		"moved text":  key(nil, agent.Prompt{System: "su", User: ""}, "0"),
		"sample":      key(nil, p, "1"),
		"dist":        key(nil, p, "dist"),
	} {
		if k == ref {
			t.Errorf("%s: key unchanged, want a different key", name)
		}
	}
}

// questions is a small study: every persona answers items [from, to) of
// the PVQ, samples answers each.
func questions(t testing.TB, from, to, samples int) []*agent.Question {
	in := pvq(t)
	var qs []*agent.Question
	for _, p := range allPersonas(agent.StyleDescription) {
		for item := from; item < to; item++ {
			for s := range samples {
				qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: item, Sample: s})
			}
		}
	}
	return qs
}

// countingServer answers sample and distribution requests deterministically
// from the prompt, so that answers can be compared across runs.
func countingServer(t *testing.T) *openAIServer {
	return newOpenAIServer(t, func(r seenReq) (int, any) {
		v := 1 + len(r.text())%6
		if r.dist() {
			return 200, topReply(r, map[string]float64{
				string(rune('0' + v)): 0.6, string(rune('0' + 1 + v%6)): 0.3, "I": 0.1,
			})
		}
		texts := make([]string, r.n())
		for i := range texts {
			texts[i] = string(rune('0' + 1 + (v+i)%6))
		}
		return 200, textsReply(r, texts...)
	})
}

func TestCacheRerunAndResume(t *testing.T) {
	for _, mode := range []string{ModeSample, ModeDistribution} {
		t.Run(mode, func(t *testing.T) {
			srv := countingServer(t)
			dir := t.TempDir()
			run := func(qs []*agent.Question) ([]agent.Reply, ClientStats) {
				t.Helper()
				store, err := OpenFileStore(dir, FileStoreOptions{})
				if err != nil {
					t.Fatal(err)
				}
				cfg := testConfig(srv.URL)
				cfg.Mode, cfg.Samples, cfg.Cache = mode, 3, NewCache(store)
				c := newClient(t, cfg)
				r := askAll(t, c, qs)
				c.Close()
				if err := store.Close(); err != nil {
					t.Fatal(err)
				}
				return r, c.Stats()
			}
			// 11 personas × 4 items: 44 distinct prompts, one request
			// each (a block of 3 samples, or one distribution).
			const samples = 3
			half := questions(t, 0, 2, samples)
			all := questions(t, 0, 4, samples)

			_, st := run(half)
			if got := srv.calls.Load(); got != 22 || st.Calls != 22 {
				t.Fatalf("first half: server saw %d requests (client %d), want 22", got, st.Calls)
			}
			// Killed half-way, restarted: only the missing half is asked.
			first, st := run(all)
			if got := srv.calls.Load(); got != 44 || st.Calls != 22 {
				t.Fatalf("resumed run: server saw %d requests in all (client %d), want 44 (22 new)", got, st.Calls)
			}
			// The first half's 22 calls are saved; every answer beyond
			// the first of a reply, fetched or stored, is reused.
			if st.CacheHits != 22 || st.AnswersReused != int64(len(all))-44 {
				t.Errorf("resumed run: got %d cache hits, %d answers reused; want 22, %d", st.CacheHits, st.AnswersReused, len(all)-44)
			}
			// A rerun of the finished study costs nothing, and answers the same.
			again, st := run(all)
			if got := srv.calls.Load(); got != 44 || st.Calls != 0 {
				t.Fatalf("rerun: server saw %d new requests, want 0", got-44)
			}
			// Cache hits count calls saved, not answers: as many as the
			// runs that filled the cache made.
			if st.CacheHits != 44 || st.AnswersReused != int64(len(all))-44 {
				t.Errorf("rerun: got %d cache hits, %d answers reused; want 44 (the calls made to fill the cache), %d",
					st.CacheHits, st.AnswersReused, len(all)-44)
			}
			for i := range all {
				a, b := first[i], again[i]
				if a.Answer != b.Answer || len(a.Dist) != len(b.Dist) || (a.Dist != nil && a.Dist[0] != b.Dist[0]) {
					t.Fatalf("question %d: rerun got %+v, want %+v", i, b, a)
				}
				if mode == ModeSample && !a.Answer.Valid {
					t.Fatalf("question %d: got invalid %+v, want a valid answer", i, a.Answer)
				}
				if mode == ModeDistribution && len(a.Dist) != 6 {
					t.Fatalf("question %d: got %+v, want a distribution", i, a)
				}
			}
		})
	}
}

// Without a cache, concurrent agents asking one prompt share one request.
func TestClientDistributionSharesRequests(t *testing.T) {
	release := make(chan struct{})
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		<-release
		return 200, topReply(r, map[string]float64{"3": 1})
	})
	cfg := testConfig(srv.URL)
	cfg.Mode = ModeDistribution
	c := newClient(t, cfg)
	in := pvq(t)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Ask(context.Background(), question(in, values.Universalism, 7, i)); err != nil {
				t.Error(err)
			}
		}()
	}
	// The first request is held at the server until every other agent
	// waits for it.
	for srv.calls.Load() == 0 || c.dists.waiting.Load() < 29 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if got := srv.calls.Load(); got != 1 {
		t.Errorf("got %d requests for 30 agents asking one prompt, want 1", got)
	}
}

func testCacheDoConcurrentMisses(t *testing.T) {
	ctx := context.Background()
	c := NewCache(NewMemStore())
	var fetches atomic.Int64
	release := make(chan struct{})
	fetch := func(context.Context) ([]byte, error) {
		fetches.Add(1)
		<-release
		return []byte("answer"), nil
	}
	const callers = 20
	var wg sync.WaitGroup
	var hits atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, hit, err := c.Do(ctx, "k1k", nil, fetch)
			if err != nil || string(v) != "answer" {
				t.Errorf("Do: got %q, %v; want answer", v, err)
			}
			if hit {
				hits.Add(1)
			}
		}()
	}
	synctest.Wait() // every caller waits on the one fetch
	close(release)
	wg.Wait()
	if got := fetches.Load(); got != 1 {
		t.Errorf("got %d fetches for %d concurrent misses, want 1", got, callers)
	}
	if got := hits.Load(); got != 0 {
		t.Errorf("got %d hits while the value was being fetched, want 0", got)
	}
	if _, hit, _ := c.Do(ctx, "k1k", nil, fetch); !hit || fetches.Load() != 1 {
		t.Errorf("second Do: got hit %v after %d fetches, want a hit and no new fetch", hit, fetches.Load())
	}
}

// Agent hosts share the run's cache, and each fetches the segments its
// own agents need: a host that finds part of a segment stored by another
// (or by itself before a restart) still gets, for the samples it asks,
// the replies of the segment fetched whole. The model server draws choice
// j of a request from the request's seed and j, as servers honouring n
// do, so a request for only the missing samples would answer them
// differently.
func TestCacheSharedSegmentSameAnswers(t *testing.T) {
	in := pvq(t)
	_, ts := srvTestServer(t, modelserver.Options{Seed: 3})
	config := func(store Store) ClientConfig {
		cfg := testConfig(ts.URL)
		cfg.Samples, cfg.Seed, cfg.Cache = 10, ptr(uint64(5)), NewCache(store)
		return cfg
	}
	questionsOf := func(samples ...int) []*agent.Question {
		var qs []*agent.Question
		for _, s := range samples {
			qs = append(qs, question(in, values.Achievement, 2, s))
		}
		return qs
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	want := askAll(t, newClient(t, config(NewMemStore())), questionsOf(all...))

	shared := NewMemStore()
	first := askAll(t, newClient(t, config(shared)), questionsOf(0, 1, 2, 3))
	second := askAll(t, newClient(t, config(shared)), questionsOf(4, 5, 6, 7, 8, 9))
	got := append(first, second...)
	for i := range all {
		if got[i].Answer != want[i].Answer {
			t.Errorf("sample %d: got %+v with part of its segment cached, want %+v as fetched whole", i, got[i].Answer, want[i].Answer)
		}
	}
}

// TestCacheHitsCountCallsSaved reruns a study whose replies are all stored:
// its cache hits are the calls the first run made (strict retries after
// unreadable replies and the extra requests of a server that ignores n
// included), never the answers served; answers beyond the first of a
// reply are counted apart as reused.
func TestCacheHitsCountCallsSaved(t *testing.T) {
	_, model := srvTestServer(t, modelserver.Options{Seed: 3, GarbageRate: 0.3})
	ignoresN := newOpenAIServer(t, func(r seenReq) (int, any) {
		return 200, textsReply(r, string(rune('1'+len(r.text())%6))) // one choice, whatever n
	})
	tests := []struct {
		name, mode, url string
		counted         func() int64 // requests the server received
	}{
		{"sample, model server with garbage", ModeSample, model.URL, nil},
		{"distribution, model server", ModeDistribution, model.URL, nil},
		{"sample, server ignoring n", ModeSample, ignoresN.URL, ignoresN.calls.Load},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewMemStore()
			qs := questions(t, 0, 3, 4)
			var obs lookups
			run := func() ClientStats {
				cfg := testConfig(tt.url)
				cfg.Mode, cfg.Samples, cfg.Cache, cfg.Observer = tt.mode, 4, NewCache(store), &obs
				c := newClient(t, cfg)
				askAll(t, c, qs)
				return c.Stats()
			}
			var before int64
			if tt.counted != nil {
				before = tt.counted()
			}
			first := run()
			if tt.counted != nil && tt.counted()-before != first.Calls {
				t.Fatalf("first run: server counted %d requests, client %d", tt.counted()-before, first.Calls)
			}
			if first.Calls == 0 || first.CacheHits != 0 {
				t.Fatalf("first run: got %d calls, %d cache hits; want some calls, no hits", first.Calls, first.CacheHits)
			}
			if obs.hits.Load() != 0 {
				t.Errorf("first run: the metric counted %d calls saved, want 0", obs.hits.Load())
			}
			second := run()
			if got := obs.hits.Load(); got != second.CacheHits {
				t.Errorf("rerun: the metric counted %d calls saved, the client %d", got, second.CacheHits)
			}
			if second.Calls != 0 || second.CacheHits != first.Calls {
				t.Errorf("rerun: got %d calls, %d cache hits; want 0 calls, %d cache hits (the first run's calls)",
					second.Calls, second.CacheHits, first.Calls)
			}
			if answers := int64(len(qs)); second.CacheHits+second.AnswersReused < answers || second.AnswersReused >= answers {
				t.Errorf("rerun: got %d cache hits and %d answers reused for %d answers", second.CacheHits, second.AnswersReused, answers)
			}
			t.Logf("first run: %d calls (%d strict retries), %d answers reused; rerun: %d cache hits, %d answers reused, %d answers",
				first.Calls, first.StrictRetries, first.AnswersReused, second.CacheHits, second.AnswersReused, len(qs))
		})
	}
}

// lookups counts the cache lookups a client reports to its observer.
type lookups struct {
	nopObserver
	hits, misses atomic.Int64
}

func (l *lookups) CacheLookup(_ string, hit bool) {
	if hit {
		l.hits.Add(1)
	} else {
		l.misses.Add(1)
	}
}

// TestOwnDistributionIsNoCacheHit: a distribution this client fetched is
// stored before every agent waiting on it has taken it from memory; an
// agent that finds it in the store first is served this run's call, not a
// call saved by the cache. The memory is emptied between the two asks to
// take that order every time.
func TestOwnDistributionIsNoCacheHit(t *testing.T) {
	_, model := srvTestServer(t, modelserver.Options{Seed: 3})
	cfg := testConfig(model.URL)
	cfg.Mode, cfg.Cache = ModeDistribution, NewCache(NewMemStore())
	c := newClient(t, cfg)
	qs := questions(t, 0, 1, 1)
	askAll(t, c, qs)
	calls := c.Stats().Calls
	c.memoMu.Lock()
	c.memo = nil
	c.memoMu.Unlock()
	askAll(t, c, qs)
	if st := c.Stats(); calls == 0 || st.Calls != calls || st.CacheHits != 0 {
		t.Errorf("got %d calls, %d cache hits; want %d calls, 0 cache hits (the calls were this run's)", st.Calls, st.CacheHits, calls)
	}
}

// TestKeyHashStable: cache keys are SHA-256 over the length-prefixed
// parts, as stored caches were written (expected values from Python's
// hashlib), whatever the parts' length.
func TestKeyHashStable(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{[]string{"a", "b"}, "facdde7abf1eac5b301273ab2e282f79bab0100f058833a7b8bdf9f80741e149"},
		{[]string{"", "éx"}, "90617689e491b27ea9ec67b131db48db55cc0c0d4c1657eb7c02c2cb6f5c6737"},
		{[]string{strings.Repeat("p", 70000), "7"}, "bccd78b2cc420baf9d0e3f1b23f6275fb56fb72e16c496b75b6fcba454687245"},
	} {
		for range 2 { // the second time with a reused buffer
			if got := keyHash(tc.parts...); got != tc.want {
				t.Errorf("keyHash(%.20q) = %s, want %s", tc.parts, got, tc.want)
			}
		}
	}
}

// A rerun answered wholly from the reply cache describes its answers as
// the run that filled the cache did: as many distributions, the same
// covered mass, the same questions sampled instead (for low coverage and
// for replies without alternatives), so that its results give the same
// query mode and covered mass, and as many answers reused from a reply
// (sampled answers retried strictly among them). It reported none of them, as if every
// answer had been drawn from a distribution of unknown coverage.
func TestCachedRerunDescribesAnswers(t *testing.T) {
	in := pvq(t)
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		if r.dist() {
			f := fnv.New64a()
			f.Write([]byte(r.text()))
			if f.Sum64()%7 == 1 {
				return 200, textsReply(r, "4") // no top_logprobs
			}
		}
		return 200, seededReply(r)
	})
	store := NewMemStore()
	run := func(prefetch bool) ClientStats {
		cfg := testConfig(srv.URL)
		cfg.Mode, cfg.Seed, cfg.Cache = ModeDistribution, ptr(uint64(1)), NewCache(store)
		// Three agents of each persona: a question sampled instead is
		// one request for its three samples, whose second and third
		// answers reuse its reply (and some are retried strictly).
		cfg.Demand, cfg.Samples = func(agent.Persona) int { return 3 }, 3
		c := newClient(t, cfg)
		var qs []*agent.Question
		for _, p := range allPersonas(agent.StyleDescription) {
			for it := range 6 {
				qs = append(qs, &agent.Question{Persona: p, Instrument: in, Item: it})
			}
		}
		if prefetch {
			if err := c.Prefetch(context.Background(), qs); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range qs {
			for s := range 3 { // three agents of each persona
				qq := *q
				qq.Sample = s
				if _, err := c.Ask(context.Background(), &qq); err != nil {
					t.Fatal(err)
				}
			}
		}
		return c.Stats()
	}
	first := run(false)
	if first.Calls == 0 || first.Fallbacks <= first.NoAlternatives || first.NoAlternatives == 0 || first.StrictRetries == 0 {
		t.Fatalf("first run: %d calls, %d fallbacks, %d without alternatives, %d strict retries; want some of each kind of fallback, and strict retries",
			first.Calls, first.Fallbacks, first.NoAlternatives, first.StrictRetries)
	}
	for _, prefetch := range []bool{false, true} {
		again := run(prefetch)
		if again.Calls != 0 {
			t.Errorf("rerun (fetch ahead %v) made %d calls, want 0: the cache holds every reply", prefetch, again.Calls)
		}
		if again.CoverageN != first.CoverageN || math.Abs(again.CoverageSum-first.CoverageSum) > 1e-9 ||
			again.Fallbacks != first.Fallbacks || again.NoAlternatives != first.NoAlternatives || again.AnswersReused != first.AnswersReused {
			t.Errorf("rerun (fetch ahead %v): %d distributions, covered mass sum %.6f, %d fallbacks, %d without alternatives, %d answers reused; "+
				"want the first run's %d, %.6f, %d, %d, %d", prefetch, again.CoverageN, again.CoverageSum, again.Fallbacks, again.NoAlternatives, again.AnswersReused,
				first.CoverageN, first.CoverageSum, first.Fallbacks, first.NoAlternatives, first.AnswersReused)
		}
	}
}
