package analysis

import (
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/values"
)

// The matrices are figures computed from open respondent-level data sets;
// reference/PROVENANCE.md says where each one comes from.
//
//go:embed reference/*.csv
var referenceFS embed.FS

// DefaultReference is the human matrix models are compared with unless a
// scenario says otherwise: the PVQ-40 sample, because the study uses the
// PVQ-40, with MRAT-centred scores, because centring is what reveals the
// circular structure.
const DefaultReference = "pvq40_smacof_mrat"

// Reference is a human value correlation matrix with its provenance.
type Reference struct {
	Name       string // e.g. "pvq40_smacof_mrat"
	Sample     string // e.g. "pvq40_smacof"
	Centering  string // "raw" or "mrat"
	Instrument string // "PVQ-40" or "PVQ-21"
	N          int    // respondents
	Source     string // one-line provenance
	// R is the 10×10 Pearson correlation matrix in circular value order
	// (values.SelfDirection … values.Universalism).
	R *mat.SymDense
}

type sample struct {
	name, instrument, source string
	n                        int
}

var samples = []sample{
	{"pvq40_smacof", "PVQ-40", "PVQ-40, 151 US adults (Borg, Bardi & Schwartz 2017), data set PVQ40 of the CRAN package smacof", 151},
	{"gss2012", "PVQ-21", "PVQ-21, General Social Survey 2012 USA cultural module, n=1255, via the R package polychoric (gss12_values)", 1255},
	{"ess_sweden", "PVQ-21", "PVQ-21, European Social Survey Sweden rounds 1-8, n=1441, via GitHub dewaalaw/dsprojects", 1441},
}

var centerings = []struct{ name, desc string }{
	{"mrat", "value means centred on the respondent's mean rating"},
	{"raw", "uncentred value means"},
}

// loadReferences parses the embedded files once. A parse failure is a
// defect of the build, not of input, hence the panic.
var loadReferences = sync.OnceValue(func() []Reference {
	var out []Reference
	for _, s := range samples {
		for _, c := range centerings {
			name := s.name + "_" + c.name
			file := "reference/" + name + "_r.csv"
			f, err := referenceFS.Open(file)
			if err != nil {
				panic(fmt.Sprintf("analysis: embedded reference %s: %v", file, err))
			}
			r, err := ReadMatrix(f, file)
			f.Close()
			if err != nil {
				panic(fmt.Sprintf("analysis: embedded reference: %v", err))
			}
			out = append(out, Reference{
				Name:       name,
				Sample:     s.name,
				Centering:  c.name,
				Instrument: s.instrument,
				N:          s.n,
				Source:     s.source + "; " + c.desc,
				R:          r,
			})
		}
	}
	return out
})

// References returns the embedded human references in a fixed order:
// PVQ-40 (mrat, raw), GSS 2012 (mrat, raw), ESS Sweden (mrat, raw). Each
// call returns fresh matrices, so callers may modify them.
func References() []Reference {
	refs := loadReferences()
	out := make([]Reference, len(refs))
	for i, r := range refs {
		out[i] = r
		out[i].R = mat.NewSymDense(values.N, nil)
		out[i].R.CopySym(r.R)
	}
	return out
}

// LookupReference returns the embedded reference with the given name.
func LookupReference(name string) (Reference, error) {
	refs := References()
	names := make([]string, len(refs))
	for i, r := range refs {
		if r.Name == name {
			return r, nil
		}
		names[i] = r.Name
	}
	return Reference{}, fmt.Errorf("unknown reference %q (want one of %s)", name, strings.Join(names, ", "))
}

// matrixTol is how far a file's matrix may be from exact symmetry and a
// unit diagonal: files carry rounded figures, but rounding a symmetric
// matrix keeps it symmetric, so anything larger is a real error.
const matrixTol = 1e-6

// ReadMatrix reads a 10×10 value correlation matrix in the layout of the
// embedded references: a header row whose first cell is ignored and whose
// other cells are the value codes SD … UN in circular order, then one row
// per value, labelled with its code in the same order. It checks shape,
// labels, numbers, the range [-1, 1], symmetry and the unit diagonal, and
// reports every problem at once, each as "source:line: ...".
func ReadMatrix(r io.Reader, source string) (*mat.SymDense, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // a row of the wrong width is reported, not fatal
	codes := values.Codes()
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", source, line, fmt.Sprintf(format, args...)))
	}

	var data [values.N][values.N]float64
	var lines [values.N]int
	row := -1 // -1 while reading the header
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errors.Join(append(errs, csvError(source, err))...)
		}
		line, _ := cr.FieldPos(0)
		if row == -1 {
			if len(rec) != values.N+1 {
				fail(line, "header has %d columns, want %d (an empty corner cell and %s)", len(rec), values.N+1, strings.Join(codes, ","))
			} else {
				for j, c := range codes {
					if got := strings.TrimSpace(rec[j+1]); !strings.EqualFold(got, c) {
						fail(line, "header column %d is %q, want %q (values in circular order %s)", j+2, got, c, strings.Join(codes, ","))
					}
				}
			}
			row = 0
			continue
		}
		if row >= values.N {
			fail(line, "extra row %q: want %d rows, one per value", rec[0], values.N)
			row++
			continue
		}
		lines[row] = line
		if got := strings.TrimSpace(rec[0]); !strings.EqualFold(got, codes[row]) {
			fail(line, "row label is %q, want %q (values in circular order %s)", got, codes[row], strings.Join(codes, ","))
		}
		if len(rec) != values.N+1 {
			fail(line, "row %s has %d columns, want %d", codes[row], len(rec), values.N+1)
		}
		for j := 0; j < values.N && j+1 < len(rec); j++ {
			cell := strings.TrimSpace(rec[j+1])
			v, err := strconv.ParseFloat(cell, 64)
			switch {
			case err != nil:
				fail(line, "column %s: bad number %q", codes[j], cell)
				v = math.NaN()
			case math.IsNaN(v) || v < -1 || v > 1:
				fail(line, "column %s: %v is not a correlation in [-1, 1]", codes[j], v)
			}
			data[row][j] = v
		}
		row++
	}
	switch {
	case row == -1:
		fail(1, "empty file: want a header row and %d rows", values.N)
	case row < values.N:
		fail(lineAfter(lines, row), "%d rows, want %d (one per value)", row, values.N)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	m := mat.NewSymDense(values.N, nil)
	for i := range values.N {
		if d := data[i][i]; math.Abs(d-1) > matrixTol {
			fail(lines[i], "diagonal %s,%s is %v, want 1", codes[i], codes[i], d)
		}
		for j := i + 1; j < values.N; j++ {
			if a, b := data[i][j], data[j][i]; math.Abs(a-b) > matrixTol {
				fail(lines[j], "not symmetric: %s,%s is %v but %s,%s (line %d) is %v", codes[j], codes[i], b, codes[i], codes[j], lines[i], a)
			}
		}
		for j := i; j < values.N; j++ {
			m.SetSym(i, j, data[i][j])
		}
		m.SetSym(i, i, 1)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// lineAfter is the line where a missing row would have been.
func lineAfter(lines [values.N]int, rows int) int {
	if rows == 0 {
		return 2
	}
	return lines[rows-1] + 1
}

// csvError names the file, and the line where the CSV reader knows it, of
// an error reading a reference file.
func csvError(source string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %v", source, pe.Line, pe.Err)
	}
	return fmt.Errorf("%s: %w", source, err)
}
