package results

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// gameOutput is gameStudy's run, answered by gameBatches and analysed.
func gameOutput(t *testing.T) *analysis.Output {
	t.Helper()
	st := gameStudy(t, games.Random)
	c := analysis.NewCollector(st.Pool.Size(), st.Plans)
	for _, b := range gameBatches(st) {
		if err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	out, err := st.Compute(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return &analysis.Output{Outcome: out, Collector: c, Study: st}
}

// readCSV reads a whole CSV table.
func readCSV(t *testing.T, data []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestAnswersParquetReadsBackAsTheCSV: a run's answers written as
// answers.csv and as answers.parquet (in row groups smaller than the run)
// read back into collectors that write the same answers.csv again, so the
// two files hold the same rows; with both present the reader takes the
// Parquet file.
func TestAnswersParquetReadsBackAsTheCSV(t *testing.T) {
	pvq := pvqOutput(t, 2500)
	for _, tc := range []struct {
		name string
		o    *analysis.Output
	}{
		{"questionnaire with invalid answers", pvq},
		{"game with players and bystanders", gameOutput(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			tab, err := newAnswerTable(o)
			if err != nil {
				t.Fatal(err)
			}
			tab.rowGroup = 7000
			var want bytes.Buffer
			if err := tab.writeCSV(&want); err != nil {
				t.Fatal(err)
			}
			instruments := map[string]*questionnaires.Instrument{}
			for _, p := range o.Study.Plans {
				instruments[p.Instrument.Name] = p.Instrument
			}
			csvDir, pqDir := t.TempDir(), t.TempDir()
			for _, dir := range []string{csvDir, pqDir} {
				writeTestFile(t, filepath.Join(dir, "invalid.jsonl"), func(b *bytes.Buffer) error { return writeInvalid(b, o.Collector) })
			}
			writeTestFile(t, filepath.Join(csvDir, "answers.csv"), func(b *bytes.Buffer) error { return tab.writeCSV(b) })
			writeTestFile(t, filepath.Join(pqDir, "answers.parquet"), func(b *bytes.Buffer) error { return tab.writeParquet(context.Background(), b) })
			// Were the CSV read here, the reader would fail on its first line.
			if err := os.WriteFile(filepath.Join(pqDir, "answers.csv"), []byte("not,the,answers\n"), 0o644); err != nil {
				t.Fatal(err)
			}

			data, err := os.ReadFile(filepath.Join(pqDir, "answers.parquet"))
			if err != nil {
				t.Fatal(err)
			}
			pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			rows := int64(bytes.Count(want.Bytes(), []byte("\n")) - 1)
			if pf.NumRows() != rows {
				t.Errorf("answers.parquet: got %d rows, want the %d of answers.csv", pf.NumRows(), rows)
			}
			if groups := int64(len(pf.RowGroups())); groups != (rows+6999)/7000 {
				t.Errorf("answers.parquet: got %d row groups, want %d of at most 7000 rows", groups, (rows+6999)/7000)
			}
			for _, col := range []string{"model", "persona", "instrument"} {
				c, _ := pf.Schema().Lookup(col)
				for _, rg := range pf.RowGroups() {
					if !hasDictionary(rg.ColumnChunks()[c.ColumnIndex]) {
						t.Errorf("answers.parquet: column %s is not dictionary-encoded", col)
					}
				}
			}

			for _, dir := range []string{csvDir, pqDir} {
				col, err := ReadAnswers(dir, instruments, o.Study.Plans, o.Study.Pool)
				if err != nil {
					t.Fatal(err)
				}
				again := &analysis.Output{Outcome: o.Outcome, Collector: col, Study: o.Study}
				var got, gotInvalid, wantInvalid bytes.Buffer
				if err := writeAnswers(&got, again); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("%s: the answers read back write %d bytes of answers.csv, want the %d written", filepath.Base(dir), got.Len(), want.Len())
				}
				// pvqOutput's invalid answers come without raw text, the
				// game's with it.
				if len(o.Collector.Invalid()) > 0 {
					writeInvalid(&gotInvalid, col)
					writeInvalid(&wantInvalid, o.Collector)
					if !bytes.Equal(gotInvalid.Bytes(), wantInvalid.Bytes()) {
						t.Errorf("%s: invalid answers read back differ (%d bytes, want %d)", filepath.Base(dir), gotInvalid.Len(), wantInvalid.Len())
					}
				}
			}
		})
	}
}

func hasDictionary(c parquet.ColumnChunk) bool {
	pages := c.Pages()
	defer pages.Close()
	p, err := pages.ReadPage()
	if err != nil {
		return false
	}
	defer parquet.Release(p)
	return p.Dictionary() != nil
}

func TestAnswersParquetBadInput(t *testing.T) {
	o := pvqOutput(t, 20)
	in := o.Study.Plans[0].Instrument
	var good bytes.Buffer
	if err := writeAnswersParquet(&good, o); err != nil {
		t.Fatal(err)
	}
	var other bytes.Buffer
	w := parquet.NewGenericWriter[struct {
		Model string `parquet:"model"`
	}](&other)
	w.Write([]struct {
		Model string `parquet:"model"`
	}{{"m"}})
	w.Close()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good.Bytes()[:good.Len()/2], "answers.parquet"},
		{"another schema", other.Bytes(), "answers.parquet: schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "answers.parquet"), tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadAnswers(dir, map[string]*questionnaires.Instrument{in.Name: in}, o.Study.Plans, o.Study.Pool)
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrBadInput naming %q", err, tc.want)
			}
		})
	}
}

