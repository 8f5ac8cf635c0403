package bus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
)

func embedded(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := StartServer(ServerOptions{})
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
	return nc, js
}

// TestPublishAnswersOutlastsASilentStream: answers published while no
// stream answers them (a server restarting, or too busy to answer) are
// published again, for as long as it takes, and stored once the stream
// answers; they used to fail the run after five attempts.
func TestPublishAnswersOutlastsASilentStream(t *testing.T) {
	_, js := embedded(t)
	ctx := boundedContext(t)
	subj := Subjects{Run: "silent"}
	// The stream appears only after more attempts than the old limit
	// allowed. Until then nothing answers on the subject, and the server
	// says so at once (no responders).
	const attempts = 6
	ready := make(chan struct{})
	counted := &countingJS{JetStream: js, at: attempts, reached: ready}
	batches := []agent.Batch{{Model: "m", Instrument: "pvq40", Item: 3, Shard: 1, First: 10, Codes: []uint8{1, 2, 3}}}
	done := make(chan error, 1)
	go func() { done <- publishBatches(ctx, counted, subj, batches, nil) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("publish gave up while the stream was silent: %v", err)
	case <-ctx.Done():
		t.Fatalf("test ended before %d attempts to publish", attempts)
	}
	st, err := EnsureAnswerStream(ctx, js, subj, StreamOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := awaitClosed(t, ctx, "the answers to be published", done); err != nil {
		t.Fatalf("got %v, want the answers stored once the stream answers", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Msgs; got != 1 {
		t.Errorf("got %d messages in the stream, want 1 (repeats de-duplicated)", got)
	}
}

// countingJS closes reached when the at-th message is published.
type countingJS struct {
	jetstream.JetStream
	n       atomic.Int64
	at      int64
	reached chan struct{}
}

func (c *countingJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if c.n.Add(1) == c.at {
		close(c.reached)
	}
	return c.JetStream.PublishMsgAsync(m, opts...)
}

// TestPublishAnswersRefusedFails: a stream that refuses (full) fails the
// publish at once instead of being tried forever.
func TestPublishAnswersRefusedFails(t *testing.T) {
	_, js := embedded(t)
	ctx := boundedContext(t)
	subj := Subjects{Run: "full"}
	if _, err := EnsureAnswerStream(ctx, js, subj, StreamOptions{MaxBytes: 1024}); err != nil {
		t.Fatal(err)
	}
	batches := []agent.Batch{{Model: "m", Instrument: "pvq40", Shard: 0, Codes: make([]uint8, 4096)}}
	err := publishBatches(ctx, js, subj, batches, nil)
	if err == nil || transient(err) {
		t.Fatalf("got %v, want the stream's refusal", err)
	}
}

// lateJS answers the first calls to create a consumer or a stream the way
// the client does when a busy server answers after its request timeout.
type lateJS struct {
	jetstream.JetStream
	late  atomic.Int64
	calls sync.Map // method -> *atomic.Int64
}

func (l *lateJS) tooLate(method string) bool {
	n, _ := l.calls.LoadOrStore(method, new(atomic.Int64))
	return n.(*atomic.Int64).Add(1) <= l.late.Load()
}

func (l *lateJS) OrderedConsumer(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	if l.tooLate("OrderedConsumer") {
		return nil, context.DeadlineExceeded
	}
	return l.JetStream.OrderedConsumer(ctx, stream, cfg)
}

func (l *lateJS) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if l.tooLate("CreateOrUpdateStream") {
		return nil, nats.ErrTimeout
	}
	return l.JetStream.CreateOrUpdateStream(ctx, cfg)
}

func (l *lateJS) CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if l.tooLate("CreateOrUpdateConsumer") {
		return nil, context.DeadlineExceeded
	}
	return l.JetStream.CreateOrUpdateConsumer(ctx, stream, cfg)
}

// TestLateAnswersAreTriedAgain: a stream or consumer whose creation the
// client timed out (the server answered late) is asked for again; the run
// used to fail with "answer consumer: context deadline exceeded".
func TestLateAnswersAreTriedAgain(t *testing.T) {
	_, js := embedded(t)
	l := &lateJS{JetStream: js}
	l.late.Store(2)
	ctx := boundedContext(t)
	subj := Subjects{Run: "late"}
	if _, err := EnsureAnswerStream(ctx, l, subj, StreamOptions{MaxBytes: 1 << 20}); err != nil {
		t.Fatalf("answer stream: got %v, want it created after late answers", err)
	}
	if err := EnsureTaskQueue(ctx, l, subj, TaskQueueOptions{}); err != nil {
		t.Fatalf("task queue: got %v, want it created after late answers", err)
	}
	if err := PublishTasks(ctx, js, subj, "w", []TaskMsg{{Model: "m", Instrument: "pvq40", Items: []int{0}, Shard: 0}}, nil); err != nil {
		t.Fatal(err)
	}
	batch := agent.Batch{Model: "m", Instrument: "pvq40", Item: 0, Shard: 0, First: 0, Codes: []uint8{4}}
	if err := publishBatches(ctx, js, subj, []agent.Batch{batch}, nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan *agent.Batch, 1)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		errc <- ConsumeAnswers(cctx, l, subj, func(b *agent.Batch) error { got <- b; return nil }, nil)
	}()
	select {
	case b := <-got:
		if b.Item != 0 || len(b.Codes) != 1 || b.Codes[0] != 4 {
			t.Errorf("got batch %+v, want the one published", b)
		}
	case err := <-errc:
		t.Fatalf("consume answers: got %v, want the batch after late answers", err)
	case <-ctx.Done():
		t.Fatal("test ended before the batch was consumed")
	}
	stop()
	if err := awaitClosed(t, ctx, "the answer consumer to stop", errc); err != nil {
		t.Errorf("consume answers after stop: got %v, want nil", err)
	}
}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.DeadlineExceeded, true},
		{nats.ErrTimeout, true},
		{nats.ErrDisconnected, true},
		{jetstream.ErrNoStreamResponse, true},
		{nats.ErrConnectionClosed, false},
		{nats.ErrNoResponders, false},
		{jetstream.ErrJetStreamNotEnabled, false},
		{jetstream.ErrJetStreamNotEnabledForAccount, false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10077}, false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10052}, false},
		{errors.New("maximum payload exceeded"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v): got %v, want %v", c.err, got, c.want)
		}
	}
}
