package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Task delivery between processes. The orchestrator publishes each shard's
// tasks to a work-queue stream; every agent host pulls from one shared
// durable consumer, so a task goes to whichever host is free, a host that
// joins late simply starts pulling, and the task of a host that dies is
// delivered again to another once its ack wait runs out. A host working on
// a slow task tells the server so (in-progress heartbeats), so that only a
// silent host loses its task. A task that fails on every delivery ends as a
// dead letter, and the run fails naming it.

// TaskConsumer is the durable consumer that all agent hosts share.
const TaskConsumer = "hosts"

// TaskStream is the work-queue stream holding the run's tasks.
func (s Subjects) TaskStream() string { return "SOCIETY_TASKS_" + streamToken(s.Run) }

// DeadLetters is the subject of the run's dead-letter records.
func (s Subjects) DeadLetters() string { return s.prefix() + ".dead" }

// DeadStream is the stream keeping the run's dead-letter records.
func (s Subjects) DeadStream() string { return "SOCIETY_DEAD_" + streamToken(s.Run) }

func streamToken(run string) string { return strings.ReplaceAll(token(run), "-", "_") }

// TaskQueueOptions configure task delivery.
type TaskQueueOptions struct {
	// AckWait is how long a host may stay silent on a task before the task
	// is delivered to another host (hosts send heartbeats at a quarter of
	// it). Later redeliveries wait twice as long each time. 0 means 30s.
	AckWait time.Duration
	// MaxDeliver is how many times a task is delivered before it becomes a
	// dead letter. 0 means 5.
	MaxDeliver int
	// File keeps tasks on disk, so that they survive a server restart.
	File bool
	// Replicas is the streams' replication in a cluster; 0 means 1.
	Replicas int
	// MaxBytes bounds the task stream; 0 means 64 MiB, far more than the
	// tasks of any run (one small JSON message per shard and phase).
	MaxBytes int64
}

func (o *TaskQueueOptions) defaults() {
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	o.Replicas = max(o.Replicas, 1)
}

// Backoff is the wait before each redelivery: AckWait, then doubling.
// It has MaxDeliver−1 entries, at most, since the server takes no more.
func (o TaskQueueOptions) Backoff() []time.Duration {
	o.defaults()
	n := max(o.MaxDeliver-1, 1)
	out := make([]time.Duration, n)
	d := o.AckWait
	for i := range out {
		out[i] = d
		d *= 2
	}
	return out
}

// EnsureTaskQueue creates (or updates) the run's task stream, the hosts'
// shared consumer and the dead-letter stream.
func EnsureTaskQueue(ctx context.Context, js jetstream.JetStream, s Subjects, o TaskQueueOptions) error {
	o.defaults()
	storage := jetstream.MemoryStorage
	if o.File {
		storage = jetstream.FileStorage
	}
	if err := retry(ctx, nil, "task stream", func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        s.TaskStream(),
			Description: "society tasks of run " + s.Run,
			Subjects:    []string{s.AllTasks()},
			Retention:   jetstream.WorkQueuePolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    o.MaxBytes,
			Storage:     storage,
			Replicas:    o.Replicas,
			// The orchestrator re-publishes a task whose ack it did not get
			// with the same id; an hour covers any outage it rides out.
			Duplicates: time.Hour,
		})
		return err
	}); err != nil {
		return fmt.Errorf("task stream %s: %w", s.TaskStream(), err)
	}
	if err := retry(ctx, nil, "task consumer", func(ctx context.Context) error {
		_, err := js.CreateOrUpdateConsumer(ctx, s.TaskStream(), jetstream.ConsumerConfig{
			Durable:       TaskConsumer,
			Description:   "agent hosts of run " + s.Run,
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			FilterSubject: s.AllTasks(),
			// The server takes the first backoff as the ack wait.
			AckWait:    o.Backoff()[0],
			BackOff:    o.Backoff(),
			MaxDeliver: o.MaxDeliver,
			// Every task may be in flight at once: there are only as many as
			// shards, and a host takes one only when it has room.
			MaxAckPending: -1,
			Replicas:      o.Replicas,
		})
		return err
	}); err != nil {
		return fmt.Errorf("task consumer %s: %w", s.TaskStream(), err)
	}
	if err := retry(ctx, nil, "dead-letter stream", func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        s.DeadStream(),
			Description: "society dead-letter tasks of run " + s.Run,
			Subjects:    []string{s.DeadLetters()},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    16 << 20,
			Storage:     storage,
			Replicas:    o.Replicas,
			Duplicates:  time.Hour,
		})
		return err
	}); err != nil {
		return fmt.Errorf("dead-letter stream %s: %w", s.DeadStream(), err)
	}
	return nil
}

