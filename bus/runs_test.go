package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/questionnaires"
)

func goodRecord() bus.RunRecord {
	return bus.RunRecord{ID: "study-42", Scenario: "name = \"study\"\nseed = 42\n", Shards: 8, Epoch: 1, State: bus.RunRunning}
}

func TestRunRecordDecode(t *testing.T) {
	good := goodRecord()
	got, err := bus.DecodeRunRecord(bus.EncodeRunRecord(good))
	if err != nil {
		t.Fatal(err)
	}
	good.V = got.V
	if got.ID != good.ID || got.Scenario != good.Scenario || got.Shards != 8 || got.Epoch != 1 || got.State != bus.RunRunning {
		t.Errorf("got %+v, want %+v", got, good)
	}
	mutate := func(f func(r *bus.RunRecord)) []byte {
		r := goodRecord()
		f(&r)
		return bus.EncodeRunRecord(r)
	}
	cases := map[string][]byte{
		"empty":         nil,
		"not json":      []byte("garbage"),
		"new version":   []byte(`{"v":2,"id":"a","scenario":"x","shards":1,"epoch":1,"state":"running"}`),
		"no id":         mutate(func(r *bus.RunRecord) { r.ID = "" }),
		"id not token":  mutate(func(r *bus.RunRecord) { r.ID = "a.b>c" }),
		"no scenario":   mutate(func(r *bus.RunRecord) { r.Scenario = "" }),
		"no shards":     mutate(func(r *bus.RunRecord) { r.Shards = 0 }),
		"huge shards":   mutate(func(r *bus.RunRecord) { r.Shards = 1 << 30 }),
		"epoch 0":       mutate(func(r *bus.RunRecord) { r.Epoch = 0 }),
		"unknown state": mutate(func(r *bus.RunRecord) { r.State = "paused" }),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := bus.DecodeRunRecord(data); !errors.Is(err, bus.ErrBadMessage) {
				t.Errorf("got %v, want ErrBadMessage", err)
			}
		})
	}
}

