package bus_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/bus"
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