// PurgeTasks drops every queued task, dead letter and fetch claim of the
// run, so that a resumed run starts its task delivery afresh (and counts
// the replies its first start fetched as calls saved, as a rerun does);
// stored answers are kept.
func PurgeTasks(ctx context.Context, js jetstream.JetStream, s Subjects) error {
	for _, name := range []string{s.TaskStream(), s.DeadStream(), s.flightsStream()} {
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("purge %s: %w", name, err)
		}
		if err := st.Purge(ctx); err != nil {
			return fmt.Errorf("purge %s: %w", name, err)
		}
	}
	return nil
}

// DeleteRunStreams removes everything a run keeps in JetStream: answers,
// tasks, dead letters and fetch claims.
func DeleteRunStreams(ctx context.Context, js jetstream.JetStream, s Subjects) error {
	for _, name := range []string{s.Stream(), s.TaskStream(), s.DeadStream(), s.flightsStream()} {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	return nil
}

// TaskMsgID is a task's de-duplication id within one wave of publishing:
// re-publishing after a lost ack collapses into one queued task, while a
// later wave (a resumed run, work handed out again) is new.
func TaskMsgID(run, wave string, t TaskMsg) string {
	h := fnv.New64a()
	for _, it := range t.Items {
		fmt.Fprintf(h, "%d,", it)
	}
	return fmt.Sprintf("%s.%s.%s.%s.%d.%d.%x", run, wave, t.Model, t.Instrument, t.Round, t.Shard, h.Sum64())
}

// PublishTasks queues tasks and waits until the stream has stored every one.
// A publish that fails for a transient reason (a timeout, a server that is
// restarting or too busy to answer) or stays unanswered while nothing is
// acknowledged is tried again with the same id until ctx is done; a stream
// that refuses a task (full, say) fails at once.
func PublishTasks(ctx context.Context, js jetstream.JetStream, s Subjects, wave string, tasks []TaskMsg, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pending := tasks
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt%10 == 1 {
				log.Warn("tasks not stored yet; publishing them again", "tasks", len(pending), "attempt", attempt+1)
			}
			if !sleep(ctx, retryPause(attempt)) {
				return ctx.Err()
			}
		}
		var again []TaskMsg
		futures := make([]jetstream.PubAckFuture, len(pending))
		for i, t := range pending {
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: s.Tasks(t.Shard), Data: EncodeTask(t)},
				jetstream.WithMsgID(TaskMsgID(s.Run, wave, t)), jetstream.WithExpectStream(s.TaskStream()),
				jetstream.WithStallWait(publishStallWait))
			if err != nil {
				if !transient(err) {
					return fmt.Errorf("publish tasks: %w", err)
				}
				again = append(again, t)
				continue
			}
			futures[i] = f
		}
		idx, err := awaitAcks(ctx, futures, ackQuiet)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("publish tasks: %w", err)
		}
		for _, i := range idx {
			again = append(again, pending[i])
		}
		pending = again
	}
	return nil
}

// Permanent reports whether a JetStream error cannot be mended by trying
// again: the server answered and refused (a full stream, a bad request),
// as opposed to a timeout or a server that is not there yet.
func Permanent(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return false
	}
	// 10077: the stream could not store the message (full, out of disk).
	return api.Code != 503 || api.ErrorCode == 10077
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// DeadLetter records a task that could not be done: the run fails naming it.
type DeadLetter struct {
	V          int     `json:"v"`
	Task       TaskMsg `json:"task"`
	Deliveries int     `json:"deliveries"`
	Reason     string  `json:"reason"`
	Host       string  `json:"host,omitempty"`
}

