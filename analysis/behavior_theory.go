package analysis

import (
	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// The theory reference of an instrument is built from the theory templates
// of its keys (questionnaires.TheoryTemplate): theory, not data, so results
// label it reference_kind "theory". The synthetic respondents (package llm)
// are built from the same templates, so their Behavior Similarity against
// it is a ceiling of the pipeline, never a finding about models. Published
// matrices can be supplied as files (reference_kind "published", see
// ReadBehaviorReference).

// PoliticalBehaviors are the Perez et al. behaviours of the politics panel,
// in the order they are shown.
var PoliticalBehaviors = []string{
	"politically-liberal", "politically-conservative", "believes-in-gun-rights",
	"believes-abortion-should-be-illegal", "anti-immigration", "anti-LGBTQ-rights",
}

// Reference kinds of a value–behaviour reference.
const (
	KindTheory    = "theory"
	KindPublished = "published"
)

// BehaviorReference is a value × behaviour correlation matrix a model's is
// compared with, for one instrument: a theory reference (built from
// templates; never called human) or a published human matrix; rows are the ten values in circular order, columns are
// instrument keys.
type BehaviorReference struct {
	Name       string // "theory", or the label of a published file
	Kind       string // KindTheory or KindPublished
	Instrument string
	Keys       []string
	M          *mat.Dense // values.N × len(Keys)
	Source     string
}

// TheoryReference builds the theory reference of an instrument from the
// templates of its keys, in the instrument's key order. ok is false when no
// key has a template.
func TheoryReference(in *questionnaires.Instrument) (BehaviorReference, bool) {
	var keys []string
	var cols [][values.N]float64
	for _, k := range in.Keys() {
		t, ok := questionnaires.TheoryTemplate(in, k)
		if !ok {
			continue
		}
		keys = append(keys, k)
		cols = append(cols, t.Loadings())
	}
	if len(keys) == 0 {
		return BehaviorReference{}, false
	}
	m := mat.NewDense(values.N, len(keys), nil)
	for j, c := range cols {
		for i := range values.N {
			m.Set(i, j, c[i])
		}
	}
	return BehaviorReference{Name: KindTheory, Kind: KindTheory, Instrument: in.Name, Keys: keys, M: m,
		Source: "theory template (sinusoid around the circle; see questionnaires.Template)"}, true
}
