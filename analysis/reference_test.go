package analysis

import (
	"math"
	"strings"
	"testing"

	"github.com/society-sim/society/values"
)

func TestReferences(t *testing.T) {
	want := []struct {
		name, sample, centering, instrument string
		n                                   int
	}{
		{"pvq40_smacof_mrat", "pvq40_smacof", "mrat", "PVQ-40", 151},
		{"pvq40_smacof_raw", "pvq40_smacof", "raw", "PVQ-40", 151},
		{"gss2012_mrat", "gss2012", "mrat", "PVQ-21", 1255},
		{"gss2012_raw", "gss2012", "raw", "PVQ-21", 1255},
		{"ess_sweden_mrat", "ess_sweden", "mrat", "PVQ-21", 1441},
		{"ess_sweden_raw", "ess_sweden", "raw", "PVQ-21", 1441},
	}
	refs := References()
	if len(refs) != len(want) {
		t.Fatalf("got %d references, want %d", len(refs), len(want))
	}
	for i, w := range want {
		r := refs[i]
		t.Run(w.name, func(t *testing.T) {
			if r.Name != w.name || r.Sample != w.sample || r.Centering != w.centering || r.Instrument != w.instrument || r.N != w.n {
				t.Errorf("got %s/%s/%s/%s/%d, want %s/%s/%s/%s/%d", r.Name, r.Sample, r.Centering, r.Instrument, r.N,
					w.name, w.sample, w.centering, w.instrument, w.n)
			}
			if r.Source == "" {
				t.Error("got empty source, want provenance")
			}
			if n := r.R.SymmetricDim(); n != values.N {
				t.Fatalf("got %d×%d, want 10×10", n, n)
			}
			for i := range values.N {
				if got := r.R.At(i, i); got != 1 {
					t.Errorf("diagonal %d: got %v, want 1", i, got)
				}
			}
			// Every sample shows the basic opposition of the circle after
			// centring: Power against Universalism.
			if r.Centering == "mrat" {
				if got := r.R.At(int(values.Power), int(values.Universalism)); got >= 0 {
					t.Errorf("r(PO,UN): got %v, want negative", got)
				}
			}
		})
	}
	// Figures straight from the embedded files.
	if got := refs[0].R.At(0, 1); got != 0.208 {
		t.Errorf("pvq40 mrat r(SD,ST): got %v, want 0.208", got)
	}
	if got := refs[3].R.At(9, 4); got != -0.009 {
		t.Errorf("gss2012 raw r(UN,PO): got %v, want -0.009", got)
	}
}

func TestReferencesAreCopies(t *testing.T) {
	a := References()
	a[0].R.SetSym(0, 1, 0.99)
	b := References()
	if got := b[0].R.At(0, 1); got != 0.208 {
		t.Errorf("after modifying a returned matrix: got %v, want 0.208", got)
	}
}

func TestLookupReference(t *testing.T) {
	r, err := LookupReference(DefaultReference)
	if err != nil {
		t.Fatalf("LookupReference(%q): got error %v, want nil", DefaultReference, err)
	}
	if r.Name != DefaultReference {
		t.Errorf("got %q, want %q", r.Name, DefaultReference)
	}
	_, err = LookupReference("pvq40")
	if err == nil || !strings.Contains(err.Error(), `"pvq40"`) || !strings.Contains(err.Error(), "gss2012_raw") {
		t.Errorf("unknown name: got error %v, want one naming the input and the choices", err)
	}
}

// identityCSV is a valid file; bad cases edit it.
func identityCSV() []string {
	lines := []string{`"","SD","ST","HE","AC","PO","SE","CO","TR","BE","UN"`}
	for i, c := range values.Codes() {
		cells := []string{`"` + c + `"`}
		for j := range values.N {
			if i == j {
				cells = append(cells, "1")
			} else {
				cells = append(cells, "0.1")
			}
		}
		lines = append(lines, strings.Join(cells, ","))
	}
	return lines
}

func TestReadMatrix(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(lines []string) []string
		wants []string // substrings of the error; none means success
	}{
		{"valid", func(l []string) []string { return l }, nil},
		{"unquoted", func(l []string) []string {
			for i := range l {
				l[i] = strings.ReplaceAll(l[i], `"`, "")
			}
			return l
		}, nil},
		{"missing row", func(l []string) []string { return l[:10] }, []string{"user.csv:11:", "9 rows, want 10"}},
		{"extra row", func(l []string) []string { return append(l, l[1]) }, []string{"user.csv:12:", "extra row"}},
		{"short row", func(l []string) []string {
			l[4] = l[4][:strings.LastIndex(l[4], ",")]
			return l
		}, []string{"user.csv:5:", "row AC has 10 columns, want 11"}},
		{"header order", func(l []string) []string {
			l[0] = strings.Replace(l[0], `"SE","CO"`, `"CO","SE"`, 1)
			return l
		}, []string{"user.csv:1:", `header column 7 is "CO", want "SE"`}},
		{"row label", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"ST"`, `"XX"`, 1)
			return l
		}, []string{"user.csv:3:", `row label is "XX", want "ST"`}},
		{"bad number", func(l []string) []string {
			l[6] = strings.Replace(l[6], "0.1", "0,1x", 1)
			l[6] = strings.Replace(l[6], "0,1x", "abc", 1)
			return l
		}, []string{"user.csv:7:", `column SD: bad number "abc"`}},
		{"out of range", func(l []string) []string {
			l[2] = strings.Replace(l[2], "0.1", "1.5", 1)
			return l
		}, []string{"user.csv:3:", "1.5 is not a correlation"}},
		{"asymmetric", func(l []string) []string {
			l[3] = strings.Replace(l[3], "0.1", "0.3", 1) // HE,SD
			return l
		}, []string{"user.csv:4:", "not symmetric", "HE,SD", "line 2"}},
		{"diagonal", func(l []string) []string {
			l[10] = strings.TrimSuffix(l[10], ",1") + ",0.9"
			return l
		}, []string{"user.csv:11:", "diagonal UN,UN is 0.9, want 1"}},
		{"every problem at once", func(l []string) []string {
			l[2] = strings.Replace(l[2], "0.1", "zz", 1)
			l[9] = strings.Replace(l[9], `"BE"`, `"be "`, 1) // case and space are fine
			l[10] = strings.Replace(l[10], "0.1", "yy", 1)
			return l
		}, []string{"user.csv:3:", "user.csv:11:", `"zz"`, `"yy"`}},
		{"empty", func(l []string) []string { return nil }, []string{"user.csv:1:", "empty file"}},
		{"csv syntax", func(l []string) []string {
			l[5] = `"PO,0.1`
			return l
		}, []string{"user.csv:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Join(tt.edit(identityCSV()), "\n")
			m, err := ReadMatrix(strings.NewReader(src), "user.csv")
			if tt.wants == nil {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				if got := m.At(3, 7); got != 0.1 {
					t.Errorf("At(3,7): got %v, want 0.1", got)
				}
				return
			}
			if err == nil {
				t.Fatal("got nil error, want one")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestReadMatrixKeepsPrecision(t *testing.T) {
	l := identityCSV()
	l[1] = strings.Replace(l[1], "0.1", "-0.123456789", 1)
	l[2] = strings.Replace(l[2], "0.1", "-0.123456789", 1)
	m, err := ReadMatrix(strings.NewReader(strings.Join(l, "\n")), "p.csv")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.At(1, 0); math.Abs(got+0.123456789) > 0 {
		t.Errorf("got %v, want -0.123456789", got)
	}
}
