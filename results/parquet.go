package results

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// answers.parquet holds the rows of answers.csv, typed: agent, item and
// round as 32-bit integers, answer as a nullable 32-bit integer (null for
// an invalid answer), valid and played as booleans (played null outside
// the games), and the text columns dictionary-encoded, since a run has a
// handful of models, personas and instruments over millions of rows. Pages
// are compressed with Zstandard, which every Parquet reader reads.

// answerRecord is a row of answers.parquet of a run without games.
type answerRecord struct {
	Model      string `parquet:"model,dict"`
	Agent      int32  `parquet:"agent"`
	Persona    string `parquet:"persona,dict"`
	Instrument string `parquet:"instrument,dict"`
	Item       int32  `parquet:"item"`
	Round      int32  `parquet:"round"`
	Answer     *int32 `parquet:"answer,optional"`
	Valid      bool   `parquet:"valid"`
}

// gameAnswerRecord is a row of answers.parquet of a run with games.
type gameAnswerRecord struct {
	Model      string `parquet:"model,dict"`
	Agent      int32  `parquet:"agent"`
	Persona    string `parquet:"persona,dict"`
	Instrument string `parquet:"instrument,dict"`
	Item       int32  `parquet:"item"`
	Round      int32  `parquet:"round"`
	Answer     *int32 `parquet:"answer,optional"`
	Valid      bool   `parquet:"valid"`
	Played     *bool  `parquet:"played,optional"`
}

// parquetRowGroup is the most rows a row group of answers.parquet holds:
// the writer keeps one row group's columns in memory (about 10 MB at this
// size once encoded), and readers skip or read in parallel by row group.
const parquetRowGroup = 1 << 20

// answerCell is one row of answers.parquet before it takes its type.
type answerCell struct {
	model, persona, instrument string
	agent, item, round         int32
	answer                     *int32
	valid                      bool
	played                     *bool
}

// writeParquet writes answers.parquet, streaming: one chunk of rows at a
// time goes to the writer, which flushes a row group every t.rowGroup
// rows, so memory holds one chunk and one row group
// whatever the run's size. It stops between chunks once ctx is done.
func (t *answerTable) writeParquet(ctx context.Context, w io.Writer) error {
	if t.games {
		return writeParquetRows(ctx, w, t, func(c *answerCell) gameAnswerRecord {
			return gameAnswerRecord{Model: c.model, Agent: c.agent, Persona: c.persona, Instrument: c.instrument,
				Item: c.item, Round: c.round, Answer: c.answer, Valid: c.valid, Played: c.played}
		})
	}
	return writeParquetRows(ctx, w, t, func(c *answerCell) answerRecord {
		return answerRecord{Model: c.model, Agent: c.agent, Persona: c.persona, Instrument: c.instrument,
			Item: c.item, Round: c.round, Answer: c.answer, Valid: c.valid}
	})
}

// answersCodec compresses answers.parquet's pages. It keeps its encoders
// between files (each holds a few MB of tables), and is safe for
// concurrent use.
var answersCodec = &zstd.Codec{Level: zstd.SpeedDefault}

func writeParquetRows[T any](ctx context.Context, w io.Writer, t *answerTable, record func(*answerCell) T) error {
	pw := parquet.NewGenericWriter[T](w, parquet.Compression(answersCodec), parquet.MaxRowsPerRowGroup(t.rowGroup))
	var rows []T
	pool := t.o.Study.Pool
	truth := [2]bool{false, true}
	for _, ch := range t.chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := ch.sheet
		n := len(sh.Instrument.Items)
		// Answers point into this table, one entry per code, so that a row
		// allocates nothing.
		var answers [256]int32
		for code := range answers {
			answers[code] = int32(code - 1 + sh.Instrument.Scale.Min)
		}
		ids := make([]int32, len(sh.Items))
		for k, it := range sh.Items {
			ids[k] = int32(sh.Instrument.Items[it].ID)
		}
		rows = rows[:0]
		c := answerCell{model: sh.Model, instrument: sh.Instrument.Name, round: int32(sh.Round)}
		for a := ch.lo; a < ch.hi; a++ {
			c.agent, c.persona = int32(a), pool.Persona[a].Code()
			c.played = nil
			if ch.played != nil {
				c.played = &truth[0]
				if ch.played[a/64]&(1<<(a%64)) != 0 {
					c.played = &truth[1]
				}
			}
			codes := sh.Codes[a*n : (a+1)*n]
			for k, it := range sh.Items {
				code := codes[it]
				c.item, c.valid, c.answer = ids[k], code != 0, nil
				if code != 0 {
					c.answer = &answers[code]
				}
				rows = append(rows, record(&c))
			}
		}
		if _, err := pw.Write(rows); err != nil {
			return err
		}
	}
	return pw.Close()
}

// readAnswersParquet reads the rows of answers.parquet into add.
func readAnswersParquet(path string, add func(*answerRow, func(string, ...any) error) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadInput, path, err)
	}
	if _, games := pf.Schema().Lookup("played"); games {
		return readParquetRows(pf, path, add, func(r *gameAnswerRecord) answerRecord {
			return answerRecord{Model: r.Model, Agent: r.Agent, Persona: r.Persona, Instrument: r.Instrument,
				Item: r.Item, Round: r.Round, Answer: r.Answer, Valid: r.Valid}
		})
	}
	return readParquetRows(pf, path, add, func(r *answerRecord) answerRecord { return *r })
}

// readParquetRows reads a file of rows T, checked to have T's schema, and
// hands each to add as an answerRow.
func readParquetRows[T any](pf *parquet.File, path string, add func(*answerRow, func(string, ...any) error) error, plain func(*T) answerRecord) error {
	if want := parquet.SchemaOf(new(T)); !parquet.SameNodes(pf.Schema(), want) {
		return fmt.Errorf("%w: %s: schema %s, want %s", ErrBadInput, path, pf.Schema(), want)
	}
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	buf := make([]T, 4096)
	var row int64
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: row %d: %s", ErrBadInput, path, row, fmt.Sprintf(format, args...))
	}
	var ar answerRow
	for {
		n, err := r.Read(buf)
		for i := range n {
			row++
			x := plain(&buf[i])
			ar = answerRow{model: x.Model, agent: int(x.Agent), persona: x.Persona, instrument: x.Instrument,
				item: int(x.Item), round: int(x.Round), valid: x.Valid}
			if x.Valid {
				if x.Answer == nil {
					return fail("a valid answer without a value")
				}
				ar.answer = int(*x.Answer)
			}
			if err := add(&ar, fail); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %s: row %d: %v", ErrBadInput, path, row+1, err)
		}
	}
}
