package analysis

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// The behavioural analysis of the persona statements (the study's §4): for
// each Perez et al. behaviour, the share of answers that match it ("%
// agreement") among the agents prompted with each value, for each
// higher-order value (the mean over its value prompts, each weighted
// equally; Hedonism counts in both of its groups), and among the unprimed
// agents; the correlation matrix of the higher-order values'
// agreement vectors across behaviours; and the politics panel, the
// agreement of each value with the political behaviours.

// PersonaColumns are the columns of PersonaAgreement.Value: the ten value
// codes in circular order, then "none".
func PersonaColumns() []string { return append(values.Codes(), "none") }

// GroupCodes are the higher-order value codes in values.Groups order.
func GroupCodes() []string {
	var out []string
	for _, g := range values.Groups() {
		out = append(out, g.Code())
	}
	return out
}

// PersonaAgreement is one model's agreement with the persona behaviours.
type PersonaAgreement struct {
	Model     string
	Behaviors []string
	// Value[b][c] is the agreement with behaviour b of the agents whose
	// persona is column c of PersonaColumns; NaN when none answered.
	Value [][]float64
	// Higher[b][g] is the agreement of higher-order value g: the unweighted
	// mean of Value[b][v] over the value prompts v of g that were answered,
	// so that each prompt counts once however many agents the run's
	// strategies gave it (pooling the answers instead would make the
	// figure depend on which other strategies share the run).
	Higher [][]float64
	// ValueAnswers and HigherAnswers count the valid answers behind each
	// cell of Value and Higher.
	ValueAnswers, HigherAnswers [][]int
	// HigherCorr is the 4×4 correlation of the higher-order value vectors
	// (their agreement across behaviours); ValueCorr the 10×10 one of the
	// value vectors.
	HigherCorr *mat.SymDense
	ValueCorr  *mat.SymDense
}

// AgreementRow is one cell of the agreement tables in results.json: Group
// is a value code, "none" or a higher-order value code (OC, SEN, CON, STR).
type AgreementRow struct {
	Model     string `json:"model"`
	Behavior  string `json:"behavior"`
	Group     string `json:"group"`
	Agreement Num    `json:"agreement"`
	Answers   int    `json:"answers"`
}

// AgreeWithPersonas computes the agreement of a persona sheet's answers,
// grouping agents by their persona (personas[agent]).
func AgreeWithPersonas(sh *Sheet, personas []values.Value) PersonaAgreement {
	in := sh.Instrument
	keys := in.Keys()
	nb := len(keys)
	n := len(in.Items)
	col := func(v values.Value) int {
		if !v.Valid() {
			return values.N
		}
		return int(v)
	}
	sum := make([][values.N + 1]float64, nb)
	cnt := make([][values.N + 1]int, nb)
	for a, p := range personas {
		c := col(p)
		for _, i := range sh.Items {
			code := sh.Codes[a*n+i]
			if code == 0 {
				continue
			}
			x := in.Recode(i, int(code)-1+in.Scale.Min) - in.Scale.Min
			k := in.KeyIndex(i)
			sum[k][c] += float64(x) / float64(in.Scale.Max-in.Scale.Min)
			cnt[k][c]++
		}
	}
	pa := PersonaAgreement{Model: sh.Model, Behaviors: slices.Clone(keys)}
	for k := range nb {
		row := make([]float64, values.N+1)
		for c := range row {
			row[c] = math.NaN()
			if cnt[k][c] > 0 {
				row[c] = sum[k][c] / float64(cnt[k][c])
			}
		}
		pa.Value = append(pa.Value, row)
		pa.ValueAnswers = append(pa.ValueAnswers, cnt[k][:])
		hrow := make([]float64, values.NGroups)
		hcnt := make([]int, values.NGroups)
		for gi, g := range values.Groups() {
			var s float64
			var prompts, m int
			for _, v := range values.All() {
				if slices.Contains(v.Groups(), g) && cnt[k][v] > 0 {
					s += row[v]
					prompts++
					m += cnt[k][v]
				}
			}
			hrow[gi], hcnt[gi] = math.NaN(), m
			if prompts > 0 {
				hrow[gi] = s / float64(prompts)
			}
		}
		pa.Higher = append(pa.Higher, hrow)
		pa.HigherAnswers = append(pa.HigherAnswers, hcnt)
	}
	pa.HigherCorr = columnCorr(pa.Higher, values.NGroups)
	pa.ValueCorr = columnCorr(pa.Value, values.N)
	return pa
}

// columnCorr correlates the first p columns of rows across rows (here:
// each value's agreement vector across behaviours).
func columnCorr(rows [][]float64, p int) *mat.SymDense {
	if len(rows) == 0 {
		return nil
	}
	cut := make([][]float64, len(rows))
	for i, r := range rows {
		cut[i] = r[:p]
	}
	return Correlation(cut)
}

// Rows returns the agreement as results rows: per behaviour, each value,
// none, then each higher-order value.
func (pa PersonaAgreement) Rows() []AgreementRow {
	var out []AgreementRow
	cols := PersonaColumns()
	groups := GroupCodes()
	for b, name := range pa.Behaviors {
		for c, g := range cols {
			out = append(out, AgreementRow{Model: pa.Model, Behavior: name, Group: g, Agreement: Num(pa.Value[b][c]), Answers: pa.ValueAnswers[b][c]})
		}
		for gi, g := range groups {
			out = append(out, AgreementRow{Model: pa.Model, Behavior: name, Group: g, Agreement: Num(pa.Higher[b][gi]), Answers: pa.HigherAnswers[b][gi]})
		}
	}
	return out
}

// Politics returns the rows of the politics panel: the political
// behaviours the sheet asked about, in PoliticalBehaviors order, with their
// agreement per value column.
func (pa PersonaAgreement) Politics() (behaviors []string, rows [][]float64) {
	for _, b := range PoliticalBehaviors {
		if i := slices.Index(pa.Behaviors, b); i >= 0 {
			behaviors = append(behaviors, b)
			rows = append(rows, pa.Value[i])
		}
	}
	return behaviors, rows
}

// computePersona runs the agreement analysis on every persona sheet.
func (st *Study) computePersona(c *Collector, out *Outcome) {
	for _, sh := range c.Sheets(st.Plans) {
		if sh.Instrument.Name != questionnaires.PersonaName || sh.Round != 0 {
			continue
		}
		pa := AgreeWithPersonas(sh, st.Pool.Persona)
		out.Persona = append(out.Persona, pa)
		out.Results.PersonaAgreement = append(out.Results.PersonaAgreement, pa.Rows()...)
	}
}
