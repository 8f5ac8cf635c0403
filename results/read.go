package results

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// The reader gives back what a run stored in its results directory —
// scenario.toml, population.csv, answers.csv (or .gz), invalid.jsonl, and
// the instruments and references kept under instruments/ and references/ —
// so that "society report" can rebuild the report, tables and figures
// without calling any model.

// ErrBadInput is wrapped by every error about a results directory's
// content: a file that is missing, malformed or inconsistent with the
// others.
var ErrBadInput = errors.New("bad input")

// rawFiles are the stored inputs a rebuild reads and never replaces.
var rawFiles = []string{"answers.parquet", "answers.csv", "answers.csv.gz", "population.csv", "invalid.jsonl", "scenario.toml"}

// StoredInputs rewrites the scenario to use the copies of its instruments
// and references that the results directory keeps, so that a rebuild needs
// neither the original files nor the persona data set, and drops the
// models' API key variables: nothing is called. It works on the TOML
// itself, before the scenario is validated, because validation checks that
// the original files exist.
func StoredInputs(dir string, resolved []byte) ([]byte, error) {
	if line := questionnaires.TOMLTooDeep(resolved, questionnaires.MaxNesting); line > 0 {
		return nil, fmt.Errorf("line %d: arrays or tables nested more than %d deep", line, questionnaires.MaxNesting)
	}
	var doc map[string]any
	if _, err := toml.Decode(string(resolved), &doc); err != nil {
		return nil, err
	}
	qs, _ := doc["questionnaires"].([]map[string]any)
	for _, q := range qs {
		name, _ := q["name"].(string)
		if file, ok := q["file"].(string); ok {
			if in, err := questionnaires.Load(file); err == nil {
				name = in.Name
			}
		}
		path := questionnaires.StoredPath(dir, name)
		if !fileExists(path) {
			continue
		}
		for _, k := range []string{"dir", "download", "optional", "behaviors", "statements"} {
			delete(q, k)
		}
		q["file"] = path
	}
	if an, ok := doc["analysis"].(map[string]any); ok {
		refs, _ := an["behavior_references"].([]map[string]any)
		for _, r := range refs {
			inst, _ := r["instrument"].(string)
			name, _ := r["name"].(string)
			if path := StoredReferencePath(dir, inst, name); fileExists(path) {
				r["file"] = path
			}
		}
	}
	ms, _ := doc["models"].([]map[string]any)
	for _, m := range ms {
		delete(m, "api_key_env")
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// ReadPrevious reads the figures of results.json that answers cannot give
// back; nil when there is no results.json.
func ReadPrevious(path string) (*analysis.Results, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r analysis.Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadInput, path, err)
	}
	return &r, nil
}

// ReadPopulation rebuilds the pool from population.csv: each agent's
// persona and the strategies it serves. Strategies keep the plan's order;
// every strategy must use the first agents of each persona (as
// population.Pool always does), which the file is checked against.
func ReadPopulation(path string, planned *population.Pool) (*population.Pool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	defer f.Close()
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrBadInput, path, line, fmt.Sprintf(format, args...))
	}
	names := make([]string, len(planned.Strategies))
	for i, m := range planned.Strategies {
		names[i] = m.Name
	}
	var personas []values.Value
	type membership struct{ agent, strategy, line int }
	var member []membership
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != "agent,persona,strategy" {
				return nil, fail(line, "header is %q, want agent,persona,strategy", text)
			}
			continue
		}
		parts := strings.Split(text, ",")
		if len(parts) != 3 {
			return nil, fail(line, "want 3 fields (agent,persona,strategy), got %d", len(parts))
		}
		a, err := strconv.Atoi(parts[0])
		if err != nil || a < 0 || a > len(personas) {
			return nil, fail(line, "agent %q: want agents numbered from 0 in order", parts[0])
		}
		v, err := values.Parse(parts[1])
		if err != nil {
			return nil, fail(line, "%v", err)
		}
		if a == len(personas) {
			personas = append(personas, v)
		} else if personas[a] != v {
			return nil, fail(line, "agent %d has persona %s here and %s before", a, v, personas[a])
		}
		s := slices.Index(names, parts[2])
		if s < 0 {
			return nil, fail(line, "strategy %q is not one of the scenario's (%s)", parts[2], strings.Join(names, ", "))
		}
		member = append(member, membership{a, s, line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadInput, path, err)
	}
	pool := &population.Pool{Persona: personas, Rank: make([]int32, len(personas)), Strategies: make([]population.Member, len(names))}
	var next [values.N + 1]int32
	for a, v := range personas {
		pool.Rank[a] = next[population.Index(v)]
		next[population.Index(v)]++
	}
	for i, n := range names {
		pool.Strategies[i].Name = n
	}
	for _, m := range member {
		pool.Strategies[m.strategy].Counts[population.Index(personas[m.agent])]++
	}
	for _, m := range member {
		if !pool.In(m.strategy, m.agent) {
			return nil, fail(m.line, "agent %d serves %s out of its persona's order; the file does not come from a run", m.agent, names[m.strategy])
		}
	}
	return pool, nil
}

