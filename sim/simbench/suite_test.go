package simbench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden reports under testdata")

func TestParseSizes(t *testing.T) {
	got, err := ParseSizes("10_000, 100000,1")
	if err != nil || len(got) != 3 || got[0] != 10000 || got[1] != 100000 || got[2] != 1 {
		t.Errorf("got %v, %v, want [10000 100000 1]", got, err)
	}
	for _, bad := range []string{"1,,2", "-5", "0", "ten"} {
		if _, err := ParseSizes(bad); err == nil {
			t.Errorf("%q: got nil error, want one", bad)
		}
	}
}

func TestParseSkip(t *testing.T) {
	skip, unknown := ParseSkip(" nats,, model ,everything,calls,x")
	for _, p := range []string{NATS, Model, Calls} {
		if !skip[p] {
			t.Errorf("%s: got not skipped, want skipped", p)
		}
	}
	if skip[Pipeline] || skip[NoBus] {
		t.Errorf("got %v, want pipeline and nobus run", skip)
	}
	if len(unknown) != 2 || unknown[0] != "everything" || unknown[1] != "x" {
		t.Errorf("got unknown %q, want [everything x]", unknown)
	}
	if skip, unknown := ParseSkip(""); len(skip) != 0 || unknown != nil {
		t.Errorf("empty: got %v, %q, want nothing", skip, unknown)
	}
}

func TestLargestRun(t *testing.T) {
	runs := []Row{{Agents: 10}, {Agents: 1000, WallSeconds: 2}, {Agents: 100}, {Agents: 1000, WallSeconds: 3}}
	if got := LargestRun(runs); got.Agents != 1000 || got.WallSeconds != 2 {
		t.Errorf("got %+v, want the first 1000-agent run", got)
	}
}

// goldenMachine and goldenRuns exercise every branch of the table: figures
// measured and not ("-"), rates in M, k and units, a results mismatch.
func goldenMachine() Machine {
	return Machine{CPUs: 2, CPUModel: "Test CPU @ 2.00GHz", MemoryBytes: 8 << 30, GoVersion: "go1.26.0", OS: "linux/amd64", Kernel: "6.1.0",
		LoadBefore: []float64{0.5, 1.25, 2}, Time: "2026-11-30T12:00:00Z"}
}

func goldenRuns() []Row {
	same, differ := true, false
	return []Row{
		{Agents: 10000, Answers: 400000, Shards: 2, WallSeconds: 3.456, AnswersPerSecond: 115740.74, PeakRSSBytes: 123456789, CPUSeconds: 5.67,
			AnswerSeconds: 2.5, FinishSeconds: 0.956, NoBusSeconds: 2.9, NoBusAnswerSeconds: 2.1, NoBusPeakRSSBytes: 99999999, BaselineRatio: 1.19, AnswerRatio: 1.1904, SameResults: &same,
			MessageBytes: 5030, Messages: 80, NATSMsgsPerSecond: 2345678.9, NATSBytesPerSecond: 1.2e10, NATSSeconds: 0.0000341, JetStreamMsgsPerSecond: 456789, JetStreamSeconds: 0.000175, ModelPathEfficiency: 0.93},
		{Agents: 300, Answers: 12000, Shards: 1, WallSeconds: 0.5, AnswersPerSecond: 24000, CPUSeconds: 0.8, AnswerSeconds: 0.3, FinishSeconds: 0.2, SameResults: &differ,
			MessageBytes: 320, Messages: 40, NATSMsgsPerSecond: 999, ModelPathEfficiency: 0.93},
		{Agents: 7, Answers: 280, Shards: 1, MessageBytes: 30, Messages: 40},
	}
}