// TestScoresWorkedExample: scores.csv against scores worked out by hand.
// A values instrument with two items per value: agent 0 answers SD 1 and
// 3, everything else 4: raw SD 2, others 4; its mean over the 20 answers is
// 3.8, so MRAT SD −1.8 and +0.2 elsewhere. Agent 1 leaves its first SD
// item invalid and answers 5, everything else 2: raw SD 5 of 1 answered,
// mean 41/19, MRAT SD 2.8421, others −0.1579. Agent 2 answers no SD item:
// raw SD NA and no MRAT score at all. A traits scale of two items, the
// second reverse-keyed on 1..5: answers 5 and 1 score (5 + 5)/2 = 5.
func TestScoresWorkedExample(t *testing.T) {
	labels := []string{"a", "b", "c", "d", "e", "f"}
	vi := &questionnaires.Instrument{Name: "v20", Kind: questionnaires.KindValues, Scale: questionnaires.Scale{Min: 1, Max: 6, Labels: labels}}
	for k, v := range values.All() {
		for j := range 2 {
			vi.Items = append(vi.Items, questionnaires.Item{ID: 2*k + j + 1, Text: "item", Key: v.Code()})
		}
	}
	ti := &questionnaires.Instrument{Name: "t2", Kind: questionnaires.KindTraits, Scale: questionnaires.Scale{Min: 1, Max: 5, Labels: labels[:5]},
		Items: []questionnaires.Item{{ID: 1, Text: "x", Key: "A"}, {ID: 2, Text: "y", Key: "A", Reverse: true}}}
	var a, b [values.N + 1]int
	a[values.N], b[values.N] = 3, 1
	pool := population.NewPool([]population.Member{{Name: "all", Counts: a}, {Name: "first", Counts: b}}, 1)
	all20, both := make([]int, 20), []int{0, 1}
	for i := range all20 {
		all20[i] = i
	}
	plans := []analysis.Plan{{Model: "m", Instrument: vi, Items: all20}, {Model: "m", Instrument: ti, Items: both}}
	col := analysis.NewCollector(3, plans)
	answers := [][]uint8{ // codes: answer − 1 + 1 on these 1-based scales
		append([]uint8{1, 3}, bytes.Repeat([]byte{4}, 18)...),
		append([]uint8{0, 5}, bytes.Repeat([]byte{2}, 18)...),
		append([]uint8{0, 0}, bytes.Repeat([]byte{3}, 18)...),
	}
	for it := range 20 {
		codes := []uint8{answers[0][it], answers[1][it], answers[2][it]}
		if err := col.Add(&agent.Batch{Model: "m", Instrument: "v20", Item: it, Codes: codes}); err != nil {
			t.Fatal(err)
		}
	}
	col.Add(&agent.Batch{Model: "m", Instrument: "t2", Item: 0, Codes: []uint8{5, 0, 0}})
	col.Add(&agent.Batch{Model: "m", Instrument: "t2", Item: 1, Codes: []uint8{1, 0, 0}})
	o := &analysis.Output{Collector: col, Study: &analysis.Study{Pool: pool, Plans: plans,
		Models: []analysis.ModelInfo{{Name: "m", Priming: "priming", Style: "name"}}}}
	var buf bytes.Buffer
	if err := writeScores(&buf, o); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, buf.Bytes())
	if got := strings.Join(rows[0], ","); got != scoresHeader {
		t.Fatalf("header: got %q, want %q", got, scoresHeader)
	}
	// 3 agents in "all" and 1 in "first", 10 value scales and 1 trait scale.
	if got, want := len(rows)-1, 4*11; got != want || int64(want) != scoreRows(o) {
		t.Fatalf("got %d rows (scoreRows %d), want %d", got, scoreRows(o), want)
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[1]+"/"+r[2]+"/"+r[6]+"/"+r[7]] = strings.Join(append(r[3:6:6], r[8:]...), ",")
	}
	for key, want := range map[string]string{
		"all/0/v20/SD":   "none,priming,name,2.0000,-1.8000,2,2",
		"all/0/v20/UN":   "none,priming,name,4.0000,0.2000,2,2",
		"first/0/v20/SD": "none,priming,name,2.0000,-1.8000,2,2",
		"all/1/v20/SD":   "none,priming,name,5.0000,2.8421,1,2",
		"all/1/v20/BE":   "none,priming,name,2.0000,-0.1579,2,2",
		"all/2/v20/SD":   "none,priming,name,NA,NA,0,2",
		"all/2/v20/PO":   "none,priming,name,3.0000,NA,2,2",
		"all/0/t2/A":     "none,priming,name,5.0000,NA,2,2",
		"all/1/t2/A":     "none,priming,name,NA,NA,0,2",
	} {
		if got[key] != want {
			t.Errorf("%s: got %q, want %q", key, got[key], want)
		}
	}
	if _, ok := got["first/1/v20/SD"]; ok {
		t.Error("agent 1 has a row under strategy first, which it does not serve")
	}
}