func FuzzDecodeRunRecord(f *testing.F) {
	f.Add(bus.EncodeRunRecord(goodRecord()))
	f.Add([]byte(`{"v":1,"id":"x","scenario":"s","shards":1,"epoch":1,"state":"done","results":{"a":1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := bus.DecodeRunRecord(data)
		if err != nil {
			if !errors.Is(err, bus.ErrBadMessage) {
				t.Fatalf("got %v, want an ErrBadMessage", err)
			}
			return
		}
		again, err := bus.DecodeRunRecord(bus.EncodeRunRecord(r))
		if err != nil || again.ID != r.ID || again.Scenario != r.Scenario || again.State != r.State {
			t.Fatalf("re-encoding a decoded record changed it: %v", err)
		}
	})
}

func FuzzDecodeProgress(f *testing.F) {
	f.Add(bus.EncodeProgress(bus.Progress{Run: "r", Expected: 10, Valid: 5, Invalid: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := bus.DecodeProgress(data)
		if err != nil {
			if !errors.Is(err, bus.ErrBadMessage) {
				t.Fatalf("got %v, want an ErrBadMessage", err)
			}
			return
		}
		if p.Valid+p.Invalid > p.Expected {
			t.Fatalf("accepted counts that do not add up: %+v", p)
		}
	})
}

func TestRegistry(t *testing.T) {
	ctx := bus.BoundedContext(t)
	js := newJetStream(t, bus.ServerOptions{})
	reg, err := bus.OpenRegistry(ctx, js, bus.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Opening it again binds to the same bucket.
	reg2, err := bus.OpenRegistry(ctx, js, bus.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}

	seen := make(chan bus.RunRecord, 16)
	var bad atomic.Int64
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		reg2.Watch(wctx, func(r bus.RunRecord) { seen <- r }, func(error) { bad.Add(1) })
	}()

	rec := goodRecord()
	rev, err := reg.Create(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	// The watch starts with the runs already registered.
	var states []bus.RunState
	select {
	case r := <-seen:
		states = append(states, r.State)
	case <-ctx.Done():
		t.Fatal("the watch never reported the registered run")
	}
	if _, err := reg.Create(ctx, rec); err == nil {
		t.Error("created the same run twice, want an error")
	}
	got, gotRev, ok, err := reg2.Get(ctx, rec.ID)
	if err != nil || !ok || gotRev != rev || got.Scenario != rec.Scenario {
		t.Fatalf("Get: got %+v rev %d ok %v err %v, want the record at rev %d", got, gotRev, ok, err, rev)
	}
	if _, _, ok, err := reg.Get(ctx, "nope"); ok || err != nil {
		t.Errorf("Get of a missing run: got ok %v err %v, want false, nil", ok, err)
	}

	// Compare and set: an update at an old revision loses.
	rec.State = bus.RunComplete
	if _, err := reg.Update(ctx, rec, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Update(ctx, rec, rev); !errors.Is(err, bus.ErrRunChanged) {
		t.Errorf("update at a stale revision: got %v, want ErrRunChanged", err)
	}
	done, err := reg.Modify(ctx, rec.ID, func(r *bus.RunRecord) error {
		r.State, r.Dir = bus.RunDone, "/results/study-42"
		r.Results = json.RawMessage(`{"scenario":"study"}`)
		return nil
	})
	if err != nil || done.State != bus.RunDone {
		t.Fatalf("Modify: got %+v, %v", done, err)
	}

	// A record of another version in the bucket is rejected, not fatal.
	kv, err := js.KeyValue(ctx, bus.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "future-run", []byte(`{"v":9}`)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}

	// Until the deletion: the bucket keeps one revision per run, so a
	// state replaced before the watch delivered it is not delivered
	// (under load the watch saw running, complete and the deletion, and
	// waited for done until the test timed out). The states seen are
	// those of the run's record in order, from running to its deletion.
	for len(states) == 0 || states[len(states)-1] != "" {
		select {
		case r := <-seen:
			states = append(states, r.State)
		case <-ctx.Done():
			t.Fatalf("got states %q from the watch, want running, then complete and done or not, then the deletion", states)
		}
	}
	stopWatch()
	bus.AwaitGroup(t, ctx, "the watch", &wg)
	order := []bus.RunState{bus.RunRunning, bus.RunComplete, bus.RunDone, ""}
	if states[0] != bus.RunRunning || !inOrder(states, order) {
		t.Errorf("watch: got states %q, want them in the order %q, from running to the deletion", states, order)
	}
	if bad.Load() != 1 {
		t.Errorf("got %d unreadable records reported, want 1", bad.Load())
	}
}

// TestConsumeRebuildsAfterRestart: an analysis that stops and starts
// again with the same durable name rebuilds every answer from the stream,
// counting nothing twice, and garbage on an answer subject is rejected.
func TestConsumeRebuildsAfterRestart(t *testing.T) {
	ctx := bus.BoundedContext(t)
	js := newJetStream(t, bus.ServerOptions{})
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	subj := bus.Subjects{Run: "replay"}
	if _, err := bus.EnsureAnswerStream(ctx, js, subj, bus.StreamOptions{MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	const agents, shards = 40, 4
	plans := []analysis.Plan{{Model: "m", Instrument: in, Items: []int{0, 1, 2}}}
	publish := func(item, shard int) {
		b := &agent.Batch{Model: "m", Instrument: in.Name, Item: item, Shard: shard, First: shard * 10, Codes: []uint8{1, 2, 3, 4, 5, 6, 1, 2, 3, 4}}
		if _, err := js.Publish(ctx, subj.Answers(shard), bus.AppendBatch(nil, b), jetstream.WithMsgID(bus.MsgID(subj.Run, b))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, subj.Answers(0), []byte("not a batch")); err != nil {
		t.Fatal(err)
	}
	// An answer batch for a model the run does not have is rejected too.
	alien := &agent.Batch{Model: "other", Instrument: in.Name, Codes: []uint8{1}}
	if _, err := js.Publish(ctx, subj.Answers(0), bus.AppendBatch(nil, alien)); err != nil {
		t.Fatal(err)
	}
	for s := range shards {
		publish(0, s)
		publish(1, s)
	}

	consume := func(col *analysis.Collector, want int64) int64 {
		var bad atomic.Int64
		caught := make(chan struct{})
		stored := make(chan struct{}, 1)
		sink := func(b *agent.Batch) error {
			err := col.Add(b)
			select {
			case stored <- struct{}{}:
			default:
			}
			return err
		}
		r := &bus.AnswerReader{JS: js, Subjects: subj, Sink: sink, Bad: func(error) { bad.Add(1) },
			CaughtUp: func() { close(caught) }}
		cctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Consume(cctx, "analysis_test") }()
		select {
		case <-caught:
		case <-ctx.Done():
			t.Fatal("never caught up")
		}
		waitUntil(t, stored, func() bool {
			_, v, _ := col.Counts()
			return v >= want
		})
		stop()
		if err := bus.AwaitClosed(t, ctx, "the answer reader to stop", done); err != nil {
			t.Fatal(err)
		}
		return bad.Load()
	}
	first := analysis.NewCollector(agents, plans)
	if bad := consume(first, 80); bad != 2 {
		t.Errorf("got %d rejected messages, want 2", bad)
	}
	// More answers arrive (one of them twice) while the analysis is down.
	for s := range shards {
		publish(2, s)
	}
	publish(2, 0)
	second := analysis.NewCollector(agents, plans)
	consume(second, 120)
	e, v, i := second.Counts()
	if e != 120 || v != 120 || i != 0 {
		t.Errorf("after a restart: got expected %d valid %d invalid %d, want 120 valid of 120", e, v, i)
	}
	select {
	case <-second.Done():
	default:
		t.Error("the rebuilt collector is not complete")
	}
}

func TestHostStats(t *testing.T) {
	ctx := bus.BoundedContext(t)
	js := newJetStream(t, bus.ServerOptions{})
	reg, err := bus.OpenRegistry(ctx, js, bus.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, goodRecord()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []bus.HostStats{{Host: "a", LLMCounts: analysis.LLMCounts{Calls: 3, CacheHits: 1}}, {Host: "b.c", LLMCounts: analysis.LLMCounts{Calls: 4, Retries: 2}},
		{Host: "a", LLMCounts: analysis.LLMCounts{Calls: 5, CacheHits: 1, AnswersReused: 7}}} {
		if err := reg.PutHostStats(ctx, "study-42", s); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.PutHostStats(ctx, "other-1", bus.HostStats{Host: "a", LLMCounts: analysis.LLMCounts{Calls: 100}}); err != nil {
		t.Fatal(err)
	}
	got, err := reg.HostStats(ctx, "study-42", nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls, hits, reused, retries int64
	for _, s := range got {
		calls, hits, reused, retries = calls+s.Calls, hits+s.CacheHits, reused+s.AnswersReused, retries+s.Retries
	}
	if len(got) != 2 || calls != 9 || hits != 1 || reused != 7 || retries != 2 {
		t.Errorf("got %+v, want two hosts with 9 calls, 1 cache hit, 7 answers reused and 2 retries in all", got)
	}
	// The statistics are no runs: a watch does not report them. A run
	// registered after them marks the end: the watch reports in the
	// bucket's order, so whatever it reports of the statistics comes
	// before that run.
	later := goodRecord()
	later.ID = "study-43"
	if _, err := reg.Create(ctx, later); err != nil {
		t.Fatal(err)
	}
	var seen []string
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	reg.Watch(wctx, func(r bus.RunRecord) {
		seen = append(seen, r.ID)
		if r.ID == later.ID {
			stop()
		}
	}, func(err error) { t.Errorf("watch: %v", err) })
	if want := []string{"study-42", "study-43"}; !slices.Equal(seen, want) {
		t.Errorf("got records %q from the watch, want %q (the runs only)", seen, want)
	}
	if err := reg.ClearHostStats(ctx, "study-42"); err != nil {
		t.Fatal(err)
	}
	if got, _ := reg.HostStats(ctx, "study-42", nil); len(got) != 0 {
		t.Errorf("after clearing: got %+v, want none", got)
	}
	if got, _ := reg.HostStats(ctx, "other-1", nil); len(got) != 1 {
		t.Errorf("clearing one run cleared another's: got %+v", got)
	}
}

// inOrder reports whether seen is a subsequence of order: each state
// once, in order.
func inOrder(seen, order []bus.RunState) bool {
	k := 0
	for _, st := range seen {
		for k < len(order) && order[k] != st {
			k++
		}
		if k == len(order) {
			return false
		}
		k++
	}
	return true
}
