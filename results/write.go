package results

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/values"
)

// GzipAnswersAbove is the number of answer rows above which answers.csv is
// written gzip-compressed as answers.csv.gz (about 30 MB of text).
const GzipAnswersAbove = 1_000_000

// Write writes a complete results directory at dir. It writes into a
// sibling temporary directory and renames it into place only when every
// file is complete, so a crash or an error never leaves a half-written dir;
// an existing dir is replaced. It stops between files and figures once ctx
// is done (the figures of a large study take tens of seconds), returning
// ctx's error and leaving dir as it was.
func Write(ctx context.Context, dir string, o *analysis.Output) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	host := hostToken()
	cleanStalePartials(parent, host)
	tmp, err := os.MkdirTemp(parent, partialPrefix(filepath.Base(dir), cmp.Or(host, "unknown"), os.Getpid()))
	if err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	err = writeAll(ctx, tmp, o)
	if err == nil {
		err = writeManifest(tmp)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := ctx.Err(); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("results dir: %w", err)
	}
	var old string
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("results dir: replace %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("results dir: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

func writeAll(ctx context.Context, dir string, o *analysis.Output) error {
	answers, err := newAnswerTable(o)
	if err != nil {
		return err
	}
	// answers.parquet takes a core of its own while the other files are
	// written: at 40 million answers it is the longest file to write, and
	// one goroutine of encoding and compression is all parquet-go's
	// writer does. The goroutine stops at the next chunk of rows when the
	// other files fail or ctx is done.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parquetDone := make(chan error, 1) // the goroutine never waits for the reader
	go func() {
		parquetDone <- writeFile(filepath.Join(dir, "answers.parquet"), func(w io.Writer) error { return answers.writeParquet(pctx, w) })
	}()
	err = writeOthers(ctx, dir, o, answers)
	if err != nil {
		cancel()
	}
	if perr := <-parquetDone; err == nil {
		err = perr
	}
	return err
}

// writeOthers writes every file of the results directory but
// answers.parquet.
func writeOthers(ctx context.Context, dir string, o *analysis.Output, answers *answerTable) error {
	steps := []struct {
		name string
		fn   func(io.Writer) error
	}{
		{"results.json", func(w io.Writer) error { return writeJSON(w, &o.Outcome.Results) }},
		{"scenario.toml", func(w io.Writer) error { _, err := w.Write(o.Scenario); return err }},
		{"population.csv", func(w io.Writer) error { return writePopulation(w, o.Study.Pool) }},
		{"invalid.jsonl", func(w io.Writer) error { return writeInvalid(w, o.Collector) }},
		{"value_structure.csv", func(w io.Writer) error { return writeValueStructure(w, o.Outcome.Results.ValueStructure) }},
	}
	type step = struct {
		name string
		fn   func(io.Writer) error
	}
	if o.Outcome.Results.Answers.Expected > GzipAnswersAbove {
		steps = append(steps, step{"answers.csv.gz", answers.writeGzip})
	} else {
		steps = append(steps, step{"answers.csv", answers.writeCSV})
	}
	if scoreRows(o) > GzipAnswersAbove {
		steps = append(steps, step{"scores.csv.gz", func(w io.Writer) error { return writeScoresGzip(w, o) }})
	} else {
		steps = append(steps, step{"scores.csv", func(w io.Writer) error { return writeScores(w, o) }})
	}
	steps = append(steps, step{"items.csv", func(w io.Writer) error { return writeItems(w, o) }})
	if len(o.Prompts) > 0 {
		steps = append(steps, step{"prompts.csv", func(w io.Writer) error { return writePrompts(w, o.Prompts) }})
	}
	if len(o.Study.Games) > 0 {
		steps = append(steps, step{"games.csv", func(w io.Writer) error { return writeGameDecisions(w, o) }})
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, s.name), s.fn); err != nil {
			return err
		}
	}
	var figures []string
	for _, m := range o.Outcome.Maps {
		if err := ctx.Err(); err != nil {
			return err
		}
		base := fmt.Sprintf("mds_%s_%s", fileToken(m.Model), fileToken(m.Strategy))
		title := fmt.Sprintf("%s, %s vs %s (similarity %.2f)", m.Model, m.Strategy, m.Reference, m.Similarity)
		if err := PlotMDS(m.Human, m.Fitted, values.Codes(), title, filepath.Join(dir, base)); err != nil {
			return fmt.Errorf("figure %s: %w", base, err)
		}
		figures = append(figures, base)
	}
	paper, err := writePaperFiles(ctx, dir, o)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeGames(dir, &o.Outcome.Results); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "report.md"), func(w io.Writer) error {
		return writeReport(w, o, figures, paper)
	})
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fn(bw); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func fileToken(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writePopulation(w io.Writer, p *population.Pool) error {
	if _, err := io.WriteString(w, "agent,persona,strategy\n"); err != nil {
		return err
	}
	var buf []byte
	names := make([]string, len(p.Strategies))
	for si, m := range p.Strategies {
		names[si] = csvField(m.Name)
	}
	for a := range p.Size() {
		for si := range p.Strategies {
			if !p.In(si, a) {
				continue
			}
			buf = strconv.AppendInt(buf[:0], int64(a), 10)
			buf = append(buf, ',')
			buf = append(buf, p.Persona[a].Code()...)
			buf = append(buf, ',')
			buf = append(buf, names[si]...)
			buf = append(buf, '\n')
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedInvalid(c *analysis.Collector) []analysis.InvalidAnswer {
	iv := c.Invalid()
	slices.SortFunc(iv, func(a, b analysis.InvalidAnswer) int {
		if c := strings.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		if c := strings.Compare(a.Instrument, b.Instrument); c != 0 {
			return c
		}
		if a.Round != b.Round {
			return a.Round - b.Round
		}
		if a.Item != b.Item {
			return a.Item - b.Item
		}
		return a.Agent - b.Agent
	})
	return iv
}

func writeInvalid(w io.Writer, c *analysis.Collector) error {
	enc := json.NewEncoder(w)
	for _, iv := range sortedInvalid(c) {
		if err := enc.Encode(iv); err != nil {
			return err
		}
	}
	return nil
}

// answersHeader is the first line of answers.csv; answersGameHeader is
// it in a run that played a game, whose rows say whether the agent played
// the round the answer belongs to (empty for questionnaire rows).
const (
	answersHeader     = "model,agent,persona,instrument,item,round,answer,valid\n"
	answersGameHeader = "model,agent,persona,instrument,item,round,answer,valid,played\n"
)

// answerTable is the rows of answers.csv (and answers.parquet), cut into
// chunks in file order.
type answerTable struct {
	o      *analysis.Output
	chunks []answerChunk
	// games: the run played a game, so rows carry the played column.
	games bool
	// rowGroup is the most rows a row group of answers.parquet holds.
	rowGroup int64
}

// newAnswerTable lays out the answers of o. A run with games replays them
// to learn who played each round.
func newAnswerTable(o *analysis.Output) (*answerTable, error) {
	t := &answerTable{o: o, games: len(o.Study.Games) > 0, rowGroup: parquetRowGroup}
	var plays map[sheetRef][]uint64
	if t.games {
		var err error
		if plays, err = gamePlays(o); err != nil {
			return nil, err
		}
	}
	t.chunks = answerChunks(o, plays)
	return t, nil
}

func (t *answerTable) header() string {
	if t.games {
		return answersGameHeader
	}
	return answersHeader
}

func (t *answerTable) writeCSV(w io.Writer) error {
	if _, err := io.WriteString(w, t.header()); err != nil {
		return err
	}
	var text []byte
	for _, c := range t.chunks {
		text = t.appendRows(text[:0], c)
		if _, err := w.Write(text); err != nil {
			return err
		}
	}
	return nil
}

// answerChunk is a run of answers.csv rows: the agents lo..hi-1 of a sheet.
type answerChunk struct {
	sheet  *analysis.Sheet
	lo, hi int
	// played has a bit per agent, set when the agent played the round (a
	// partner was drawn for it); nil for a sheet of no game.
	played []uint64
}

// answerChunkBytes is the text one chunk of answers.csv holds, about: big
// enough that compressing a chunk costs far more than handing it to a
// core, small enough that a few chunks per core stay in memory.
const answerChunkBytes = 4 << 20

// answerChunks cuts the rows of answers.csv into chunks, in file order.
// The cut depends only on the sheets, so the file is the same however
// many cores write it. plays are the game sheets' played bits.
func answerChunks(o *analysis.Output, plays map[sheetRef][]uint64) []answerChunk {
	var out []answerChunk
	agents := o.Collector.Agents()
	for _, sh := range o.Collector.Sheets(o.Study.Plans) {
		row := 40 + len(sh.Model) + len(sh.Instrument.Name) // bytes, a generous guess
		per := max(1, answerChunkBytes/(row*max(1, len(sh.Items))))
		played := plays[sheetRef{sh.Model, sh.Instrument.Name, sh.Round}]
		for lo := 0; lo < agents; lo += per {
			out = append(out, answerChunk{sheet: sh, lo: lo, hi: min(lo+per, agents), played: played})
		}
	}
	return out
}

// appendRows appends the rows of chunk c to dst. A row is the agent's
// prefix (model, agent, persona, instrument), the item's part (item,
// round), the answer's part (answer, valid) and the end (played and the
// line break), each made once and copied per row.
func (t *answerTable) appendRows(dst []byte, c answerChunk) []byte {
	o := t.o
	sh := c.sheet
	n := len(sh.Instrument.Items)
	round := strconv.Itoa(sh.Round)
	items := make([][]byte, len(sh.Items))
	for k, it := range sh.Items {
		items[k] = append(strconv.AppendInt(nil, int64(sh.Instrument.Items[it].ID), 10), ","+round+","...)
	}
	// Codes are bytes: code 0 is an invalid answer, any other code c the
	// value c-1+Scale.Min.
	var answers [256][]byte
	answers[0] = []byte(",false")
	for code := 1; code < len(answers); code++ {
		answers[code] = append(strconv.AppendInt(nil, int64(code-1+sh.Instrument.Scale.Min), 10), ",true"...)
	}
	end := "\n"
	if t.games {
		end = ",\n"
	}
	pool := o.Study.Pool
	model, instrument := csvField(sh.Model), csvField(sh.Instrument.Name)
	var prefix []byte
	for a := c.lo; a < c.hi; a++ {
		prefix = append(prefix[:0], model...)
		prefix = append(prefix, ',')
		prefix = strconv.AppendInt(prefix, int64(a), 10)
		prefix = append(prefix, ',')
		prefix = append(prefix, pool.Persona[a].Code()...)
		prefix = append(prefix, ',')
		prefix = append(prefix, instrument...)
		prefix = append(prefix, ',')
		if c.played != nil {
			end = ",false\n"
			if c.played[a/64]&(1<<(a%64)) != 0 {
				end = ",true\n"
			}
		}
		codes := sh.Codes[a*n : (a+1)*n]
		for k, it := range sh.Items {
			dst = append(dst, prefix...)
			dst = append(dst, items[k]...)
			dst = append(dst, answers[codes[it]]...)
			dst = append(dst, end...)
		}
	}
	return dst
}

// writeGzip writes answers.csv gzip-compressed on every core. Each
// chunk of rows becomes its own gzip member; members written one after
// another form one valid gzip file (RFC 1952, section 2.2), which gunzip,
// zcat and Go's gzip.Reader read as the whole text. Workers format and
// compress chunks; the writer takes them in file order, and at most
// 2·GOMAXPROCS chunks are in memory at once.
func (t *answerTable) writeGzip(w io.Writer) error {
	chunks := t.chunks
	if len(chunks) == 0 {
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if _, err := io.WriteString(zw, t.header()); err != nil {
			return err
		}
		return zw.Close()
	}
	type member struct {
		data []byte
		err  error
	}
	done := make([]chan member, len(chunks))
	for i := range done {
		done[i] = make(chan member, 1) // the worker never waits for the writer
	}
	workers := runtime.GOMAXPROCS(0)
	tokens := make(chan struct{}, 2*workers) // chunks handed out and not yet written
	jobs := make(chan int)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		for i := range chunks {
			select {
			case tokens <- struct{}{}:
			case <-stop:
				return
			}
			select {
			case jobs <- i:
			case <-stop:
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var text []byte
			var zb bytes.Buffer
			// Answers repeat a lot; speed matters more than the last percent.
			zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
			for i := range jobs {
				text = text[:0]
				if i == 0 {
					text = append(text, t.header()...)
				}
				text = t.appendRows(text, chunks[i])
				zb.Reset()
				zw.Reset(&zb)
				_, err := zw.Write(text)
				if err == nil {
					err = zw.Close()
				}
				done[i] <- member{data: bytes.Clone(zb.Bytes()), err: err}
			}
		}()
	}
	var err error
	for i := range chunks {
		m := <-done[i]
		if err = m.err; err == nil {
			_, err = w.Write(m.data)
		}
		if err != nil {
			break
		}
		<-tokens
	}
	close(stop)
	wg.Wait()
	return err
}

func writeValueStructure(w io.Writer, rows []analysis.ValueStructureRow) error {
	t := newCSVTable(w, "model,strategy,instrument,reference,agents,values_similarity,bootstrap_mean,ci95_low,ci95_high,"+inferenceHeader)
	for _, r := range rows {
		t.row(append([]string{r.Model, r.Strategy, r.Instrument, r.Reference, strconv.Itoa(r.Agents),
			fmtNum(r.ValuesSimilarity, 4), fmtNum(r.BootstrapMean, 4), fmtNum(r.CI95[0], 4), fmtNum(r.CI95[1], 4)}, inferenceFields(r.Inference)...)...)
	}
	return t.close()
}

func fmtNum(n analysis.Num, prec int) string {
	b, _ := n.MarshalJSON()
	if string(b) == "null" {
		return "NA"
	}
	return strconv.FormatFloat(float64(n), 'f', prec, 64)
}

// inferenceHeader names the CSV columns of an Inference, inferenceCSV
// writes them.
const inferenceHeader = "p_value,p_value_resolution,null_mean,null_ci95_low,null_ci95_high,random_mean,random_ci95_low,random_ci95_high,p_value_paper_ttest"

// inferenceFields are the CSV fields of inferenceHeader.
func inferenceFields(in analysis.Inference) []string {
	return []string{fmtP(in.PValue), fmtP(in.PValueResolution), fmtNum(in.NullMean, 4), fmtNum(in.NullCI95[0], 4),
		fmtNum(in.NullCI95[1], 4), fmtNum(in.RandomMean, 4), fmtNum(in.RandomCI95[0], 4), fmtNum(in.RandomCI95[1], 4),
		fmtP(in.PValuePaperTTest)}
}

// fmtP writes a p-value for a CSV file: a number (four significant
// digits, never rounded to 0), or NA.
func fmtP(p analysis.Prob) string {
	f := float64(p)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "NA"
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

// fmtPText writes a permutation p-value for a person: at its resolution
// (no null value reached the observed one) as "≤ resolution", since the
// permutations cannot tell smaller p-values apart.
func fmtPText(p, resolution analysis.Prob) string {
	f, r := float64(p), float64(resolution)
	switch {
	case math.IsNaN(f):
		return "NA"
	case !math.IsNaN(r) && f <= r*(1+1e-9):
		return "≤ " + strconv.FormatFloat(r, 'g', 3, 64)
	}
	return strconv.FormatFloat(f, 'g', 3, 64)
}

func writeReport(w io.Writer, o *analysis.Output, figures []string, paper paperFigures) error {
	r := &o.Outcome.Results
	b := &strings.Builder{}
	fmt.Fprintf(b, "# %s\n\n", r.Scenario)
	if r.Note != "" {
		fmt.Fprintf(b, "> **Synthetic respondents.** %s\n\n", r.Note)
	}
	for _, mr := range r.ModelRuns {
		if w := analysis.MostlyInvalidWarning(mr); w != "" {
			fmt.Fprintf(b, "> **%s**\n\n", w)
		}
	}
	if lines := analysis.RunLines(r.Run); len(lines) > 0 {
		b.WriteString("## Run\n\n")
		for _, l := range lines {
			b.WriteString("- " + l + "\n")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "Seed %d. Models:\n\n", r.Seed)
	for _, m := range r.Models {
		label := analysis.BackendLabel(m.Backend, m.Synthetic)
		if m.Model != "" {
			label += " `" + m.Model + "`"
		}
		mode := m.Mode
		for _, mr := range r.ModelRuns {
			if mr.Model == m.Name {
				mode = mr.QueryMode
			}
		}
		fmt.Fprintf(b, "- **%s**: %s, %s mode", m.Name, label, mode)
		if m.Priming != "" || m.Style != "" {
			fmt.Fprintf(b, ", priming %s, style %s", m.Priming, m.Style)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## Population\n\n| strategy | agents |")
	for _, c := range values.Codes() {
		b.WriteString(" " + c + " |")
	}
	b.WriteString(" none |\n|---|---:|")
	b.WriteString(strings.Repeat("---:|", values.N+1))
	b.WriteString("\n")
	for _, p := range r.Population {
		fmt.Fprintf(b, "| %s | %d |", p.Strategy, p.Size)
		for _, c := range append(values.Codes(), "none") {
			fmt.Fprintf(b, " %d |", p.Counts[c])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "\nAnswers: %d expected, %d valid, %d invalid.\n", r.Answers.Expected, r.Answers.Valid, r.Answers.Invalid)
	fmt.Fprintf(b, "Model calls: %d made, %d saved by the cache (cache_hits), %d answers reused from a reply beyond its first; retries: %d.\n",
		r.LLM.Calls, r.LLM.CacheHits, r.LLM.AnswersReused, r.LLM.Retries)
	if len(r.ModelRuns) > 0 {
		b.WriteString("\n## Model runs\n\nWhat each model really did: its query mode (with the questions that fell back from distributions to sampling), " +
			"traffic, the mean probability mass the answer options covered in the distributions its answers came from (fetched or read from the cache), and its invalid answers with their most frequent reasons.\n\n")
		for _, mr := range r.ModelRuns {
			b.WriteString("- " + analysis.ModelRunLine(mr) + "\n")
		}
	}

	fmt.Fprintf(b, "\nValues similarity: %s (`analysis.mds = \"%s\"`).\n", r.MDS.Describe(), r.MDSMethod())
	for _, w := range r.UndefinedSimilarities() {
		b.WriteString("\n**WARNING: " + w + "**\n")
	}
	b.WriteString(paperTables(o))
	b.WriteString("\n## Values similarity against every reference\n\n")
	b.WriteString("Similarity of the population's value structure to each human reference: the 10×10 correlation matrix of value scores, " +
		r.MDS.Describe() + " to two dimensions, Procrustes fit onto the human configuration, 1 − normalised disparity. " +
		"Brackets: 95% bootstrap interval (" + r.Bootstrap.Label + "; " + r.Bootstrap.Interval + "). " +
		"p: permutation p-value against a null without value structure (" + r.Bootstrap.Null + "; " +
		strconv.Itoa(r.Bootstrap.NullIterations) + " permutations, so p ≥ 1/" + strconv.Itoa(r.Bootstrap.NullIterations+1) +
		", shown as ≤ that when no permutation reached the figure); null: the null's mean. " +
		"value_structure.csv also has the null's interval, a random-responder baseline and the study's t-test (p_value_paper_ttest).\n\n")
	b.WriteString(ValueStructureTable(r.ValueStructure))
	if len(figures) > 0 {
		b.WriteString("\n## Value maps\n\nHuman configuration (hollow) and the population's, fitted onto it (filled).\n\n")
		for _, f := range figures {
			fmt.Fprintf(b, "![%s](%s.png)\n\n", f, f)
		}
	}
	b.WriteString(paperFigureSections(o, paper))
	b.WriteString(gamesSection(r))
	b.WriteString("\n## Files\n\n`results.json` (machine-readable), `answers.csv` (or `.csv.gz`), `population.csv`, `invalid.jsonl`, " +
		"`value_structure.csv`, `value_behavior.csv`, `persona_agreement.csv` and `calibration.csv` (when the run has them), " +
		"`instruments/` and `references/` (the instruments and published references that are not built in, for `society report`), " +
		"`scenario.toml` (the exact scenario, to run again), figures as PNG and SVG.\n\n" +
		"Tables for analysis:\n\n" +
		"- `answers.parquet`: the rows of answers.csv, typed (answer null when invalid), text columns dictionary-encoded; " +
		"`society report` reads it when present.\n" +
		"- `scores.csv` (`.csv.gz` when large): one row per model, strategy, agent, instrument and scale: the raw mean of the agent's valid answers " +
		"to the scale's items (reverse-keyed items recoded), the MRAT-centred score for value instruments (NA when a value has no valid answer: " +
		"the analysis leaves that agent out), the items answered and asked. An agent serving several strategies has a row under each.\n" +
		"- `items.csv`: every item of every instrument of the run: number, key (value or scale), facet, reverse keying, text, scale and labels.\n")
	if len(o.Prompts) > 0 {
		b.WriteString("- `prompts.csv`: every distinct prompt the agents asked a model, its system and user text as sent (for a completions " +
			"endpoint the whole prompt in `user`), with the answers it served and, in sample mode, the completions drawn for it. " +
			"The synthetic respondents read no prompt: their rows are what a served model would have been sent.\n")
	}
	if len(o.Study.Games) > 0 {
		b.WriteString("- `games.csv`: every agent in every round of every game: partner, probable choice, final decision, the round's payoff, " +
			"and `player` (the agent belongs to the playing strategy) and `played` (it played this round). Every agent is asked each round, " +
			"so that prompts are shared, but only players with a partner count: in a run with games answers.csv and answers.parquet mark " +
			"the game rows of agents who did not play the round (other strategies' agents, the player sitting out) with `played` false; " +
			"they are kept, not left out, because the round's prompt statistics and the rebuild by `society report` use every agent's answers. " +
			"`played` is empty on questionnaire rows.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ValueStructureTable lays out value-structure rows as a Markdown table:
// one row per model and strategy, one column per reference.
func ValueStructureTable(rows []analysis.ValueStructureRow) string {
	var refs []string
	type rk struct{ model, strategy, instrument string }
	var order []rk
	cells := map[rk]map[string]analysis.ValueStructureRow{}
	for _, r := range rows {
		if !slices.Contains(refs, r.Reference) {
			refs = append(refs, r.Reference)
		}
		k := rk{r.Model, r.Strategy, r.Instrument}
		if cells[k] == nil {
			cells[k] = map[string]analysis.ValueStructureRow{}
			order = append(order, k)
		}
		cells[k][r.Reference] = r
	}
	b := &strings.Builder{}
	b.WriteString("| model | strategy | agents |")
	for _, ref := range refs {
		b.WriteString(" " + ref + " |")
	}
	b.WriteString("\n|---|---|---:|" + strings.Repeat("---|", len(refs)) + "\n")
	for _, k := range order {
		n := 0
		for _, r := range cells[k] {
			n = r.Agents
		}
		fmt.Fprintf(b, "| %s | %s | %d |", k.model, k.strategy, n)
		for _, ref := range refs {
			r, ok := cells[k][ref]
			if !ok {
				b.WriteString(" |")
				continue
			}
			fmt.Fprintf(b, " %s [%s, %s] p %s; null %s |", fmtNum(r.ValuesSimilarity, 3), fmtNum(r.CI95[0], 3), fmtNum(r.CI95[1], 3),
				fmtPText(r.PValue, r.PValueResolution), fmtNum(r.NullMean, 2))
		}
		b.WriteString("\n")
	}
	return b.String()
}