// TestItemsCSV: every item of every instrument of the run, the game's
// too, with its key, reverse keying and scale.
func TestItemsCSV(t *testing.T) {
	bfi, err := questionnaires.Builtin("bfi2")
	if err != nil {
		t.Fatal(err)
	}
	o := gameOutput(t)
	o.Study.Plans = append([]analysis.Plan{{Model: "m", Instrument: bfi, Items: []int{0}}}, o.Study.Plans...)
	var buf bytes.Buffer
	if err := writeItems(&buf, o); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, buf.Bytes())
	if got := strings.Join(rows[0], ","); got != itemsHeader {
		t.Fatalf("header: got %q, want %q", got, itemsHeader)
	}
	g := o.Study.Games[0]
	if got, want := len(rows)-1, len(bfi.Items)+len(g.Probable.Items)+len(g.Decision.Items); got != want {
		t.Errorf("got %d items, want %d", got, want)
	}
	for i, it := range bfi.Items {
		r := rows[1+i]
		want := []string{"bfi2", "traits", strconv.Itoa(it.ID), it.Key, it.Facet, strconv.FormatBool(it.Reverse), it.Text, "1", "5"}
		if strings.Join(r[:9], "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("item %d: got %q, want %q", it.ID, r[:9], want)
		}
		if !strings.HasPrefix(r[9], "1="+bfi.Scale.Label(1)+" | 2=") {
			t.Errorf("item %d: labels %q", it.ID, r[9])
		}
	}
	if rows[1+len(bfi.Items)][0] != g.Probable.Name {
		t.Errorf("after bfi2: got %s, want the game's %s", rows[1+len(bfi.Items)][0], g.Probable.Name)
	}
}

