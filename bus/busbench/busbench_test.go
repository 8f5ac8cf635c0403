package busbench

import (
	"math"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/bus"
)

func TestAnswerMessageSize(t *testing.T) {
	// 1000 agents in 3 shards: 334 per shard, one byte each.
	got := AnswerMessageSize("synthetic", "pvq40", 40, 1000, 3)
	b := agent.Batch{Model: "synthetic", Instrument: "pvq40", Item: 39, Shard: 2, First: 666, Codes: make([]uint8, 334)}
	if want := len(bus.AppendBatch(nil, &b)); got != want {
		t.Errorf("got %d bytes, want %d", got, want)
	}
	if got <= 334 {
		t.Errorf("got %d bytes, want more than the 334 answer codes", got)
	}
}

// TestMeasure checks that every message is counted on both paths; the
// rates themselves are timings, never checked.
func TestMeasure(t *testing.T) {
	r, err := Measure(t.Context(), 100, 50, 300, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 300 || r.MsgsPerSecond <= 0 || r.JetStreamMsgsPerSecond <= 0 ||
		math.Abs(r.BytesPerSecond-100*r.MsgsPerSecond) > 1e-9*r.BytesPerSecond {
		t.Errorf("got %+v, want 300 messages, positive rates and 100 bytes per message", r)
	}
}
