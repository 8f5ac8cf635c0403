package bus_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/bus"
)

// A batch of version 1 (raw text kept whole, no length) is still read, its
// length taken from the text.
func TestDecodeBatchVersion1(t *testing.T) {
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	v1 := []byte{'A', 1}
	v1 = str(v1, "m")
	v1 = str(v1, "pvq40")
	for _, n := range []uint64{3, 0, 2, 10, 2} { // item round shard first len(codes)
		v1 = binary.AppendUvarint(v1, n)
	}
	v1 = append(v1, 4, 0)
	v1 = binary.AppendUvarint(v1, 1)
	v1 = binary.AppendUvarint(v1, 11)
	v1 = str(v1, "no comment")
	v1 = str(v1, "refusal")
	b, err := bus.DecodeBatch(v1)
	if err != nil {
		t.Fatal(err)
	}
	want := agent.Invalid{Agent: 11, Raw: "no comment", RawBytes: 10, Reason: "refusal"}
	if b.First != 10 || len(b.Invalid) != 1 || b.Invalid[0] != want {
		t.Fatalf("got %+v, want agent 11's invalid answer %+v", b, want)
	}
}

// SplitBatch keeps a batch that fits whole, and splits one that does not
// into parts over consecutive agents that each fit, losing nothing.
func TestSplitBatch(t *testing.T) {
	raw := agent.BoundText(strings.Repeat("no number here. ", 3000), agent.MaxRaw)
	b := &agent.Batch{Model: "m", Instrument: "pvq40", Item: 2, Shard: 1, First: 100, Codes: make([]uint8, 150)}
	for i := range b.Codes {
		if i%3 == 0 {
			b.Codes[i] = 4
			continue
		}
		b.Invalid = append(b.Invalid, agent.Invalid{Agent: 100 + i, Raw: raw, RawBytes: 48000, Reason: "no answer on the scale"})
	}
	whole := len(bus.AppendBatch(nil, b))
	if parts, err := bus.SplitBatch(b, whole); err != nil || len(parts) != 1 {
		t.Fatalf("fitting batch: got %d parts, %v; want it whole", len(parts), err)
	}
	const limit = 64 << 10
	parts, err := bus.SplitBatch(b, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < whole/limit+1 {
		t.Fatalf("got %d parts of a %d-byte batch, want at least %d", len(parts), whole, whole/limit+1)
	}
	next, invalid, ids := 100, 0, map[string]bool{}
	for _, p := range parts {
		if n := len(bus.AppendBatch(nil, &p)); n > limit {
			t.Errorf("part from agent %d: %d bytes, over %d", p.First, n, limit)
		}
		if p.First != next || p.Model != b.Model || p.Item != b.Item || p.Shard != b.Shard {
			t.Fatalf("part %+v does not follow agent %d", p, next)
		}
		for _, iv := range p.Invalid {
			if iv.Agent < p.First || iv.Agent >= p.First+len(p.Codes) {
				t.Errorf("invalid answer of agent %d in the part of agents %d..%d", iv.Agent, p.First, p.First+len(p.Codes)-1)
			}
		}
		next += len(p.Codes)
		invalid += len(p.Invalid)
		ids[bus.MsgID("run", &p)] = true
	}
	if next != 250 || invalid != len(b.Invalid) || len(ids) != len(parts) {
		t.Errorf("parts cover agents to %d with %d invalid answers and %d ids; want 250, %d, %d", next, invalid, len(ids), len(b.Invalid), len(parts))
	}
	if _, err := bus.SplitBatch(b, 1<<10); err == nil {
		t.Error("a limit no agent's answer fits: got no error, want one")
	}
}
