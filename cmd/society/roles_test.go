package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/bus"
)

// TestExhaustedDeliveriesBecomeDeadLetters: a task taken by hosts that
// all died before finishing it (no host could record why) is turned into
// a dead letter by the orchestrator from the server's advisory, and the
// run fails naming it.
func TestExhaustedDeliveriesBecomeDeadLetters(t *testing.T) {
	ctx := t.Context()
	srv, err := bus.StartServer(bus.ServerOptions{})
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
	subj := bus.Subjects{Run: "exhausted-1"}
	if err := bus.EnsureTaskQueue(ctx, js, subj, bus.TaskQueueOptions{AckWait: 100 * time.Millisecond, MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	o := &orchestrator{log: slog.New(slog.DiscardHandler), nc: nc, js: js, subj: subj, id: subj.Run}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	stopAdvisories, err := o.deliveriesExhausted(runCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); stopAdvisories() }()
	dead := make(chan error, 1)
	go func() { dead <- o.watchDead(runCtx) }()

	task := bus.TaskMsg{Model: "m", Instrument: "pvq40", Items: []int{0, 1}, Shard: 3}
	if err := bus.PublishTasks(ctx, js, subj, "w1", []bus.TaskMsg{task}, nil); err != nil {
		t.Fatal(err)
	}
	// A "host" takes the task twice and dies each time: it never acks.
	cons, err := js.Consumer(ctx, subj.TaskStream(), bus.TaskConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil {
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
		if err == nil || !strings.Contains(err.Error(), "shard 3") || !strings.Contains(err.Error(), "after 2 deliveries") {
			t.Errorf("got %v, want the run failed naming shard 3's task after 2 deliveries", err)
		}
	case <-ctx.Done():
		t.Fatal("no dead letter after the deliveries ran out")
	}
}
