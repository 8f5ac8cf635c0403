package results

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
)

// pvqOutput is a results directory's input for size agents answering the
// PVQ-40 at random, every 97th answer invalid, in shards of 1,000 agents.
func pvqOutput(tb testing.TB, size int) *analysis.Output {
	tb.Helper()
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		tb.Fatal(err)
	}
	hnp, err := population.HumanShares(population.DefaultShares)
	if err != nil {
		tb.Fatal(err)
	}
	w, _ := population.StrategyWeights(population.HNP, hnp, 0.53)
	pool := population.NewPool([]population.Member{{Name: "h-np", Counts: population.Counts(w, size)}}, 3)
	items := make([]int, len(in.Items))
	for i := range items {
		items[i] = i
	}
	plans := []analysis.Plan{{Model: "m", Instrument: in, Items: items}}
	col := analysis.NewCollector(size, plans)
	rng := rand.New(rand.NewPCG(1, 2))
	for first := 0; first < size; first += 1000 {
		n := min(1000, size-first)
		for it := range items {
			codes := make([]uint8, n)
			for i := range codes {
				if (first+i+it)%97 != 0 {
					codes[i] = uint8(1 + rng.IntN(6))
				}
			}
			if err := col.Add(&agent.Batch{Model: "m", Instrument: in.Name, Item: it, Shard: first / 1000, First: first, Codes: codes}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return &analysis.Output{Outcome: &analysis.Outcome{}, Collector: col, Study: &analysis.Study{Name: "t", Pool: pool, Plans: plans}}
}

// writeAnswers, writeAnswersGzip and writeAnswersParquet write the answers
// of o in each form, as Write does.
func writeAnswers(w io.Writer, o *analysis.Output) error {
	t, err := newAnswerTable(o)
	if err != nil {
		return err
	}
	return t.writeCSV(w)
}

func writeAnswersGzip(w io.Writer, o *analysis.Output) error {
	t, err := newAnswerTable(o)
	if err != nil {
		return err
	}
	return t.writeGzip(w)
}

func writeAnswersParquet(w io.Writer, o *analysis.Output) error {
	t, err := newAnswerTable(o)
	if err != nil {
		return err
	}
	return t.writeParquet(context.Background(), w)
}

func TestAnswersGzipIsTheCSV(t *testing.T) {
	for _, size := range []int{0, 7, 30000} {
		o := pvqOutput(t, size)
		var plain, packed bytes.Buffer
		if err := writeAnswers(&plain, o); err != nil {
			t.Fatal(err)
		}
		if err := writeAnswersGzip(&packed, o); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(&packed)
		if err != nil {
			t.Fatal(err)
		}
		text, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(text, plain.Bytes()) {
			t.Errorf("%d agents: the gzip file holds %d bytes, want the %d of answers.csv", size, len(text), plain.Len())
		}
		if want := int64(size * 40); int64(bytes.Count(plain.Bytes(), []byte("\n"))) != want+1 {
			t.Errorf("%d agents: got %d lines, want a header and %d rows", size, bytes.Count(plain.Bytes(), []byte("\n")), want)
		}
	}
	// Rows written by hand: agent 1's first answer (valid), and agent 0's
	// (invalid: an empty answer and false).
	o := pvqOutput(t, 7)
	var plain bytes.Buffer
	if err := writeAnswers(&plain, o); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(plain.Bytes(), []byte("\n"))
	sheet := o.Collector.Sheets(o.Study.Plans)[0]
	if sheet.Codes[0] != 0 || sheet.Codes[40] == 0 {
		t.Fatalf("fixture: got codes %d and %d, want agent 0's first answer invalid and agent 1's valid", sheet.Codes[0], sheet.Codes[40])
	}
	want := []string{
		"model,agent,persona,instrument,item,round,answer,valid",
		"m,0," + o.Study.Pool.Persona[0].Code() + ",pvq40,1,0,,false",
		"m,1," + o.Study.Pool.Persona[1].Code() + ",pvq40,1,0," + strconv.Itoa(int(sheet.Codes[40])) + ",true",
	}
	for i, w := range want {
		row := i
		if i == 2 {
			row = 41
		}
		if string(lines[row]) != w {
			t.Errorf("line %d: got %q, want %q", row, lines[row], w)
		}
	}
}

// BenchmarkWriteAnswers formats answers.csv for 20,000 agents × PVQ-40.
func BenchmarkWriteAnswers(b *testing.B) {
	o := pvqOutput(b, 20000)
	for b.Loop() {
		if err := writeAnswers(io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*20000*40), "ns/row")
}

// BenchmarkWriteAnswersGzip is the same compressed on every core.
func BenchmarkWriteAnswersGzip(b *testing.B) {
	o := pvqOutput(b, 20000)
	for b.Loop() {
		if err := writeAnswersGzip(io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*20000*40), "ns/row")
}

// BenchmarkWriteAnswersParquet is the same as answers.parquet.
func BenchmarkWriteAnswersParquet(b *testing.B) {
	o := pvqOutput(b, 20000)
	for b.Loop() {
		if err := writeAnswersParquet(io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*20000*40), "ns/row")
}
