// Package busbench measures the NATS transport a run's answers take: the
// size of an answer batch on the wire, and how fast such messages go from a
// publisher to a subscriber over core NATS and through a JetStream memory
// stream on an embedded server. It measures the bus adapter alone and must
// not import llm, metrics or cmd.
package busbench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/sim/simbench"
)

// Result is the raw transport's rate for one message size.
type Result struct {
	Messages               int
	MsgsPerSecond          float64
	BytesPerSecond         float64
	JetStreamMsgsPerSecond float64
}

// AnswerMessageSize is the wire size of one answer batch of a run of
// agents cut into shards, answering an instrument of items items from
// model: one byte per agent and a short header. It sizes the last batch of
// the last shard, whose numbers are the largest.
func AnswerMessageSize(model, instrument string, items, agents, shards int) int {
	per := (agents + shards - 1) / shards
	b := agent.Batch{Model: model, Instrument: instrument, Item: items - 1, Shard: shards - 1,
		First: agents - per, Codes: make([]uint8, per)}
	return len(bus.AppendBatch(nil, &b))
}

// MinBytes and MinMsgs make every rate measurement long enough to be a
// rate rather than the cost of starting: small runs have only a few
// hundred messages, so the same messages are sent again until both are met
// (the bytes up to maxMsgs messages, for tiny messages).
const (
	MinBytes = 64 << 20
	MinMsgs  = 20000
	maxMsgs  = 100000
)

// Measure measures, on a fresh embedded server with in-process
// connections, how fast messages of size bytes go from a publisher to a
// subscriber (core NATS), and from an acknowledged JetStream publish
// through a memory stream to an ordered consumer, as the answers of a run
// do. msgs is the run's message count; more are sent when it is below
// minMsgs or minBytes.
func Measure(ctx context.Context, size, msgs, minMsgs, minBytes int) (*Result, error) {
	total := max(msgs, minMsgs, min(minBytes/max(size, 1), maxMsgs))
	srv, err := bus.StartServer(bus.ServerOptions{MaxMemory: 2 << 30})
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	pub, err := srv.Connect("bench-pub")
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	sub, err := srv.Connect("bench-sub")
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(1 + i%6)
	}
	subjects := make([]string, 256)
	for i := range subjects {
		subjects[i] = "bench.answers." + strconv.Itoa(i)
	}

	core, err := natsCore(ctx, pub, sub, subjects, payload, total)
	if err != nil {
		return nil, fmt.Errorf("bench nats: %w", err)
	}
	js, err := natsJetStream(ctx, pub, sub, payload, total)
	if err != nil {
		return nil, fmt.Errorf("bench jetstream: %w", err)
	}
	return &Result{Messages: total, MsgsPerSecond: float64(total) / core.Seconds(),
		BytesPerSecond: float64(total) * float64(size) / core.Seconds(), JetStreamMsgsPerSecond: float64(total) / js.Seconds()}, nil
}

// natsWait bounds one transport measurement.
const natsWait = 2 * time.Minute

func natsCore(ctx context.Context, pub, sub *nats.Conn, subjects []string, payload []byte, total int) (time.Duration, error) {
	var got atomic.Int64
	done := make(chan struct{})
	s, err := sub.Subscribe("bench.answers.*", func(*nats.Msg) {
		if got.Add(1) == int64(total) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer s.Unsubscribe()
	if err := s.SetPendingLimits(-1, -1); err != nil {
		return 0, err
	}
	if err := sub.Flush(); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := range total {
		if err := pub.Publish(subjects[i%len(subjects)], payload); err != nil {
			return 0, err
		}
	}
	if err := pub.Flush(); err != nil {
		return 0, err
	}
	return waitDone(ctx, done, start, &got, total)
}

func natsJetStream(ctx context.Context, pub, sub *nats.Conn, payload []byte, total int) (time.Duration, error) {
	jp, err := jetstream.New(pub, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		return 0, err
	}
	jc, err := jetstream.New(sub)
	if err != nil {
		return 0, err
	}
	subj := bus.Subjects{Run: "bench-jetstream"}
	if _, err := bus.EnsureAnswerStream(ctx, jp, subj, bus.StreamOptions{MaxBytes: int64(total)*int64(len(payload)+256) + 64<<20}); err != nil {
		return 0, err
	}
	defer jp.DeleteStream(context.WithoutCancel(ctx), subj.Stream())
	cons, err := jc.OrderedConsumer(ctx, subj.Stream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj.AllAnswers()}})
	if err != nil {
		return 0, err
	}
	var got atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if got.Add(1) == int64(total) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	subjects := make([]string, 256)
	for i := range subjects {
		subjects[i] = subj.Answers(i)
	}
	start := time.Now()
	// Acknowledged publishes in windows, as an agent host sends a shard's
	// batches and waits for their acknowledgements.
	const window = 1024
	for lo := 0; lo < total; lo += window {
		hi := min(lo+window, total)
		futures := make([]jetstream.PubAckFuture, 0, hi-lo)
		for i := lo; i < hi; i++ {
			f, err := jp.PublishMsgAsync(&nats.Msg{Subject: subjects[i%len(subjects)], Data: payload},
				jetstream.WithMsgID("bench."+strconv.Itoa(i)))
			if err != nil {
				return 0, err
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return 0, err
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	return waitDone(ctx, done, start, &got, total)
}

func waitDone(ctx context.Context, done <-chan struct{}, start time.Time, got *atomic.Int64, total int) (time.Duration, error) {
	t := time.NewTimer(natsWait)
	defer t.Stop()
	select {
	case <-done:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
		return 0, errors.New("received " + strconv.FormatInt(got.Load(), 10) + " of " + strconv.Itoa(total) + " messages in " + natsWait.String())
	}
}

// Transport is Measure as a bench run's transport part
// (simbench.Suite.Transport): each measurement sends at least minMsgs
// messages and minBytes bytes.
func Transport(minMsgs, minBytes int) func(ctx context.Context, size, msgs int) (simbench.Rate, error) {
	return func(ctx context.Context, size, msgs int) (simbench.Rate, error) {
		r, err := Measure(ctx, size, msgs, minMsgs, minBytes)
		if err != nil {
			return simbench.Rate{}, err
		}
		return simbench.Rate{MsgsPerSecond: r.MsgsPerSecond, BytesPerSecond: r.BytesPerSecond, JetStreamMsgsPerSecond: r.JetStreamMsgsPerSecond}, nil
	}
}