// TestReportGolden checks the report's text and JSON against files that
// `society bench` wrote before the report moved here: the format is the
// command's, byte for byte.
func TestReportGolden(t *testing.T) {
	runs := goldenRuns()
	empty := &Report{Note: Note, Machine: goldenMachine()}
	empty.ModelPathEfficiency = 0.5
	for name, rep := range map[string]*Report{
		"report": {Row: LargestRun(runs), Note: Note, Machine: goldenMachine(), Runs: runs},
		"empty":  empty,
	} {
		t.Run(name, func(t *testing.T) {
			var text bytes.Buffer
			rep.WriteText(&text)
			js, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", text.Bytes())
			golden(t, name+".json", append(js, '\n'))
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
	}
}

// part is another harness's section: a fixed text and JSON.
type part struct {
	Name string `json:"name"`
}

func (p *part) WriteText(w io.Writer) { fmt.Fprintf(w, "[%s]\n", p.Name) }

// TestSuiteRun runs a suite whose child runs are skipped, so that every
// figure comes from the harnesses it is given: the transport's per
// population, then the model path's and the calls', in the report's rows,
// top level, JSON and text.
func TestSuiteRun(t *testing.T) {
	var log bytes.Buffer
	var sent []string
	s := Suite{
		Options:     Options{Seed: 1, Skip: map[string]bool{Pipeline: true, NoBus: true}, Log: &log},
		Agents:      []int{100, 5000, 300},
		MessageSize: func(agents, shards int) int { return agents/shards + 10 },
		Transport: func(_ context.Context, size, msgs int) (Rate, error) {
			sent = append(sent, fmt.Sprint(size, "×", msgs))
			return Rate{MsgsPerSecond: 1000, BytesPerSecond: float64(1000 * size), JetStreamMsgsPerSecond: 500}, nil
		},
		ModelPath: func(context.Context) (Part, float64, error) { return &part{"model path"}, 0.75, nil },
		Calls:     func(context.Context) (Part, error) { return &part{"calls"}, nil },
	}
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 3 {
		t.Fatalf("got %d rows, want 3", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Messages != r.Shards*PVQItems || r.MessageBytes != r.Agents/r.Shards+10 {
			t.Errorf("%d agents: got %d messages of %d bytes, want %d of %d", r.Agents, r.Messages, r.MessageBytes, r.Shards*PVQItems, r.Agents/r.Shards+10)
		}
		if want := float64(r.Messages) / 1000; r.NATSSeconds != want || r.JetStreamSeconds != 2*want {
			t.Errorf("%d agents: got NATS %v s, JetStream %v s, want %v and %v", r.Agents, r.NATSSeconds, r.JetStreamSeconds, want, 2*want)
		}
		if r.ModelPathEfficiency != 0.75 {
			t.Errorf("%d agents: got model path efficiency %v, want 0.75", r.Agents, r.ModelPathEfficiency)
		}
	}
	if len(sent) != 3 {
		t.Errorf("got transport runs %v, want one per population", sent)
	}
	if rep.Agents != 5000 || rep.NATSMsgsPerSecond != 1000 || rep.ModelPathEfficiency != 0.75 {
		t.Errorf("top level: got %d agents, %v msgs/s, efficiency %v; want the 5000-agent row", rep.Agents, rep.NATSMsgsPerSecond, rep.ModelPathEfficiency)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"model_path":{"name":"model path"}`, `"model_calls":{"name":"calls"}`, `"agents":5000`} {
		if !bytes.Contains(js, []byte(want)) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if i, j := strings.Index(text.String(), "[model path]"), strings.Index(text.String(), "[calls]"); i < 0 || j < i || !strings.HasSuffix(text.String(), "[calls]\n") {
		t.Errorf("text: got\n%s\nwant the table, then the model path, then the calls", text.String())
	}
	if strings.Count(log.String(), "raw NATS and JetStream for") != 3 {
		t.Errorf("log: got %q, want a line per transport run", log.String())
	}
}

// TestSuiteSkip leaves every part out: nothing runs, and the report has
// no rows and no parts.
func TestSuiteSkip(t *testing.T) {
	skip := map[string]bool{}
	for _, p := range Parts {
		skip[p] = true
	}
	called := func() { t.Error("a skipped part ran") }
	s := Suite{Options: Options{Skip: skip}, Agents: []int{10},
		MessageSize: func(int, int) int { called(); return 0 },
		ModelPath:   func(context.Context) (Part, float64, error) { called(); return nil, 0, nil },
		Calls:       func(context.Context) (Part, error) { called(); return nil, nil },
	}
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs != nil || rep.ModelPath != nil || rep.Calls != nil || rep.Note != Note {
		t.Errorf("got %+v, want a report with the note alone", rep)
	}
}