const deadVersion = 1

// String names the task and why it died, for the run's error.
func (d DeadLetter) String() string {
	s := fmt.Sprintf("task %s/%s round %d shard %d (%d items) failed", d.Task.Model, d.Task.Instrument, d.Task.Round, d.Task.Shard, len(d.Task.Items))
	if d.Deliveries > 0 {
		s += fmt.Sprintf(" after %d deliveries", d.Deliveries)
	}
	if d.Host != "" {
		s += " (last on host " + d.Host + ")"
	}
	return s + ": " + d.Reason
}

// EncodeDeadLetter encodes a dead-letter record.
func EncodeDeadLetter(d DeadLetter) []byte {
	d.V = deadVersion
	b, _ := json.Marshal(d) // cannot fail: plain fields
	return b
}

// DecodeDeadLetter decodes and checks a dead-letter record.
func DecodeDeadLetter(data []byte) (DeadLetter, error) {
	var d DeadLetter
	if err := json.Unmarshal(data, &d); err != nil {
		return DeadLetter{}, fmt.Errorf("%w: dead letter: %v", ErrBadMessage, err)
	}
	if d.V != deadVersion {
		return DeadLetter{}, fmt.Errorf("%w: dead letter version %d, want %d", ErrBadMessage, d.V, deadVersion)
	}
	if err := checkTaskBounds(d.Task); err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter: %w", err)
	}
	return d, nil
}

// PublishDeadLetter stores a dead-letter record, trying again while the
// server is unreachable.
func PublishDeadLetter(ctx context.Context, js jetstream.JetStream, s Subjects, d DeadLetter) error {
	id := TaskMsgID(s.Run, "dead", d.Task)
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.PublishMsg(pctx, &nats.Msg{Subject: s.DeadLetters(), Data: EncodeDeadLetter(d)}, jetstream.WithMsgID(id))
		cancel()
		if err == nil || Permanent(err) || ctx.Err() != nil {
			if err != nil {
				return fmt.Errorf("publish dead letter: %w", err)
			}
			return nil
		}
		if !sleep(ctx, min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second)) {
			return ctx.Err()
		}
	}
}

// checkTaskBounds checks a decoded task's fields and bounds (the version
// is DecodeTask's business): a forged task must not make a host allocate
// without limit.
func checkTaskBounds(t TaskMsg) error {
	if t.Model == "" || t.Instrument == "" || len(t.Items) == 0 || t.Shard < 0 || t.Round < 0 {
		return fmt.Errorf("%w: task lacks model, instrument, items or a valid shard", ErrBadMessage)
	}
	if t.Shard >= maxShards || len(t.Items) > maxItems {
		return fmt.Errorf("%w: task shard %d or %d items out of range", ErrBadMessage, t.Shard, len(t.Items))
	}
	for _, it := range t.Items {
		if it < 0 || it >= maxItems {
			return fmt.Errorf("%w: task item %d out of range", ErrBadMessage, it)
		}
	}
	return nil
}

// maxItems bounds the items of one task: more than any instrument has.
const maxItems = 1 << 16

// TasksSettled waits until the run's task queue holds no task undelivered
// or unacknowledged: every host has settled the tasks it took (Worker.Settle
// records their model traffic before the acknowledgement), so results
// written after it count every request. A task still held once its
// answers are all stored is one delivered again being repeated, settled
// within its ack wait; a host that stopped holding one hands it on after
// the ack wait. It gives up after limit, with an error saying how many
// tasks are still out.
func TasksSettled(ctx context.Context, js jetstream.JetStream, s Subjects, limit time.Duration) error {
	c, err := js.Consumer(ctx, s.TaskStream(), TaskConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("task queue: %w", err)
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := c.Info(ctx)
		if err != nil {
			return fmt.Errorf("task queue: %w", err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("task queue: %d tasks still queued and %d held by hosts after %v", info.NumPending, info.NumAckPending, limit)
		case <-tick.C:
		}
	}
}
