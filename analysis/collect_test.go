package analysis

import (
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// The same answers split into parts differently (a host restarted with a
// smaller payload limit) count once: valid + invalid = expected.
func TestCollectorCountsSplitPartsOnce(t *testing.T) {
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	c := NewCollector(8, []Plan{{Model: "m", Instrument: in, Items: []int{0}}})
	whole := &agent.Batch{Model: "m", Instrument: in.Name, Codes: []uint8{1, 0, 3, 0, 5, 6, 0, 2},
		Invalid: []agent.Invalid{{Agent: 1, Raw: "x", RawBytes: 9000}, {Agent: 3, Raw: "y"}, {Agent: 6, Raw: "z"}}}
	part := func(first, n int) *agent.Batch {
		p := *whole
		p.First, p.Codes, p.Invalid = first, whole.Codes[first:first+n], nil
		for _, iv := range whole.Invalid {
			if iv.Agent >= first && iv.Agent < first+n {
				p.Invalid = append(p.Invalid, iv)
			}
		}
		return &p
	}
	for _, b := range []*agent.Batch{part(0, 4), part(4, 4), whole, part(2, 4), part(0, 4)} {
		if err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	if e, v, i := c.Counts(); e != 8 || v != 5 || i != 3 {
		t.Errorf("counts: got %d expected, %d valid, %d invalid; want 8, 5, 3", e, v, i)
	}
	if got := c.ModelCounts()["m"]; got != (AnswerCounts{Expected: 8, Valid: 5, Invalid: 3}) {
		t.Errorf("model counts: got %+v, want 8, 5, 3", got)
	}
	if iv := c.Invalid(); len(iv) != 3 || iv[0].RawBytes != 9000 || iv[1].RawBytes != 1 {
		t.Errorf("invalid answers: got %+v, want agents 1, 3, 6 with their raw lengths", iv)
	}
}
