package results

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
)

// writeTestFile writes one file of a results directory with fn.
func writeTestFile(t *testing.T, path string, fn func(*bytes.Buffer) error) {
	t.Helper()
	var b bytes.Buffer
	if err := fn(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadBackWhatWasWritten: population.csv, answers.csv and
// invalid.jsonl read back into the pool and the collector they were
// written from, so that writing them again gives the same bytes.
func TestReadBackWhatWasWritten(t *testing.T) {
	o := pvqOutput(t, 300)
	// pvqOutput leaves its invalid answers without raw text; these carry it.
	in := o.Study.Plans[0].Instrument
	o.Collector = analysis.NewCollector(300, o.Study.Plans)
	for it := range in.Items {
		b := &agent.Batch{Model: "m", Instrument: in.Name, Item: it, Codes: make([]uint8, 300)}
		for a := range b.Codes {
			b.Codes[a] = uint8(1 + (a*7+it)%6)
			if (a+it)%31 == 0 {
				b.Codes[a] = 0
				b.Invalid = append(b.Invalid, agent.Invalid{Agent: a, Raw: "between 2 and \"5\"", Reason: "a range"})
			}
		}
		if err := o.Collector.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "population.csv"), func(b *bytes.Buffer) error { return writePopulation(b, o.Study.Pool) })
	writeTestFile(t, filepath.Join(dir, "answers.csv"), func(b *bytes.Buffer) error { return writeAnswers(b, o) })
	writeTestFile(t, filepath.Join(dir, "invalid.jsonl"), func(b *bytes.Buffer) error { return writeInvalid(b, o.Collector) })
	if len(o.Collector.Invalid()) == 0 {
		t.Fatal("fixture: want some invalid answers")
	}

	pool, err := ReadPopulation(filepath.Join(dir, "population.csv"), o.Study.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if want := o.Study.Pool; !reflect.DeepEqual(pool.Persona, want.Persona) || !reflect.DeepEqual(pool.Rank, want.Rank) || !reflect.DeepEqual(pool.Strategies, want.Strategies) {
		t.Errorf("population.csv: got pool %+v, want %+v", pool.Strategies, o.Study.Pool.Strategies)
	}
	col, err := ReadAnswers(dir, map[string]*questionnaires.Instrument{in.Name: in}, o.Study.Plans, pool)
	if err != nil {
		t.Fatal(err)
	}
	again := &analysis.Output{Outcome: o.Outcome, Collector: col, Study: o.Study}
	for _, f := range []struct {
		name  string
		write func(*bytes.Buffer, *analysis.Output) error
	}{
		{"answers.csv", func(b *bytes.Buffer, o *analysis.Output) error { return writeAnswers(b, o) }},
		{"invalid.jsonl", func(b *bytes.Buffer, o *analysis.Output) error { return writeInvalid(b, o.Collector) }},
	} {
		var want, got bytes.Buffer
		if err := f.write(&want, o); err != nil {
			t.Fatal(err)
		}
		if err := f.write(&got, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: written again from what was read, it differs", f.name)
		}
	}
}

// TestReadBadInput: a results file that is not what a run writes is bad
// input, named by file and line.
func TestReadBadInput(t *testing.T) {
	o := pvqOutput(t, 5)
	in := o.Study.Plans[0].Instrument
	instruments := map[string]*questionnaires.Instrument{in.Name: in}
	persona := o.Study.Pool.Persona[0].Code()
	for _, tc := range []struct {
		name, population, answers, want string
	}{
		{"population header", "agent,strategy\n", "", "population.csv:1: header"},
		{"unknown strategy", "agent,persona,strategy\n0," + persona + ",h-even\n", "", `population.csv:2: strategy "h-even"`},
		{"answers header", "", "model,agent\n", "answers.csv:1: header"},
		{"unknown instrument", "", answersHeader + "m,0," + persona + ",bfi2,1,0,3,true\n", `answers.csv:2: instrument "bfi2"`},
		{"off the scale", "", answersHeader + "m,0," + persona + ",pvq40,1,0,9,true\n", `answers.csv:2: answer "9"`},
		{"wrong persona", "", answersHeader + "m,0,XX,pvq40,1,0,3,true\n", "answers.csv:2: agent 0 has persona XX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.population == "" {
				writeTestFile(t, filepath.Join(dir, "population.csv"), func(b *bytes.Buffer) error { return writePopulation(b, o.Study.Pool) })
			} else if err := os.WriteFile(filepath.Join(dir, "population.csv"), []byte(tc.population), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "answers.csv"), []byte(tc.answers), 0o644); err != nil {
				t.Fatal(err)
			}
			pool, err := ReadPopulation(filepath.Join(dir, "population.csv"), o.Study.Pool)
			if err == nil {
				_, err = ReadAnswers(dir, instruments, o.Study.Plans, pool)
			}
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want bad input naming %q", err, tc.want)
			}
		})
	}
}

// TestPreviousModels: a rebuild keeps what only the run knew of its
// models: what the server said it served, and the traffic.
func TestPreviousModels(t *testing.T) {
	prev := &analysis.Results{
		Models:    []analysis.ModelInfo{{Name: "m", Synthetic: true, ServedModel: "llama", SystemFingerprint: "fp"}},
		ModelRuns: []analysis.ModelRun{{Model: "m", LLM: &analysis.ModelLLM{Calls: 7, CacheHits: 2}}},
	}
	models, traffic := PreviousModels([]analysis.ModelInfo{{Name: "m"}, {Name: "other"}}, prev)
	if m := models[0]; !m.Synthetic || m.ServedModel != "llama" || m.SystemFingerprint != "fp" {
		t.Errorf("model m: got %+v, want what results.json said", m)
	}
	if models[1] != (analysis.ModelInfo{Name: "other"}) {
		t.Errorf("model other: got %+v, want it as planned", models[1])
	}
	if tr := traffic["m"]; tr.Calls != 7 || tr.CacheHits != 2 {
		t.Errorf("traffic: got %+v, want 7 calls and 2 cache hits", tr)
	}
}
