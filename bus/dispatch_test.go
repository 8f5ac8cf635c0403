package bus

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
)

// TestExhaustedDeliveriesBecomeDeadLetters: a task taken by hosts that
// all died before finishing it (no host could record why) is turned into
// a dead letter by the orchestrator's Queue from the server's advisory,
// and its Deliver fails naming it.
func TestExhaustedDeliveriesBecomeDeadLetters(t *testing.T) {
	ctx := boundedContext(t)
	srv, err := StartServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj := Subjects{Run: "exhausted-1"}
	if err := EnsureTaskQueue(ctx, js, subj, TaskQueueOptions{AckWait: 100 * time.Millisecond, MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureAnswerStream(ctx, js, subj, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	q := &Queue{JS: js, Subjects: subj}
	runCtx, stop := context.WithCancel(ctx)
	dead := make(chan error, 1)
	caughtUp := make(chan struct{})
	go func() {
		dead <- q.Deliver(runCtx, func(*agent.Batch) error { return nil }, func() { close(caughtUp) })
	}()
	select {
	case <-caughtUp:
	case err := <-dead:
		t.Fatalf("deliver: %v", err)
	case <-ctx.Done():
		t.Fatal("test ended before the dispatcher caught up")
	}
	defer func() {
		stop()
		awaitClosed(t, ctx, "the dispatcher to stop", dead)
	}()

	task := TaskMsg{Model: "m", Instrument: "pvq40", Items: []int{0, 1}, Shard: 3}
	if err := PublishTasks(ctx, js, subj, "w1", []TaskMsg{task}, nil); err != nil {
		t.Fatal(err)
	}
	// A "host" takes the task twice and dies each time: it never acks.
	cons, err := js.Consumer(ctx, subj.TaskStream(), TaskConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := cons.Next(jetstream.FetchMaxWait(timeLeft(ctx))); err != nil {
			t.Fatal(err)
		}
	}
	// Other hosts keep asking; the server finds the task's deliveries
	// spent and says so instead of delivering it a third time.
	if m, err := cons.Next(jetstream.FetchMaxWait(time.Second)); err == nil {
		t.Fatalf("the task was delivered a third time: %s", m.Data())
	}
	select {
	case err := <-dead:
		dead <- nil // for the deferred wait
		if err == nil || !strings.Contains(err.Error(), "shard 3") || !strings.Contains(err.Error(), "after 2 deliveries") {
			t.Errorf("got %v, want the run failed naming shard 3's task after 2 deliveries", err)
		}
	case <-ctx.Done():
		t.Fatal("no dead letter after the deliveries ran out")
	}
}