// answerKey names one item's answers.
type answerKey struct {
	model, instrument string
	round, item       int
}

type invalidKey struct {
	answerKey
	agent int
}

// answerRow is one row of answers.csv or answers.parquet, parsed.
type answerRow struct {
	model, persona, instrument string
	agent, item, round         int
	answer                     int
	valid                      bool
}

// ReadAnswers fills a collector from answers.parquet when the directory
// has one, else from answers.csv (or .gz), and the raw text of the invalid
// answers from invalid.jsonl. instruments are the scenario's by name and
// plans the study's answer plans; pool is ReadPopulation's.
func ReadAnswers(dir string, instruments map[string]*questionnaires.Instrument, plans []analysis.Plan, pool *population.Pool) (*analysis.Collector, error) {
	raw, err := readInvalid(filepath.Join(dir, "invalid.jsonl"))
	if err != nil {
		return nil, err
	}
	n := pool.Size()
	batches := map[answerKey]*agent.Batch{}
	var order []answerKey
	// add checks a row against the scenario and the population and stores
	// it; fail names the row's place in its file.
	add := func(r *answerRow, fail func(format string, args ...any) error) error {
		in, ok := instruments[r.instrument]
		switch {
		case !ok:
			return fail("instrument %q is not one of the scenario's", r.instrument)
		case r.agent < 0 || r.agent >= n:
			return fail("agent %d: want 0 to %d", r.agent, n-1)
		case r.item < 1 || r.item > len(in.Items):
			return fail("item %d: %s has items 1 to %d", r.item, in.Name, len(in.Items))
		case r.round < 0:
			return fail("round %d: want a round number", r.round)
		case r.persona != pool.Persona[r.agent].Code():
			return fail("agent %d has persona %s, but population.csv says %s", r.agent, r.persona, pool.Persona[r.agent].Code())
		}
		k := answerKey{r.model, in.Name, r.round, r.item - 1}
		b := batches[k]
		if b == nil {
			b = &agent.Batch{Model: k.model, Instrument: k.instrument, Item: k.item, Round: r.round, Codes: make([]uint8, n)}
			batches[k] = b
			order = append(order, k)
		}
		if r.valid {
			if !in.Scale.Valid(r.answer) {
				return fail("answer \"%d\" is not on the %d..%d scale of %s", r.answer, in.Scale.Min, in.Scale.Max, in.Name)
			}
			b.Codes[r.agent] = uint8(r.answer - in.Scale.Min + 1)
			return nil
		}
		iv := raw[invalidKey{answerKey{k.model, k.instrument, r.round, r.item}, r.agent}]
		iv.Agent = r.agent
		if iv.Reason == "" {
			iv.Reason = "invalid (raw text not in invalid.jsonl)"
		}
		b.Invalid = append(b.Invalid, iv)
		return nil
	}
	path := filepath.Join(dir, "answers.parquet")
	if fileExists(path) {
		err = readAnswersParquet(path, add)
	} else {
		path, err = readAnswersCSV(dir, add)
	}
	if err != nil {
		return nil, err
	}
	col := analysis.NewCollector(n, plans)
	for _, k := range order {
		if err := col.Add(batches[k]); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadInput, path, err)
		}
	}
	return col, nil
}

