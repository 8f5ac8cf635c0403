package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm/llmtest"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// queueFixture is a run's task queue and answer stream on the embedded
// server, with a population of agents any worker can instantiate.
type queueFixture struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	subj   bus.Subjects
	in     *questionnaires.Instrument
	agents int
	shards int
}

func newQueueFixture(t *testing.T, o bus.TaskQueueOptions) *queueFixture {
	t.Helper()
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartServer(bus.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	f := &queueFixture{t: t, nc: nc, js: js, subj: bus.Subjects{Run: "queue-run"}, in: in, agents: 120, shards: 4}
	ctx := context.Background()
	if _, err := bus.EnsureAnswerStream(ctx, js, f.subj, bus.StreamOptions{MaxBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureTaskQueue(ctx, js, f.subj, o); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *queueFixture) persona(id int) values.Value { return values.Value(id%11 - 1) }

// worker returns a worker whose shards are instantiated on demand with
// model m; the shards' goroutines stop with ctx.
func (f *queueFixture) worker(ctx context.Context, name string, m agent.Model, wg *sync.WaitGroup) *bus.Worker {
	var mu sync.Mutex
	shards := map[int]*agent.Shard{}
	return &bus.Worker{
		JS: f.js, Subjects: f.subj, Host: name, Concurrency: 2,
		Instrument: func(n string) (*questionnaires.Instrument, bool) { return f.in, n == f.in.Name },
		Shard: func(_ context.Context, id int) (*agent.Shard, error) {
			if id >= f.shards {
				return nil, fmt.Errorf("no shard %d", id)
			}
			mu.Lock()
			defer mu.Unlock()
			if sh, ok := shards[id]; ok {
				return sh, nil
			}
			lo, hi := id*f.agents/f.shards, (id+1)*f.agents/f.shards
			var as []agent.Agent
			for a := lo; a < hi; a++ {
				as = append(as, agent.New(a, agent.Persona{Value: f.persona(a)}, 0, 1))
			}
			sh := agent.NewShard(id, lo, as, map[string]agent.Model{"m": m})
			shards[id] = sh
			wg.Add(1)
			go func() { defer wg.Done(); sh.Run(ctx) }()
			return sh, nil
		},
	}
}

func (f *queueFixture) tasks(items []int) []bus.TaskMsg {
	var out []bus.TaskMsg
	for s := range f.shards {
		out = append(out, bus.TaskMsg{Model: "m", Instrument: f.in.Name, Items: items, Shard: s})
	}
	return out
}

// collect follows the answer stream into col; the returned channel
// receives a token after each batch col stores, for waiting on counts.
func (f *queueFixture) collect(ctx context.Context, col *analysis.Collector, wg *sync.WaitGroup) <-chan struct{} {
	stored := make(chan struct{}, 1)
	r := &bus.AnswerReader{JS: f.js, Subjects: f.subj, Sink: func(b *agent.Batch) error {
		err := col.Add(b)
		select {
		case stored <- struct{}{}:
		default:
		}
		return err
	}}
	wg.Add(1)
	go func() { defer wg.Done(); r.Follow(ctx) }()
	return stored
}

// waitUntil waits for cond, checking it after each token of changed; the
// test's own deadline (go test -timeout) bounds the wait.
func waitUntil(t *testing.T, changed <-chan struct{}, cond func() bool) {
	t.Helper()
	ctx := bus.BoundedContext(t)
	for !cond() {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("test ended while waiting")
		}
	}
}

// TestWorkersShareTasks: two workers pull from the shared consumer; every
// task is served once and every answer arrives, from whichever worker took
// the task.
func TestWorkersShareTasks(t *testing.T) {
	// The default ack wait: a worker slowed by a busy machine must not see
	// its task handed to the other, which would count it twice.
	f := newQueueFixture(t, bus.TaskQueueOptions{})
	ctx := bus.BoundedContext(t)
	items := []int{0, 1, 2, 3, 4, 5, 6, 7}
	col := analysis.NewCollector(f.agents, []analysis.Plan{{Model: "m", Instrument: f.in, Items: items}})
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	f.collect(runCtx, col, &wg)
	var served [2]atomic.Int64
	acked := make(chan struct{}, 1)
	for i := range 2 {
		w := f.worker(runCtx, fmt.Sprint("host", i), &llmtest.Model{}, &wg)
		w.Served = func(bus.TaskMsg, int) {
			served[i].Add(1)
			select {
			case acked <- struct{}{}:
			default:
			}
		}
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(runCtx) }()
	}
	// Garbage on a task subject is terminated and counted, never fatal.
	if _, err := f.js.Publish(ctx, f.subj.Tasks(0), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishTasks(ctx, f.js, f.subj, "w1", f.tasks(items), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-col.Done():
	case <-ctx.Done():
		t.Fatal("test ended while waiting for the answers")
	}
	// Answers are stored before their task is acknowledged: wait for the
	// acknowledgements too.
	waitUntil(t, acked, func() bool { return served[0].Load()+served[1].Load() >= int64(f.shards) })
	stop()
	bus.AwaitGroup(t, ctx, "the workers", &wg)
	if got := served[0].Load() + served[1].Load(); got != int64(f.shards) {
		t.Errorf("got %d tasks served, want %d", got, f.shards)
	}
	e, v, i := col.Counts()
	if v != e || i != 0 {
		t.Errorf("got %d valid and %d invalid of %d, want all valid", v, i, e)
	}
	st, err := f.js.Stream(ctx, f.subj.TaskStream())
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("got %d tasks left in the work queue, want 0", n)
	}
}

// TestPublishTasksDeduplicates: the same wave published twice queues each
// task once; a new wave queues it again.
func TestPublishTasksDeduplicates(t *testing.T) {
	f := newQueueFixture(t, bus.TaskQueueOptions{})
	ctx := context.Background()
	tasks := f.tasks([]int{1, 2})
	for range 2 {
		if err := bus.PublishTasks(ctx, f.js, f.subj, "e1-w1", tasks, nil); err != nil {
			t.Fatal(err)
		}
	}
	count := func() uint64 {
		st, err := f.js.Stream(ctx, f.subj.TaskStream())
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.Msgs
	}
	if got := count(); got != uint64(len(tasks)) {
		t.Errorf("got %d queued tasks after publishing a wave twice, want %d", got, len(tasks))
	}
	if err := bus.PublishTasks(ctx, f.js, f.subj, "e1-w2", tasks[:1], nil); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != uint64(len(tasks)+1) {
		t.Errorf("got %d queued tasks after a second wave of one, want %d", got, len(tasks)+1)
	}
	if err := bus.PurgeTasks(ctx, f.js, f.subj); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != 0 {
		t.Errorf("got %d queued tasks after a purge, want 0", got)
	}
}

// TestFailingTaskIsRedeliveredThenDead: a task whose model fails is handed
// back with a delay, delivered again, and after MaxDeliver deliveries
// becomes a dead letter naming it; a task that fails only once succeeds
// on its next delivery.
func TestFailingTaskIsRedeliveredThenDead(t *testing.T) {
	f := newQueueFixture(t, bus.TaskQueueOptions{AckWait: 200 * time.Millisecond, MaxDeliver: 3})
	ctx := bus.BoundedContext(t)
	var failedOnce sync.Map
	var shard3Calls atomic.Int64
	m := &llmtest.Model{Reply: func(q *agent.Question) (agent.Reply, error) {
		// Shard 0's agents (0..29) fail on their first try only; shard 3's
		// (90..119) always fail.
		id := q.Sample
		switch {
		case id >= 90:
			shard3Calls.Add(1)
			return agent.Reply{}, errors.New("endpoint down")
		case id < 30:
			if _, seen := failedOnce.LoadOrStore(id, true); !seen {
				return agent.Reply{}, errors.New("flaky endpoint")
			}
		}
		return agent.Reply{Answer: llmtest.PersonaAnswer(q)}, nil
	}}
	items := []int{0, 1}
	col := analysis.NewCollector(f.agents, []analysis.Plan{{Model: "m", Instrument: f.in, Items: items}})
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	stored := f.collect(runCtx, col, &wg)
	w := f.worker(runCtx, "host-a", m, &wg)
	// Sample carries the agent id, so the model can tell shards apart.
	inner := w.Shard
	w.Shard = func(ctx context.Context, id int) (*agent.Shard, error) {
		sh, err := inner(ctx, id)
		if err == nil {
			for i := range sh.Agents {
				sh.Agents[i].Sample = sh.Agents[i].ID
			}
		}
		return sh, err
	}
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(runCtx) }()
	if err := bus.PublishTasks(ctx, f.js, f.subj, "w1", f.tasks(items), nil); err != nil {
		t.Fatal(err)
	}
	dead := make(chan bus.DeadLetter, 4)
	sub, err := f.nc.Subscribe(f.subj.DeadLetters(), func(msg *nats.Msg) {
		if d, err := bus.DecodeDeadLetter(msg.Data); err == nil {
			dead <- d
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var d bus.DeadLetter
	select {
	case d = <-dead:
	case <-ctx.Done():
		t.Fatal("test ended while waiting for a dead letter")
	}
	// Every shard but 3 completes.
	waitUntil(t, stored, func() bool {
		e, v, i := col.Counts()
		return v+i >= e-int64(len(items)*30)
	})
	stop()
	bus.AwaitGroup(t, ctx, "the workers", &wg)
	if d.Task.Shard != 3 || d.Deliveries != 3 || d.Host != "host-a" || d.Reason == "" {
		t.Errorf("got dead letter %+v, want shard 3 after 3 deliveries on host-a with a reason", d)
	}
	if got := d.String(); got == "" {
		t.Error("dead letter names nothing")
	}
	e, v, i := col.Counts()
	if want := e - int64(len(items)*30); v != want || i != 0 {
		t.Errorf("got %d valid and %d invalid, want %d valid (every shard but the dead one)", v, i, want)
	}
	// Each delivery of shard 3 asks each of its 30 agents once before
	// failing (the first failure ends an agent's task).
	if got := shard3Calls.Load(); got != 3*30 {
		t.Errorf("got %d model calls for the dead shard, want %d (3 deliveries of 30 agents)", got, 3*30)
	}
}

// permanentErr is a model failure that no retry can mend, as the model
// client reports a rejected key.
type permanentErr struct{}

func (permanentErr) Error() string          { return "status 401: Incorrect API key provided" }
func (permanentErr) PermanentFailure() bool { return true }

// TestPermanentModelFailureIsDeadAtOnce checks that a task whose model
// refused it for good becomes a dead letter on its first delivery, with
// the model's message, instead of being delivered again.
func TestPermanentModelFailureIsDeadAtOnce(t *testing.T) {
	f := newQueueFixture(t, bus.TaskQueueOptions{AckWait: 200 * time.Millisecond, MaxDeliver: 5})
	ctx := bus.BoundedContext(t)
	var calls atomic.Int64
	m := &llmtest.Model{Reply: func(q *agent.Question) (agent.Reply, error) {
		calls.Add(1)
		return agent.Reply{}, fmt.Errorf("llm m: pvq40 item 1: %w", permanentErr{})
	}}
	items := []int{0}
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); bus.AwaitGroup(t, ctx, "the workers", &wg) }()
	w := f.worker(runCtx, "host-a", m, &wg)
	dead := make(chan bus.DeadLetter, 8)
	sub, err := f.nc.Subscribe(f.subj.DeadLetters(), func(msg *nats.Msg) {
		if d, err := bus.DecodeDeadLetter(msg.Data); err == nil {
			dead <- d
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(runCtx) }()
	if err := bus.PublishTasks(ctx, f.js, f.subj, "w1", f.tasks(items)[:1], nil); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-dead:
		if d.Deliveries != 1 || !strings.Contains(d.Reason, "Incorrect API key provided") {
			t.Errorf("got dead letter %+v, want one after 1 delivery with the model's message", d)
		}
	case <-ctx.Done():
		t.Fatal("test ended while waiting for a dead letter")
	}
}

func TestTaskQueueOptionsBackoff(t *testing.T) {
	cases := []struct {
		o    bus.TaskQueueOptions
		want []time.Duration
	}{
		{bus.TaskQueueOptions{}, []time.Duration{30 * time.Second, 60 * time.Second, 120 * time.Second, 240 * time.Second}},
		{bus.TaskQueueOptions{AckWait: time.Second, MaxDeliver: 3}, []time.Duration{time.Second, 2 * time.Second}},
		{bus.TaskQueueOptions{AckWait: time.Second, MaxDeliver: 1}, []time.Duration{time.Second}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.o), func(t *testing.T) {
			if got := c.o.Backoff(); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestDeadLetterRoundTrip(t *testing.T) {
	d := bus.DeadLetter{Task: bus.TaskMsg{V: 1, Model: "m", Instrument: "pvq40", Items: []int{3}, Shard: 2}, Deliveries: 5, Reason: "endpoint down", Host: "h"}
	got, err := bus.DecodeDeadLetter(bus.EncodeDeadLetter(d))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Task, d.Task) || got.Reason != d.Reason || got.Deliveries != 5 || got.Host != "h" {
		t.Errorf("got %+v, want %+v", got, d)
	}
	for _, bad := range []string{``, `{}`, `{"v":2}`, `{"v":1,"task":{"v":1}}`, `{"v":1,"task":{"v":1,"model":"m","instrument":"i","items":[-1]}}`} {
		if _, err := bus.DecodeDeadLetter([]byte(bad)); !errors.Is(err, bus.ErrBadMessage) {
			t.Errorf("%s: got %v, want ErrBadMessage", bad, err)
		}
	}
}

func FuzzDecodeTask(f *testing.F) {
	f.Add(bus.EncodeTask(bus.TaskMsg{Model: "m", Instrument: "pvq40", Items: []int{0, 1}, Shard: 3}))
	f.Add([]byte(`{"v":1,"model":"m","instrument":"i","items":[99999999999],"shard":1}`))
	f.Add([]byte(`{"v":1,"model":"m","instrument":"i","items":[1],"shard":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := bus.DecodeTask(data)
		if err != nil {
			if !errors.Is(err, bus.ErrBadMessage) {
				t.Fatalf("got %v, want an ErrBadMessage", err)
			}
			return
		}
		again, err := bus.DecodeTask(bus.EncodeTask(task))
		if err != nil || !reflect.DeepEqual(again.Items, task.Items) || again.Shard != task.Shard || again.Model != task.Model {
			t.Fatalf("re-encoding a decoded task changed it: %v", err)
		}
	})
}

func FuzzDecodeDeadLetter(f *testing.F) {
	f.Add(bus.EncodeDeadLetter(bus.DeadLetter{Task: bus.TaskMsg{V: 1, Model: "m", Instrument: "i", Items: []int{1}}, Reason: "x"}))
	f.Add([]byte(`{"v":1,"task":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := bus.DecodeDeadLetter(data)
		if err != nil {
			if !errors.Is(err, bus.ErrBadMessage) {
				t.Fatalf("got %v, want an ErrBadMessage", err)
			}
			return
		}
		if _, err := bus.DecodeDeadLetter(bus.EncodeDeadLetter(d)); err != nil {
			t.Fatalf("re-encoding a decoded dead letter: %v", err)
		}
	})
}

// TestSlowTaskKeepsItsDelivery: a task that takes longer than an ack wait
// is not delivered to another worker while its worker sends heartbeats.
// The task is held until the server has received five heartbeats, which
// the worker sends a quarter of an ack wait apart at the soonest: longer
// than an ack wait, whatever the machine's speed. The ack wait is long
// enough that a busy machine does not delay a heartbeat past it.
func TestSlowTaskKeepsItsDelivery(t *testing.T) {
	const ackWait = 2 * time.Second
	f := newQueueFixture(t, bus.TaskQueueOptions{AckWait: ackWait, MaxDeliver: 2})
	f.shards = 1
	ctx := bus.BoundedContext(t)

	// Heartbeats travel as "+WPI" acknowledgements on the consumer's ack
	// subjects; a plain subscription sees them.
	held, redelivered := make(chan struct{}), make(chan struct{})
	var beats atomic.Int64
	sub, err := f.nc.Subscribe("$JS.ACK."+f.subj.TaskStream()+".>", func(m *nats.Msg) {
		if string(m.Data) == "+WPI" && beats.Add(1) == 5 {
			close(held)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	var calls atomic.Int64
	slow := &llmtest.Model{Reply: func(q *agent.Question) (agent.Reply, error) {
		if calls.Add(1) == 1 {
			// Without heartbeats the task goes to the other worker; the
			// hold ends then too, so that the test fails rather than hangs.
			select {
			case <-held:
			case <-redelivered:
			case <-ctx.Done():
				return agent.Reply{}, ctx.Err()
			}
		}
		return agent.Reply{Answer: llmtest.PersonaAnswer(q)}, nil
	}}
	items := []int{0}
	col := analysis.NewCollector(f.agents, []analysis.Plan{{Model: "m", Instrument: f.in, Items: items}})
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); bus.AwaitGroup(t, ctx, "the workers", &wg) }()
	f.collect(runCtx, col, &wg)
	served := make(chan struct{}, 2)
	var taken atomic.Int64
	for i := range 2 {
		w := f.worker(runCtx, fmt.Sprint("host", i), slow, &wg)
		w.Served = func(bus.TaskMsg, int) { served <- struct{}{} }
		inner := w.Shard
		w.Shard = func(ctx context.Context, id int) (*agent.Shard, error) {
			if taken.Add(1) == 2 { // once per delivery
				close(redelivered)
			}
			return inner(ctx, id)
		}
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(runCtx) }()
	}
	if err := bus.PublishTasks(ctx, f.js, f.subj, "w1", f.tasks(items), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-served:
	case <-ctx.Done():
		t.Fatal("test ended before the slow task was served")
	}
	// The server counts every delivery of the consumer: a redelivery
	// during the hold would show here, once the task is acknowledged.
	cons, err := f.js.Consumer(ctx, f.subj.TaskStream(), bus.TaskConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Delivered.Consumer; got != 1 {
		t.Errorf("got the slow task delivered %d times, want once (heartbeats keep it)", got)
	}
	if got := taken.Load(); got != 1 {
		t.Errorf("got the slow task taken by a worker %d times, want once", got)
	}
	if got := beats.Load(); got < 5 {
		t.Errorf("got %d heartbeats, want at least 5", got)
	}
}

// TestStoppedWorkerHandsTaskBack: a worker stopped in the middle of a task
// hands it back at once (a NAK without delay), and another worker serves
// it. The ack wait is longer than any test, so only the hand-back can
// bring the task to the second worker.
func TestStoppedWorkerHandsTaskBack(t *testing.T) {
	f := newQueueFixture(t, bus.TaskQueueOptions{AckWait: time.Hour})
	f.shards = 1
	ctx := bus.BoundedContext(t)
	started := make(chan struct{})
	var once sync.Once
	blockingCtx := func(ctx context.Context) *llmtest.Model {
		return &llmtest.Model{Reply: func(q *agent.Question) (agent.Reply, error) {
			once.Do(func() { close(started) })
			<-ctx.Done()
			return agent.Reply{}, ctx.Err()
		}}
	}
	// The acknowledgements the workers send, as the server receives them.
	acks := make(chan *nats.Msg, 64)
	sub, err := f.nc.ChanSubscribe("$JS.ACK."+f.subj.TaskStream()+".>", acks)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	items := []int{0, 1}
	col := analysis.NewCollector(f.agents, []analysis.Plan{{Model: "m", Instrument: f.in, Items: items}})
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer func() { stop(); bus.AwaitGroup(t, ctx, "the workers", &wg) }()
	f.collect(runCtx, col, &wg)

	firstCtx, stopFirst := context.WithCancel(runCtx)
	first := f.worker(firstCtx, "first", blockingCtx(firstCtx), &wg)
	firstDone := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); defer close(firstDone); first.Run(firstCtx) }()
	if err := bus.PublishTasks(ctx, f.js, f.subj, "w1", f.tasks(items), nil); err != nil {
		t.Fatal(err)
	}
	bus.AwaitClosed(t, ctx, "the first worker to take the task", started)
	stopFirst()
	bus.AwaitClosed(t, ctx, "the first worker to stop", firstDone)
	// The worker and the subscription share the connection: once a round
	// trip to the server is done, what the worker sent is in acks.
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var handedBack bool
	for len(acks) > 0 {
		m := <-acks
		// A plain NAK would wait out the consumer's backoff (the hour);
		// handing back at once takes an explicit short delay.
		var nak struct {
			Delay time.Duration `json:"delay"`
		}
		if data, ok := strings.CutPrefix(string(m.Data), "-NAK "); ok && json.Unmarshal([]byte(data), &nak) == nil && nak.Delay < time.Second {
			handedBack = true
		}
	}
	if !handedBack {
		t.Fatal("the stopped worker did not hand its task back (no NAK with a short delay)")
	}
	second := f.worker(runCtx, "second", &llmtest.Model{}, &wg)
	wg.Add(1)
	go func() { defer wg.Done(); second.Run(runCtx) }()
	select {
	case <-col.Done():
	case <-ctx.Done():
		t.Fatal("the task handed back was never served")
	}
}
