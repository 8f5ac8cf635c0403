package bus_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
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

func TestBatchRoundTrip(t *testing.T) {
	b := &agent.Batch{Model: "llama", Instrument: "pvq40", Item: 39, Round: 2, Shard: 7, First: 1000,
		Codes:   []uint8{1, 2, 0, 6},
		Invalid: []agent.Invalid{{Agent: 1002, Raw: "no comment… [41830 bytes]", RawBytes: 41830, Reason: "refusal"}}}
	got, err := bus.DecodeBatch(bus.AppendBatch(nil, b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != b.Model || got.Instrument != b.Instrument || got.Item != b.Item || got.Round != b.Round ||
		got.Shard != b.Shard || got.First != b.First || !bytes.Equal(got.Codes, b.Codes) ||
		len(got.Invalid) != 1 || got.Invalid[0] != b.Invalid[0] {
		t.Fatalf("got %+v, want %+v", got, b)
	}
}

func TestDecodeRejectsBadMessages(t *testing.T) {
	good := bus.AppendBatch(nil, &agent.Batch{Model: "m", Instrument: "i", Codes: []uint8{1, 2}})
	cases := map[string][]byte{
		"empty":        nil,
		"json":         []byte(`{"model":"m"}`),
		"new version":  append([]byte{'A', 9}, good[2:]...),
		"truncated":    good[:len(good)-2],
		"trailing":     append(append([]byte(nil), good...), 0),
		"out of batch": bus.AppendBatch(nil, &agent.Batch{Model: "m", Instrument: "i", First: 10, Codes: []uint8{1}, Invalid: []agent.Invalid{{Agent: 3}}}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := bus.DecodeBatch(data); !errors.Is(err, bus.ErrBadMessage) {
				t.Fatalf("got %v, want ErrBadMessage", err)
			}
		})
	}
	for _, data := range []string{``, `{}`, `{"v":2,"model":"m","instrument":"i","items":[1]}`, `{"v":1,"model":"m","instrument":"i","items":[]}`} {
		if _, err := bus.DecodeTask([]byte(data)); !errors.Is(err, bus.ErrBadMessage) {
			t.Errorf("task %s: got %v, want ErrBadMessage", data, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(bus.AppendBatch(nil, &agent.Batch{Model: "m", Instrument: "pvq40", Codes: []uint8{1, 2, 3}}))
	f.Add([]byte{'A', 1, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bus.DecodeBatch(data)
		if err != nil {
			return
		}
		again, err := bus.DecodeBatch(bus.AppendBatch(nil, b))
		if err != nil || again.Model != b.Model || !bytes.Equal(again.Codes, b.Codes) {
			t.Fatalf("re-encoding a decoded batch changed it: %v", err)
		}
	})
}

// TestHostOverEmbeddedNATS runs agents in a host against the real embedded
// server: tasks go out per shard, answers come back through the JetStream
// stream, and a batch published twice is stored once.
func TestHostOverEmbeddedNATS(t *testing.T) {
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subj := bus.Subjects{Run: "test-run"}
	st, err := bus.EnsureAnswerStream(ctx, js, subj, bus.StreamOptions{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}

	const agents, shards = 230, 4
	model := &llmtest.Model{}
	host := &bus.Host{Conn: nc, Subjects: subj, Instrument: func(name string) (*questionnaires.Instrument, bool) {
		return in, name == in.Name
	}}
	persona := func(id int) values.Value { return values.Value(id%11 - 1) }
	for s := range shards {
		lo, hi := s*agents/shards, (s+1)*agents/shards
		var as []agent.Agent
		for id := lo; id < hi; id++ {
			as = append(as, agent.New(id, agent.Persona{Value: persona(id)}, 0, 1))
		}
		host.Shards = append(host.Shards, agent.NewShard(s, lo, as, map[string]agent.Model{"m": model}))
	}
	items := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39}
	col := analysis.NewCollector(agents, []analysis.Plan{{Model: "m", Instrument: in, Items: items}})

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- host.Run(runCtx) }()
	go func() { defer wg.Done(); errs <- bus.ConsumeAnswers(runCtx, js, subj, col.Add, nil) }()
	<-host.Ready()
	for s := range shards {
		if err := nc.Publish(subj.Tasks(s), bus.EncodeTask(bus.TaskMsg{Model: "m", Instrument: "pvq40", Items: items, Shard: s})); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage on the task subject is skipped, not fatal.
	if err := nc.Publish(subj.Tasks(0), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-col.Done():
	case <-ctx.Done():
		e, v, i := col.Counts()
		t.Fatalf("timed out: %d valid + %d invalid of %d", v, i, e)
	}
	// Publishing shard 0's first batch again must be de-duplicated by the stream.
	b := &agent.Batch{Model: "m", Instrument: "pvq40", Item: 0, Shard: 0, First: 0, Codes: make([]uint8, agents/shards)}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subj.Answers(0), Data: bus.AppendBatch(nil, b)},
		jetstream.WithMsgID(bus.MsgID(subj.Run, b))); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.Msgs, uint64(shards*len(items)); got != want {
		t.Errorf("got %d stored batches, want %d (one per shard and item)", got, want)
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	e, v, i := col.Counts()
	if e != agents*40 || v != e || i != 0 {
		t.Fatalf("got expected %d valid %d invalid %d, want %d valid", e, v, i, agents*40)
	}
	sheet := col.Sheets([]analysis.Plan{{Model: "m", Instrument: in}})[0]
	for id := range agents {
		want := llmtest.PersonaAnswer(&agent.Question{Persona: agent.Persona{Value: persona(id)}, Instrument: in})
		for it := range 40 {
			if got := int(sheet.Codes[id*40+it]) - 1 + in.Scale.Min; got != want.Value {
				t.Fatalf("agent %d item %d: got %d, want %d", id, it, got, want.Value)
			}
		}
	}
}