// TestGamesCSV: games.csv has every agent in every round; the players with
// a partner are the round's players, partners pair up, payoffs add up to
// the round's, and answers.csv marks the same agents as having played.
func TestGamesCSV(t *testing.T) {
	o := gameOutput(t)
	var buf bytes.Buffer
	if err := writeGameDecisions(&buf, o); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, buf.Bytes())
	if got := strings.Join(rows[0], ","); got != gamesHeader {
		t.Fatalf("header: got %q, want %q", got, gamesHeader)
	}
	g := o.Outcome.Results.Games.PairedCharity[0]
	n := o.Study.Pool.Size()
	if len(rows)-1 != n*g.Rounds {
		t.Fatalf("got %d rows, want %d agents × %d rounds", len(rows)-1, n, g.Rounds)
	}
	type ra struct{ round, agent string }
	partner := map[ra]string{}
	played := map[ra]bool{}
	for r := 1; r <= g.Rounds; r++ {
		var players, satOut int
		var payoffs int64
		for _, row := range rows[1+(r-1)*n : 1+r*n] {
			if row[3] != strconv.Itoa(r) {
				t.Fatalf("round %d: a row of round %s", r, row[3])
			}
			switch {
			case row[7] == "true":
				players++
				p, _ := strconv.ParseInt(row[11], 10, 64)
				payoffs += p
				partner[ra{row[3], row[4]}] = row[8]
				played[ra{row[3], row[4]}] = true
			case row[6] == "true":
				satOut++
			}
			if row[7] == "false" && (row[8] != "" || row[11] != "") {
				t.Errorf("round %d agent %s did not play but has partner %q, payoff %q", r, row[4], row[8], row[11])
			}
		}
		want := g.PerRound[r-1]
		if players != want.Players || satOut != want.SatOut || payoffs != want.Payoffs {
			t.Errorf("round %d: got %d players, %d sat out, payoffs %d; want %d, %d, %d", r, players, satOut, payoffs, want.Players, want.SatOut, want.Payoffs)
		}
	}
	for k, p := range partner {
		if partner[ra{k.round, p}] != k.agent {
			t.Fatalf("round %s: agent %s plays %s, who plays %s", k.round, k.agent, p, partner[ra{k.round, p}])
		}
	}
	var answers bytes.Buffer
	if err := writeAnswers(&answers, o); err != nil {
		t.Fatal(err)
	}
	arows := readCSV(t, answers.Bytes())
	if got := strings.Join(arows[0], ",") + "\n"; got != answersGameHeader {
		t.Fatalf("answers.csv header: got %q, want %q", got, answersGameHeader)
	}
	notPlayed := 0
	for _, r := range arows[1:] {
		if want := strconv.FormatBool(played[ra{r[5], r[1]}]); r[8] != want {
			t.Fatalf("answers.csv row %q: played %s, want %s", r, r[8], want)
		}
		if r[8] == "false" {
			notPlayed++
		}
	}
	if notPlayed == 0 {
		t.Error("fixture: want game answers of agents who did not play")
	}
}

// TestWriteAnalystTables: a results directory of a run with a game holds
// the analyst tables, and report.md names them.
func TestWriteAnalystTables(t *testing.T) {
	o := gameOutput(t)
	o.Prompts = []analysis.PromptRow{{Model: "m", Backend: "synthetic", Mode: "distribution", Endpoint: "chat", Persona: "none",
		Style: "description", Instrument: "pvq40", Item: 1, User: "Q", Agents: 3}}
	dir := filepath.Join(t.TempDir(), "out")
	if err := Write(context.Background(), dir, o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"answers.csv", "answers.parquet", "scores.csv", "items.csv", "prompts.csv", "games.csv"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: got %v, want a file", f, err)
		}
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"`answers.parquet`", "`scores.csv`", "`items.csv`", "`prompts.csv`", "`games.csv`", "`played` false"} {
		if !bytes.Contains(report, []byte(want)) {
			t.Errorf("report.md does not mention %s", want)
		}
	}
}

// TestAnswersParquetStopsWhenCancelled: the Parquet writer, which runs
// beside the other files, gives up between chunks once told to.
func TestAnswersParquetStopsWhenCancelled(t *testing.T) {
	tab, err := newAnswerTable(pvqOutput(t, 10))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tab.writeParquet(ctx, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
