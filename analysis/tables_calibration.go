package analysis

import (
	"fmt"
	"math"
	"strings"

	"github.com/society-sim/society/values"
)

// The Model-Specific strategy (the study's App. E) weights each value prompt
// by how human-like the value structure of that prompt's own answers is. A
// calibration run has C agents per value prompt answer the PVQ; for each
// prompt v, the 10×10 correlation matrix of the MRAT-centred value scores of
// v's agents is compared with the human matrix (Values Similarity), and the
// weights are proportional to those similarities (negative ones count as
// zero; population.ModelSpecificWeights).
//
// Within one prompt the agents differ only by sampling noise around the
// prompt's answer distribution, so this structure measures how a prompt's
// answers co-vary across respondents, not the prompt's mean profile. With
// synthetic respondents, whose answers to different items are independent
// given the persona, it is near noise, and so are the weights: reported as
// they are.

// CalibrationRow is one value prompt's calibration for one model.
type CalibrationRow struct {
	Model            string `json:"model"`
	Persona          string `json:"persona"`
	Reference        string `json:"reference"`
	Agents           int    `json:"agents"`
	ValuesSimilarity Num    `json:"values_similarity"`
	Weight           Num    `json:"weight"`
}

// PromptSimilarities computes, for each value prompt, the Values Similarity
// to ref of the value structure of the agents holding that prompt
// (personas[agent]) in a value instrument's sheet, and how many agents had
// complete scores. A prompt whose matrix cannot be scaled gets NaN.
func PromptSimilarities(sh *Sheet, personas []values.Value, ref Reference) (sim [values.N]float64, agents [values.N]int, err error) {
	keyOf, ok := valueInstrument(sh.Instrument)
	if !ok {
		return sim, agents, fmt.Errorf("calibration: %s is not a value instrument", sh.Instrument.Name)
	}
	sc := scoreSheet(sh, keyOf, len(personas))
	rows := sc.MRAT
	if ref.Centering == "raw" {
		rows = sc.Raw
	}
	for _, v := range values.All() {
		var members []int
		for a, p := range personas {
			if p == v && sc.OK[a] {
				members = append(members, a)
			}
		}
		agents[v] = len(members)
		s, err := ValuesSimilarity(corrOf(rows, members), ref.R)
		if err != nil {
			s = math.NaN()
		}
		sim[v] = s
	}
	return sim, agents, nil
}

// CalibrationTable lays out calibration rows as Markdown: one row per
// model, one column per value prompt, each cell the similarity and the
// weight it earned.
func CalibrationTable(rows []CalibrationRow) string {
	if len(rows) == 0 {
		return ""
	}
	var models []string
	cells := map[string]map[string]CalibrationRow{}
	for _, r := range rows {
		if cells[r.Model] == nil {
			cells[r.Model] = map[string]CalibrationRow{}
			models = append(models, r.Model)
		}
		cells[r.Model][r.Persona] = r
	}
	b := &strings.Builder{}
	b.WriteString("| model |")
	for _, c := range values.Codes() {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", values.N) + "\n")
	for _, m := range models {
		fmt.Fprintf(b, "| %s |", m)
		for _, c := range values.Codes() {
			r, ok := cells[m][c]
			if !ok {
				b.WriteString(" |")
				continue
			}
			fmt.Fprintf(b, " %s (w %s) |", fmtNum(r.ValuesSimilarity, 2), fmtNum(r.Weight, 2))
		}
		b.WriteString("\n")
	}
	return b.String()
}
