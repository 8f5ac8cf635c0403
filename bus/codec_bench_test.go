package bus

import (
	"testing"

	"github.com/society-sim/society/agent"
)

// benchBatch is one shard's answers to one item at a million agents:
// 4,096 agents, one byte each.
func benchBatch() *agent.Batch {
	codes := make([]uint8, 4096)
	for i := range codes {
		codes[i] = uint8(1 + i%6)
	}
	return &agent.Batch{Model: "synthetic", Instrument: "pvq40", Item: 39, Shard: 243, First: 995328, Codes: codes}
}

func BenchmarkAppendBatch(b *testing.B) {
	bt := benchBatch()
	var buf []byte
	for b.Loop() {
		buf = AppendBatch(buf[:0], bt)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeBatch(b *testing.B) {
	data := AppendBatch(nil, benchBatch())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMsgID(b *testing.B) {
	bt := benchBatch()
	for b.Loop() {
		_ = MsgID("scale-1", bt)
	}
}
