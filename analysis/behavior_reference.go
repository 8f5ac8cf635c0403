package analysis

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/values"
)

// ReadBehaviorReference reads a published value × behaviour correlation
// matrix for an instrument from CSV:
//
//	value,A,C,E,N,O
//	SD,0.12,-0.05,0.08,-0.02,0.31
//	...
//
// The header's first cell is ignored; its other cells name columns, each
// one of keys (the instrument's scored keys) at most once, in any order and
// not necessarily all of them. Then exactly one row per basic value, its
// first cell the value's code or name (SD or Self-Direction, any case), in
// any order. Cells are correlations in [-1, 1], or NA (or empty) for a
// cell the source does not report. Every problem is reported at once, each
// as "source:line: message". The matrix is returned with its rows in
// circular value order and its columns as written.
func ReadBehaviorReference(r io.Reader, source, name, instrument string, keys []string) (BehaviorReference, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", source, line, fmt.Sprintf(format, args...)))
	}
	var cols []string
	var rows [values.N][]float64
	var rowLine [values.N]int
	header := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return BehaviorReference{}, errors.Join(append(errs, csvError(source, err))...)
		}
		line, _ := cr.FieldPos(0)
		if header {
			header = false
			if len(rec) < 2 {
				fail(line, "header has %d column(s), want a corner cell and at least one of the keys of %s (%s)", len(rec), instrument, strings.Join(keys, ", "))
				continue
			}
			for j, c := range rec[1:] {
				c = strings.TrimSpace(c)
				switch {
				case !slices.Contains(keys, c):
					fail(line, "column %d is %q, not a key of %s (want one of %s)", j+2, c, instrument, strings.Join(keys, ", "))
				case slices.Contains(cols, c):
					fail(line, "column %q appears twice", c)
				}
				cols = append(cols, c)
			}
			continue
		}
		label := strings.TrimSpace(rec[0])
		v, err := values.Parse(label)
		if err != nil || !v.Valid() {
			fail(line, "row label %q is not a basic value (want one of %s)", label, strings.Join(values.Codes(), ", "))
			continue
		}
		if rows[v] != nil {
			fail(line, "row %s appears twice (also line %d)", v.Code(), rowLine[v])
			continue
		}
		rowLine[v] = line
		rows[v] = make([]float64, len(cols))
		if len(rec)-1 != len(cols) {
			fail(line, "row %s has %d values, want %d (one per header column)", v.Code(), len(rec)-1, len(cols))
		}
		for j := range cols {
			x := math.NaN()
			if j+1 < len(rec) {
				cell := strings.TrimSpace(rec[j+1])
				if cell != "" && !strings.EqualFold(cell, "NA") {
					f, err := strconv.ParseFloat(cell, 64)
					switch {
					case err != nil:
						fail(line, "row %s, column %s: bad number %q", v.Code(), cols[j], cell)
					case math.IsNaN(f) || f < -1 || f > 1:
						fail(line, "row %s, column %s: %v is not a correlation in [-1, 1]", v.Code(), cols[j], f)
					default:
						x = f
					}
				}
			}
			rows[v][j] = x
		}
	}
	if header {
		fail(1, "empty file: want a header and one row per basic value")
	} else {
		var missing []string
		for v, r := range rows {
			if r == nil {
				missing = append(missing, values.Value(v).Code())
			}
		}
		if len(missing) > 0 {
			last := slices.Max(rowLine[:])
			fail(last+1, "missing rows for %s: want one row per basic value", strings.Join(missing, ", "))
		}
	}
	if len(errs) > 0 {
		return BehaviorReference{}, errors.Join(errs...)
	}
	m := mat.NewDense(values.N, len(cols), nil)
	for i, r := range rows {
		m.SetRow(i, r)
	}
	if name == "" {
		name = KindPublished
	}
	return BehaviorReference{Name: name, Kind: KindPublished, Instrument: instrument, Keys: cols, M: m, Source: source}, nil
}

// LoadBehaviorReference reads a published reference file; see
// ReadBehaviorReference.
func LoadBehaviorReference(path, name, instrument string, keys []string) (BehaviorReference, error) {
	f, err := os.Open(path)
	if err != nil {
		return BehaviorReference{}, fmt.Errorf("behavior reference: %w", err)
	}
	defer f.Close()
	return ReadBehaviorReference(f, path, name, instrument, keys)
}

// WriteBehaviorReference writes a reference in the layout
// ReadBehaviorReference reads, so that a results directory keeps the
// references it was computed against.
func WriteBehaviorReference(w io.Writer, ref BehaviorReference) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append([]string{"value"}, ref.Keys...)); err != nil {
		return err
	}
	for i, code := range values.Codes() {
		rec := []string{code}
		for j := range ref.Keys {
			x := ref.M.At(i, j)
			if math.IsNaN(x) {
				rec = append(rec, "NA")
			} else {
				rec = append(rec, strconv.FormatFloat(x, 'g', -1, 64))
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