// readAnswersCSV reads answers.csv, or answers.csv.gz, row by row into
// add, and returns the path it read.
func readAnswersCSV(dir string, add func(*answerRow, func(string, ...any) error) error) (string, error) {
	path := filepath.Join(dir, "answers.csv")
	var r io.Reader
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		path += ".gz"
		f, err = os.Open(path)
	}
	if err != nil {
		return path, fmt.Errorf("%w: %s: no answers.parquet, answers.csv or answers.csv.gz: %v", ErrBadInput, dir, err)
	}
	defer f.Close()
	r = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return path, fmt.Errorf("%w: %s: %v", ErrBadInput, path, err)
		}
		defer zr.Close()
		r = zr
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	fail := func(format string, args ...any) error {
		line, _ := cr.FieldPos(0)
		return fmt.Errorf("%w: %s:%d: %s", ErrBadInput, path, line, fmt.Sprintf(format, args...))
	}
	header := true
	fields := 0
	var row answerRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return path, nil
		}
		if err != nil {
			return path, fmt.Errorf("%w: %s: %v", ErrBadInput, path, err)
		}
		if header {
			header = false
			// Runs that played a game add the played column, which the
			// rebuild does not need: the game's replay knows who played.
			switch h := strings.Join(rec, ","); h + "\n" {
			case answersHeader, answersGameHeader:
				fields = len(rec)
			default:
				return path, fail("header is %q, want %s", h, strings.TrimSuffix(answersHeader, "\n"))
			}
			continue
		}
		if len(rec) != fields {
			return path, fail("want %d fields, got %d", fields, len(rec))
		}
		a, err1 := strconv.Atoi(rec[1])
		id, err2 := strconv.Atoi(rec[4])
		round, err3 := strconv.Atoi(rec[5])
		switch {
		case err1 != nil:
			return path, fail("agent %q: want a number", rec[1])
		case err2 != nil:
			return path, fail("item %q: want an item number", rec[4])
		case err3 != nil:
			return path, fail("round %q: want a round number", rec[5])
		}
		row = answerRow{model: rec[0], agent: a, persona: rec[2], instrument: rec[3], item: id, round: round}
		switch rec[7] {
		case "true":
			x, err := strconv.Atoi(rec[6])
			if err != nil {
				return path, fail("answer %q: want a number", rec[6])
			}
			row.answer, row.valid = x, true
		case "false":
		default:
			return path, fail("valid is %q, want true or false", rec[7])
		}
		if err := add(&row, fail); err != nil {
			return path, err
		}
	}
}

func readInvalid(path string) (map[invalidKey]agent.Invalid, error) {
	out := map[invalidKey]agent.Invalid{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for line := 1; sc.Scan(); line++ {
		var iv analysis.InvalidAnswer
		if err := json.Unmarshal(sc.Bytes(), &iv); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrBadInput, path, line, err)
		}
		out[invalidKey{answerKey{iv.Model, iv.Instrument, iv.Round, iv.Item}, iv.Agent}] = agent.Invalid{Agent: iv.Agent, Raw: iv.Raw, RawBytes: iv.RawBytes, Reason: iv.Reason}
	}
	return out, sc.Err()
}

// Rewrite writes the rebuilt directory beside dir and moves every
// derived file into dir, leaving the stored inputs (and anything else in
// dir) as they are.
func Rewrite(ctx context.Context, dir string, o *analysis.Output) error {
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(dir)+".report-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	built := filepath.Join(tmp, "out")
	if err := Write(ctx, built, o); err != nil {
		return err
	}
	entries, err := os.ReadDir(built)
	if err != nil {
		return err
	}
	for _, e := range entries {
		// Stored inputs stay as they are; answers.parquet, new to a
		// directory written before it existed, is added.
		if slices.Contains(rawFiles, e.Name()) && (e.Name() != "answers.parquet" || fileExists(filepath.Join(dir, e.Name()))) {
			continue
		}
		dst := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		}
		if err := os.Rename(filepath.Join(built, e.Name()), dst); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	return nil
}

// PreviousModels keeps what only the run could know about its models:
// what their servers said about themselves and their traffic, since a
// rebuild makes no call.
func PreviousModels(models []analysis.ModelInfo, prev *analysis.Results) ([]analysis.ModelInfo, map[string]analysis.ModelTraffic) {
	out := slices.Clone(models)
	for i := range out {
		for _, m := range prev.Models {
			if m.Name == out[i].Name {
				out[i].Synthetic = out[i].Synthetic || m.Synthetic
				out[i].ServedModel, out[i].SystemFingerprint = m.ServedModel, m.SystemFingerprint
			}
		}
	}
	traffic := map[string]analysis.ModelTraffic{}
	for _, r := range prev.ModelRuns {
		if l := r.LLM; l != nil {
			sum := 0.0
			if l.Distributions > 0 {
				sum = float64(l.CoveredMass) * float64(l.Distributions)
			}
			traffic[r.Model] = analysis.ModelTraffic{Calls: l.Calls, CacheHits: l.CacheHits, AnswersReused: l.AnswersReused, Retries: l.Retries, StrictRetries: l.StrictRetries,
				PromptTokens: l.PromptTokens, CompletionTokens: l.CompletionTokens, Distributions: l.Distributions, Questions: l.Questions,
				Fallbacks: l.Fallbacks, CoverageSum: sum}
		}
	}
	return out, traffic
}

// WithoutRun returns the text of a results.json without its run block
// (analysis.Run): what two runs of one study write alike, for comparing
// them byte for byte. Text without a run block is returned as it is.
func WithoutRun(data []byte) []byte {
	const from, to = "\n  \"run\": {\n", "\n  },"
	i := bytes.Index(data, []byte(from))
	if i < 0 {
		return data
	}
	j := bytes.Index(data[i+len(from):], []byte(to))
	if j < 0 {
		return data
	}
	return append(data[:i:i], data[i+len(from)+j+len(to):]...)
}
